//! Layers through the real manager and broker: keys a service takes from `global`, instance
//! override documents, and the effective view that names each key's layer.

use std::sync::Arc;
use std::time::Duration;

use dials_client::{Client, Origin};
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::broker::Mosquitto;
use crate::helpers::{Manager, builder, manager};

/// A service that takes its log level from `global`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LayeredConfig {
    /// How much to log; the fleet's level unless this service or instance says otherwise.
    #[schemars(extend("x-global" = "/log/level"))]
    pub log_level: String,
    /// How loud.
    #[schemars(range(min = 0, max = 200))]
    pub volume: u32,
    /// What it says.
    pub voice: String,
}

impl Default for LayeredConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            volume: 100,
            voice: "default-voice".into(),
        }
    }
}

fn layered(m: &Manager, instance: &str) -> dials_client::Builder<LayeredConfig> {
    Client::<LayeredConfig>::builder("tts")
        .server(&m.url)
        .token(m.token_for("tts"))
        .public_key(m.signer.public_key_base64())
        .instance(instance)
}

async fn next<T: Clone>(rx: &mut watch::Receiver<Arc<T>>) -> Arc<T> {
    tokio::time::timeout(Duration::from_secs(15), rx.changed())
        .await
        .expect("a new config within 15 s")
        .expect("client alive");
    rx.borrow_and_update().clone()
}

