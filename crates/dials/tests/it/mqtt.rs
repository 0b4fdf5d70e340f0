//! The real binary's MQTT behaviour: the last will and clean stops, and what a profile apply
//! publishes (only the services it changes).

use serde_json::json;

use crate::broker::{Mosquitto, Subscriber};
use crate::process::{cli, start_with};

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
