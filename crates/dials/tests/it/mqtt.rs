//! The real binary's MQTT behaviour that only a real process shows: the last will.

use serde_json::json;

use crate::broker::{Mosquitto, Subscriber};
use crate::process::start_with;

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
