//! Instances come and go: an admin forgets one for good (its retained report cleared too), and
//! one that leaves — its last will, a clean stop, or silence beyond the timeout — shows offline.

use std::time::Duration;

use dials_mqtt::BrokerSetting;
use dials_server::ServerSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{TestApp, problem, spawn_with, token};

async fn app_on(broker: &Mosquitto, dir: &std::path::Path, timeout: Option<u64>) -> TestApp {
    let mut settings = ServerSettings::local(dir);
    settings.mqtt = BrokerSetting::parse(&broker.url()).unwrap();
    if let Some(secs) = timeout {
        settings.instance_timeout = Duration::from_secs(secs);
    }
    let app = spawn_with(settings).await;
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| s.connected))
        .await
        .expect("connected in time")
        .unwrap();
    app
}

async fn report(reporter: &Subscriber, instance: &str, body: Value) {
    reporter
        .client
        .publish(
            format!("config/applied/tts-worker/{instance}"),
            rumqttc::QoS::AtLeastOnce,
            true,
            serde_json::to_vec(&body).unwrap(),
        )
        .await
        .unwrap();
}

/// Waits until the instances view satisfies `done`, and answers it by instance name.
async fn instances_until(
    app: &TestApp,
    done: impl Fn(&std::collections::HashMap<String, Value>) -> bool,
) -> std::collections::HashMap<String, Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r: Value = app
            .req(Method::GET, "/api/v1/services/tts-worker/instances")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let by_name = r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["instance"].as_str().unwrap().to_owned(), i.clone()))
            .collect();
        if done(&by_name) {
            return by_name;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_admin_forgets_an_instance_and_its_retained_report_is_cleared() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path(), None).await;
    app.create("tts-worker", json!({"voice": "amy"})).await;
    let reporter = Subscriber::connect(broker.addr(), "unused/#").await;
    for instance in ["pi-kitchen", "pi-old"] {
        report(
            &reporter,
            instance,
            json!({"version": 1, "status": "applied"}),
        )
        .await;
    }
    instances_until(&app, |i| i.len() == 2).await;
    let mut watch = Subscriber::connect(broker.addr(), "config/applied/tts-worker/pi-old").await;
    assert!(watch.next(10).await.retain, "the retained report is there");

    let operator = token(&app, "ops", "operator", None).await;
    let path = "/api/v1/services/tts-worker/instances/pi-old";
    let r = app
        .client
        .delete(app.url(path))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let r = app.req(Method::DELETE, path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let left = instances_until(&app, |_| true).await;
    assert_eq!(left.keys().collect::<Vec<_>>(), ["pi-kitchen"]);
    // The broker's retained report is cleared, so no resubscription brings it back.
    let cleared = watch.next(10).await;
    assert!(cleared.payload.is_empty(), "{:?}", cleared.payload);
    let late = Subscriber::connect(broker.addr(), "config/applied/tts-worker/+").await;
    let mut late = late;
    let m = late.next(10).await;
    assert_eq!(m.topic, "config/applied/tts-worker/pi-kitchen");
    // Again: nothing to forget. A name that cannot be an instance is a 400.
    let r = app.req(Method::DELETE, path).send().await.unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = app
        .req(
            Method::DELETE,
            "/api/v1/services/tts-worker/instances/a%0Ab",
        )
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    // The access log says who forgot what.
    let log: Value = app
        .req(Method::GET, "/api/v1/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "instance.forget" && e["target"] == "tts-worker/pi-old"),
        "{log}"
    );
}

#[tokio::test]
async fn an_instance_that_leaves_shows_offline_with_the_version_it_last_reported() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path(), None).await;
    app.create("tts-worker", json!({"voice": "amy"})).await;
    let reporter = Subscriber::connect(broker.addr(), "unused/#").await;
    report(
        &reporter,
        "pi-kitchen",
        json!({"version": 1, "status": "applied"}),
    )
    .await;
    instances_until(&app, |i| i.contains_key("pi-kitchen")).await;
    // Its last will (or its clean stop) names no version.
    report(
        &reporter,
        "pi-kitchen",
        json!({"version": 0, "status": "offline"}),
    )
    .await;
    let now = instances_until(&app, |i| i["pi-kitchen"]["status"] == "offline").await;
    assert_eq!(now["pi-kitchen"]["version"], 1);
    assert_eq!(now["pi-kitchen"]["current"], false);
    // Back again.
    report(
        &reporter,
        "pi-kitchen",
        json!({"version": 1, "status": "applied"}),
    )
    .await;
    instances_until(&app, |i| i["pi-kitchen"]["status"] == "applied").await;
    // The will of an instance never seen records nothing.
    report(
        &reporter,
        "pi-ghost",
        json!({"version": 0, "status": "offline"}),
    )
    .await;
    report(
        &reporter,
        "pi-hall",
        json!({"version": 1, "status": "applied"}),
    )
    .await;
    let now = instances_until(&app, |i| i.contains_key("pi-hall")).await;
    assert!(!now.contains_key("pi-ghost"), "{now:?}");
}

#[tokio::test]
async fn an_instance_silent_beyond_the_timeout_shows_offline() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path(), Some(1)).await;
    app.create("tts-worker", json!({"voice": "amy"})).await;
    let reporter = Subscriber::connect(broker.addr(), "unused/#").await;
    report(
        &reporter,
        "pi-kitchen",
        json!({"version": 1, "status": "applied"}),
    )
    .await;
    let seen = instances_until(&app, |i| i.contains_key("pi-kitchen")).await;
    assert_eq!(seen["pi-kitchen"]["status"], "applied");
    // No heartbeat follows: a second later it is shown offline.
    let now = instances_until(&app, |i| i["pi-kitchen"]["status"] == "offline").await;
    assert_eq!(now["pi-kitchen"]["version"], 1);
}
