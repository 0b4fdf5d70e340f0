//! Start-up: from the manager, from the last-known-good file when the manager is down, from
//! defaults only when allowed, and never waiting on MQTT or on a manager that does not answer.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dials_client::{Client, Error, Origin};
use serde_json::json;

use crate::broker::free_port;
use crate::helpers::{Manager, TestConfig, builder, manager};

/// Runs a client once against `m` so that it writes `lkg`, then stops the manager.
async fn lkg_written_then_manager_stopped(m: &mut Manager, lkg: &Path) {
    m.create(
        "tts",
        json!({"voice": "saved", "volume": 42, "api_key": "secret-key"}),
    )
    .await;
    let dials = builder(m, "tts").lkg_path(lkg).start().await.unwrap();
    assert_eq!(dials.info().origin, Origin::Manager);
    assert_eq!(dials.get().api_key.as_ref().unwrap().expose(), "secret-key");
    dials.shutdown().await;
    m.stop().await;
}

#[tokio::test]
async fn with_the_manager_down_the_service_starts_from_its_last_known_good_file() {
    let mut m = manager(None).await;
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("state/tts.lkg");
    lkg_written_then_manager_stopped(&mut m, &lkg).await;
    let file = std::fs::read_to_string(&lkg).unwrap();
    assert!(!file.contains("secret-key"), "no secret on disk: {file}");

    let dials = builder(&m, "tts").lkg_path(&lkg).start().await.unwrap();
    let info = dials.info();
    // Version 2: registering the schema, which marks api_key secret, sealed the value stored
    // in clear at version 1.
    assert_eq!((info.origin, info.version), (Origin::Lkg, 2));
    let cfg = dials.get();
    assert_eq!((cfg.voice.as_str(), cfg.volume), ("saved", 42));
    assert_eq!(cfg.api_key, None, "secrets are not kept on disk");
}

#[tokio::test]
async fn a_tampered_or_foreign_lkg_file_is_refused() {
    let mut m = manager(None).await;
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("tts.lkg");
    lkg_written_then_manager_stopped(&mut m, &lkg).await;
    let original = std::fs::read_to_string(&lkg).unwrap();

    // Altered on disk.
    std::fs::write(&lkg, original.replace("saved", "evil!")).unwrap();
    let err = builder(&m, "tts").lkg_path(&lkg).start().await.unwrap_err();
    assert!(matches!(err, Error::NoConfig { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("HMAC does not match"), "{message}");
    assert!(message.contains("allow_defaults"), "{message}");
    // Refused still when defaults are allowed: those are used instead.
    let dials = builder(&m, "tts")
        .lkg_path(&lkg)
        .allow_defaults(true)
        .start()
        .await
        .unwrap();
    assert_eq!(dials.info().origin, Origin::Defaults);
    assert_eq!(*dials.get(), TestConfig::default());

    // Signed with another key: another token.
    std::fs::write(&lkg, &original).unwrap();
    let err = builder(&m, "tts")
        .token("another-token")
        .lkg_path(&lkg)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HMAC does not match"), "{err}");

    // Written for another service (with the same key, so that is what is noticed).
    let err = builder(&m, "router")
        .token(m.token_for("tts"))
        .lkg_path(&lkg)
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("written for service \"tts\""),
        "{err}"
    );

    // The untouched file still works.
    let dials = builder(&m, "tts").lkg_path(&lkg).start().await.unwrap();
    assert_eq!(dials.get().voice, "saved");
}

#[tokio::test]
async fn an_explicit_lkg_key_keeps_the_file_valid_across_a_token_change() {
    let mut m = manager(None).await;
    m.create("tts", json!({"voice": "kept"})).await;
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("tts.lkg");
    let dials = builder(&m, "tts")
        .lkg_path(&lkg)
        .lkg_key(b"a key of our own".to_vec())
        .start()
        .await
        .unwrap();
    dials.shutdown().await;
    m.stop().await;

    let dials = builder(&m, "tts")
        .token("a-rotated-token")
        .lkg_path(&lkg)
        .lkg_key(b"a key of our own".to_vec())
        .start()
        .await
        .unwrap();
    assert_eq!(dials.info().origin, Origin::Lkg);
    assert_eq!(dials.get().voice, "kept");
}

#[tokio::test]
async fn with_neither_manager_nor_lkg_file_start_fails_clearly_unless_defaults_are_allowed() {
    let down = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("missing.lkg");
    let start = || {
        Client::<TestConfig>::builder("tts")
            .server(&down)
            .token("t")
            .lkg_path(&lkg)
    };

    let err = start().start().await.unwrap_err();
    let message = err.to_string();
    for part in [
        "no config for service tts",
        "unreachable",
        "missing.lkg does not exist",
        ".allow_defaults(true)",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }

    let env = HashMap::from([("T_VOICE".to_owned(), "from-env".to_owned())]);
    let dials = start()
        .allow_defaults(true)
        .env_source(env)
        .start()
        .await
        .unwrap();
    assert_eq!(dials.info().origin, Origin::Defaults);
    assert_eq!(dials.info().version, 0);
    assert_eq!(dials.get().voice, "from-env");
    assert_eq!(dials.get().volume, 100);
}

#[tokio::test]
async fn start_up_waits_on_neither_the_broker_nor_a_manager_that_does_not_answer() {
    // A broker that is down: start-up reads the manager and returns.
    let m = manager(None).await;
    m.create("tts", json!({"voice": "up"})).await;
    let began = Instant::now();
    let dials = builder(&m, "tts")
        .mqtt(format!("mqtt://127.0.0.1:{}", free_port()))
        .start()
        .await
        .unwrap();
    assert_eq!(dials.get().voice, "up");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );

    // A manager that accepts connections and never answers: the start timeout bounds the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let began = Instant::now();
    let err = Client::<TestConfig>::builder("tts")
        .server(format!("http://{}", silent.local_addr().unwrap()))
        .token("t")
        .start_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("did not answer within 300ms"),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn unusable_settings_are_refused_with_the_setting_named() {
    let base = || {
        Client::<TestConfig>::builder("tts")
            .server("http://127.0.0.1:1")
            .token("t")
    };
    let cases = [
        (base().mqtt("mqtt://127.0.0.1:1883"), "public_key"),
        (base().public_key("not base64!"), "public_key"),
        (
            base().public_key("AAAA").mqtt("mqtt://127.0.0.1:1883"),
            "public_key",
        ),
        (base().instance("a/b"), "instance"),
        (base().server("https://manager.lan"), "server"),
        (Client::builder("tts").server("http://127.0.0.1:1"), "token"),
        (Client::builder("Bad Name").token("t"), "service"),
    ];
    for (builder, setting) in cases {
        match builder.start().await {
            Err(Error::Setting { setting: s, .. }) => assert_eq!(s, setting),
            other => panic!("expected a {setting} error, got {other:?}"),
        }
    }
}
