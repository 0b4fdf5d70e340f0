//! The real binary's MQTT behaviour: the last will and clean stops, and what a profile apply
//! publishes (only the services it changes).

use serde_json::json;

use crate::broker::{Mosquitto, Subscriber};
use crate::process::{admin_token, cli, create, start_with, status};

#[tokio::test]
async fn a_manager_that_dies_is_reported_down_by_its_last_will() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let running = start_with(dir.path(), &["--mqtt", &url]).await;
    let mut health = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    let up = health.next(10).await.json();
    assert_eq!(up["ok"], true);

    // No clean shutdown: the broker notices the dead connection and publishes the will.
    let (status, _) = running.signal("KILL").await;
    assert!(!status.success());
    let will = health.next(30).await;
    assert_eq!(will.json()["ok"], json!(false));
    let mut late = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    let retained = late.next(10).await;
    assert!(
        retained.retain,
        "the will is retained, so late subscribers see it too"
    );
    assert_eq!(retained.json()["ok"], json!(false));
}

#[tokio::test]
async fn the_log_says_which_broker_is_in_use() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let running = start_with(dir.path(), &["--mqtt", &url]).await;
    let (_, stderr) = running.signal("TERM").await;
    assert!(
        stderr.contains("using an external broker") && stderr.contains(&url),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_clean_stop_says_goodbye_on_the_health_topic() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let running = start_with(dir.path(), &["--mqtt", &url]).await;
    let mut health = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    assert_eq!(health.next(10).await.json()["ok"], true);
    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");
    let bye = health.next(10).await.json();
    assert_eq!(
        (bye["ok"].clone(), bye["mode"].clone()),
        (json!(false), json!("stopped")),
        "not the last will: {bye}"
    );
}

#[tokio::test]
async fn a_profile_apply_publishes_only_the_services_it_changes() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let running = start_with(dir.path(), &["--mqtt", &url]).await;
    let data = dir.path().display().to_string();
    let env = [
        ("DIALS_SERVER", running.base.as_str()),
        ("DIALS_DATA_DIR", data.as_str()),
        ("DIALS_TOKEN", ""),
        ("NO_COLOR", "1"),
    ];
    for args in [
        &["seed"][..],
        &["profile", "save", "day"],
        &["set", "tts-worker", "volume_percent=60"],
    ] {
        let (code, _, stderr) = cli(args, &env).await;
        assert_eq!(code, 0, "dials {args:?}: {stderr}");
    }
    let mut updates = Subscriber::connect(broker.addr(), "config/updated/#").await;
    let (code, stdout, stderr) = cli(&["profile", "apply", "day"], &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("1 service changed, 6 unchanged"),
        "{stdout}"
    );
    // A later write: everything the apply published arrives before its envelope.
    let (code, _, stderr) = cli(&["set", "global", "log_level=ERROR"], &env).await;
    assert_eq!(code, 0, "{stderr}");
    let mut seen = Vec::new();
    loop {
        let m = updates.next(10).await;
        let envelope = m.json();
        let service = envelope["service"].as_str().unwrap_or_default().to_owned();
        let version = envelope["version"].as_u64().unwrap_or_default();
        if m.retain || (service == "tts-worker" && version == 2) {
            continue; // what was there before the apply
        }
        if service == "global" {
            assert_eq!(version, 2, "global was not written by the apply");
            break;
        }
        seen.push((service, version));
    }
    assert_eq!(seen, [("tts-worker".to_owned(), 3)]);
    running.signal("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_on_one_service_repair_nothing_of_their_own() {
    // Every version is published, and the broker's echoes come back well behind the newest:
    // none of them may pass for another client's message.
    let broker = Mosquitto::start_stock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start_with(dir.path(), &["--mqtt", &broker.url()]).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let http = reqwest::Client::new();
    create(&http, &base, &token, "shared", json!({"n": 0})).await;

    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let mut ok = 0u64;
                while std::time::Instant::now() < until {
                    let r = http
                        .put(format!("{base}/api/v1/services/shared/config"))
                        .bearer_auth(&token)
                        .json(&json!({"config": {"n": ok, "writer": w}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), reqwest::StatusCode::OK);
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    let status = status(&http, &base, &token).await;
    assert!(written > 500, "the writers got through: {written}");
    assert_eq!(
        status["broker"]["repairs"], 0,
        "{written} writes, and the manager republished some: {status}"
    );
    let (_, stderr) = running.signal("TERM").await;
    assert!(!stderr.contains("overwrote"), "{stderr}");
}