async fn send(m: &Manager, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = m.req(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until the manager shows `instance`'s report of `tts` satisfying `done`.
async fn instance_row(m: &Manager, instance: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let listing = m.instances("tts").await;
        if let Some(row) = listing["instances"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["instance"] == instance))
            && done(row)
        {
            return row.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instance listing: {listing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_to_global_reaches_the_service_that_takes_the_key_and_not_one_that_does_not() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("global", json!({"log": {"level": "warn"}})).await;
    m.create("tts", json!({"voice": "amy"})).await;
    m.create("router", json!({"voice": "rex", "volume": 10}))
        .await;

    let tts = layered(&m, "pi-a")
        .mqtt(broker.url())
        .start()
        .await
        .unwrap();
    assert_eq!(tts.get().log_level, "warn", "taken from global at start");
    let router = builder(&m, "router")
        .mqtt(broker.url())
        .start()
        .await
        .unwrap();
    let mut tts_rx = tts.subscribe();
    let mut router_rx = router.subscribe();
    // Connected and subscribed once each has reported.
    instance_row(&m, "pi-a", |r| r["status"] == "applied").await;

    let (status, body) = send(
        &m,
        Method::PATCH,
        "/api/v1/services/global/config",
        Some(json!({"config": {"log": {"level": "debug"}, "unrelated": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let global_version = body["version"].as_u64().unwrap();
    let new = next(&mut tts_rx).await;
    assert_eq!(new.log_level, "debug");
    assert_eq!((new.voice.as_str(), new.volume), ("amy", 100));
    assert_eq!(tts.info().origin, Origin::Manager);

    let row = instance_row(&m, "pi-a", |r| r["global_version"] == global_version).await;
    assert_eq!(row["layers"], json!({"/log_level": "global"}));
    assert_eq!(row["override_version"], 0);

    // The router takes nothing from global: a write to it is the next thing it sees.
    let version = m.put("router", json!({"voice": "rex", "volume": 11})).await;
    let seen = tokio::time::timeout(Duration::from_secs(15), router_rx.changed()).await;
    assert!(seen.is_ok());
    assert_eq!(router.get().volume, 11);
    assert_eq!(router.info().version, version);

    // The service's own document wins over global.
    m.put("tts", json!({"voice": "amy", "log_level": "error"}))
        .await;
    assert_eq!(next(&mut tts_rx).await.log_level, "error");
    tts.shutdown().await;
    router.shutdown().await;
}

#[tokio::test]
async fn an_instance_override_reaches_only_its_instance_and_can_be_restored_and_removed() {
    let broker = Mosquitto::start().await;
    let m = manager(Some(&broker)).await;
    m.create("global", json!({"log": {"level": "warn"}})).await;
    m.create("tts", json!({"voice": "amy", "volume": 50})).await;
    let a = layered(&m, "pi-a")
        .mqtt(broker.url())
        .start()
        .await
        .unwrap();
    let b = layered(&m, "pi-b")
        .mqtt(broker.url())
        .start()
        .await
        .unwrap();
    let mut a_rx = a.subscribe();
    let b_rx = b.subscribe();
    instance_row(&m, "pi-a", |r| r["status"] == "applied").await;
    instance_row(&m, "pi-b", |r| r["status"] == "applied").await;

    let path = "/api/v1/services/tts/instances/pi-a/config";
    let (status, body) = send(
        &m,
        Method::PUT,
        path,
        Some(json!({"config": {"volume": 7}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["instance"], "pi-a");
    assert_eq!(body["config"], json!({"volume": 7}));
    assert_eq!(next(&mut a_rx).await.volume, 7);
    assert_eq!(a.get().voice, "amy", "the rest comes from the service");

    // The effective view names each key's layer and the versions merged.
    let (status, effective) = send(
        &m,
        Method::GET,
        "/api/v1/services/tts/instances/pi-a/effective",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{effective}");
    assert_eq!(
        effective["config"],
        json!({"log_level": "warn", "volume": 7, "voice": "amy"})
    );
    assert_eq!(
        effective["layers"],
        json!({"/log_level": "global", "/volume": "instance", "/voice": "service"})
    );
    assert_eq!(effective["versions"]["instance"], 1);
    assert_eq!(effective["versions"]["service"], 1);
    assert_eq!(effective["versions"]["global"], 1);

    // The second write, then its restore to version 1.
    let (status, _) = send(
        &m,
        Method::PATCH,
        path,
        Some(json!({"config": {"volume": 9}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next(&mut a_rx).await.volume, 9);
    let (status, body) = send(
        &m,
        Method::POST,
        &format!("{path}/restore"),
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 3);
    assert_eq!(next(&mut a_rx).await.volume, 7);
    let (status, diff) = send(&m, Method::GET, &format!("{path}/diff?from=2&to=3"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        diff["changes"],
        json!([{"key": "/volume", "op": "changed", "old": 9, "new": 7}])
    );
    let row = instance_row(&m, "pi-a", |r| r["override_version"] == 3).await;
    assert_eq!(
        row["layers"],
        json!({"/log_level": "global", "/volume": "instance"})
    );

    // The other instance never heard of it.
    assert!(!b_rx.has_changed().unwrap());
    assert_eq!(b.get().volume, 50);

    // Removing the override gives the instance the service's document back.
    let (status, _) = send(&m, Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(next(&mut a_rx).await.volume, 50);
    let (status, _) = send(&m, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, history) = send(
        &m,
        Method::GET,
        "/api/v1/history?service=tts&instance=pi-a",
        None,
    )
    .await;
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(4),
        "{history}"
    );

    // Overrides are no services.
    let (_, services) = send(&m, Method::GET, "/api/v1/services", None).await;
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["global", "tts"]);
    assert!(!b_rx.has_changed().unwrap());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_restart_from_the_last_known_good_file_merges_the_same_layers() {
    let broker = Mosquitto::start().await;
    let mut m = manager(Some(&broker)).await;
    let dir = tempfile::tempdir().unwrap();
    let lkg = dir.path().join("tts.lkg");
    m.create("global", json!({"log": {"level": "debug"}})).await;
    m.create("tts", json!({"voice": "amy"})).await;
    let (status, _) = send(
        &m,
        Method::PUT,
        "/api/v1/services/tts/instances/pi-a/config",
        Some(json!({"config": {"volume": 3}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = layered(&m, "pi-a").lkg_path(&lkg).start().await.unwrap();
    let before = first.get();
    assert_eq!(
        (
            before.log_level.as_str(),
            before.volume,
            before.voice.as_str()
        ),
        ("debug", 3, "amy")
    );
    first.shutdown().await;
    let token = m.token_for("tts").to_owned();
    let url = m.url.clone();
    m.stop().await;

    let again = Client::<LayeredConfig>::builder("tts")
        .server(url)
        .token(token)
        .public_key(m.signer.public_key_base64())
        .instance("pi-a")
        .lkg_path(&lkg)
        .start_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    assert_eq!(again.info().origin, Origin::Lkg);
    assert_eq!(*again.get(), *before);
    again.shutdown().await;
}

#[tokio::test]
async fn a_bad_override_is_refused_and_changes_nothing() {
    let m = manager(None).await;
    m.create("tts", json!({"voice": "amy"})).await;
    let client = layered(&m, "pi-a").start().await.unwrap();
    let path = "/api/v1/services/tts/instances/pi-a/config";

    // Fails the schema once merged: 422, and nothing is stored.
    let (status, body) = send(
        &m,
        Method::PUT,
        path,
        Some(json!({"config": {"volume": 500}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["path"], "/volume");
    let (status, _) = send(&m, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(
        &m,
        Method::PUT,
        path,
        Some(json!({"config": {"volume": 5}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(
        &m,
        Method::PATCH,
        path,
        Some(json!({"config": {"voice": 12}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, body) = send(&m, Method::GET, path, None).await;
    assert_eq!(
        (body["version"].clone(), body["config"].clone()),
        (json!(1), json!({"volume": 5}))
    );

    // Unknown services and bad instance names.
    for path in [
        "/api/v1/services/nope/instances/pi-a/config",
        "/api/v1/services/nope/instances/pi-a/effective",
    ] {
        let (status, body) = send(&m, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = send(
        &m,
        Method::PUT,
        "/api/v1/services/nope/instances/pi-a/config",
        Some(json!({"config": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &m,
        Method::GET,
        "/api/v1/services/tts/instances/a+b/effective",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A service token reads its own instances' overrides, and writes none.
    let own = reqwest::Client::new();
    let read = own
        .get(format!("{}{path}", m.url))
        .bearer_auth(m.token_for("tts"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = own
        .put(format!("{}{path}", m.url))
        .bearer_auth(m.token_for("tts"))
        .json(&json!({"config": {"volume": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    let other = own
        .get(format!("{}{path}", m.url))
        .bearer_auth(m.token_for("router"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    client.shutdown().await;
}

#[tokio::test]
async fn a_schema_whose_global_pointer_is_malformed_is_refused_with_the_reason() {
    let m = manager(None).await;
    let schema = json!({"type": "object", "properties": {
        "level": {"type": "string", "x-global": "log/level"}
    }});
    let (status, body) = send(&m, Method::PUT, "/api/v1/services/tts/schema", Some(schema)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("x-global") && detail.contains("/level"),
        "{detail}"
    );
}
