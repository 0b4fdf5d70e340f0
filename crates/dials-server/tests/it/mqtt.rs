//! Distribution over MQTT against a real Mosquitto (and the in-process broker): signed retained
//! envelopes in version order, surviving broker outages and manager restarts.

use std::io::Write;
use std::time::Duration;

use dials_mqtt::BrokerSetting;
use dials_server::ServerSettings;
use dials_wire::Envelope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber, free_port};
use crate::helpers::{TestApp, spawn_with};

async fn app_on(broker: &str, dir: &std::path::Path) -> TestApp {
    let mut settings = ServerSettings::local(dir);
    settings.mqtt = BrokerSetting::parse(broker).unwrap();
    spawn_with(settings).await
}

async fn public_key(app: &TestApp) -> String {
    let keys: Value = app
        .client
        .get(app.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["public_key"].as_str().unwrap().to_owned()
}

/// Runs the independent verifier (Python, no dials code) on an envelope.
fn independent_check(public_key: &str, payload: &[u8]) -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify-envelope.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(public_key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn wait_connected(app: &TestApp) {
    let mut state = app.state.publisher.as_ref().expect("MQTT on").watch_state();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| s.connected))
        .await
        .expect("connected in time")
        .unwrap();
}

#[tokio::test]
async fn a_write_is_published_as_a_signed_retained_envelope_that_an_independent_verifier_accepts() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    let mut sub = Subscriber::connect(broker.addr(), "config/updated/#").await;
    app.create(
        "tts-worker",
        json!({"voice": "amy", "rate": 1.5, "speed": 1.0, "nested": {"ü": [1, "x"]}}),
    )
    .await;

    let m = sub.next_on("config/updated/tts-worker", 10).await;
    let env = m.json();
    assert_eq!(env["format"], 1);
    assert_eq!(env["service"], "tts-worker");
    assert_eq!(
        (env["version"].clone(), env["revision"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(env["epoch"], app.state.epoch.to_string());
    assert_eq!(env["config"]["voice"], "amy");
    let key = public_key(&app).await;
    independent_check(&key, &m.payload).expect("the independent verifier accepts it");
    let trusted = [dials_wire::envelope::parse_public_key(&key).unwrap()];
    Envelope::verify(&m.payload, &trusted).expect("our own verifier agrees");

    // Tampering with anything is caught by the independent verifier too.
    let mut tampered = env.clone();
    tampered["config"]["rate"] = json!(2.0);
    assert!(independent_check(&key, &serde_json::to_vec(&tampered).unwrap()).is_err());
    let mut forged = env.clone();
    forged["version"] = json!(99);
    let err = independent_check(&key, &serde_json::to_vec(&forged).unwrap()).unwrap_err();
    assert!(err.contains("signature"), "{err}");
}

#[tokio::test]
async fn a_late_subscriber_gets_the_retained_latest_version() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    app.create("router", json!({"model": "small"})).await;
    app.put_config("router", json!({"config": {"model": "large"}}))
        .await;
    // Wait until the broker acknowledged both, then subscribe.
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    state.wait_for(|s| s.published >= 2).await.unwrap();
    let mut late = Subscriber::connect(broker.addr(), "config/updated/router").await;
    let m = late.next(10).await;
    assert!(m.retain, "delivered as the retained message");
    assert_eq!(
        (
            m.json()["version"].clone(),
            m.json()["config"]["model"].clone()
        ),
        (json!(2), json!("large"))
    );
}

#[tokio::test]
async fn fifty_rapid_writes_arrive_complete_and_in_order() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    let mut sub = Subscriber::connect(broker.addr(), "config/updated/counter").await;
    app.create("counter", json!({"n": 1})).await;
    for n in 2..=50 {
        let r = app.put_config("counter", json!({"config": {"n": n}})).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let mut versions = Vec::new();
    while versions.last() != Some(&50) {
        let env = sub.next(10).await.json();
        assert_eq!(
            env["config"]["n"], env["version"],
            "each envelope carries its own version's document"
        );
        versions.push(env["version"].as_u64().unwrap());
    }
    assert_eq!(versions, (1..=50).collect::<Vec<u64>>());
}

#[tokio::test]
async fn every_write_made_while_the_broker_is_down_arrives_after_it_returns() {
    let mut broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    app.create("router", json!({"n": 1})).await;
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    state.wait_for(|s| s.published >= 1).await.unwrap();

    broker.stop().await;
    state.wait_for(|s| !s.connected).await.unwrap();
    // Ten seconds of writes with the broker gone: every one succeeds at once.
    let started = tokio::time::Instant::now();
    let mut n = 1;
    while started.elapsed() < Duration::from_secs(10) {
        n += 1;
        let t = tokio::time::Instant::now();
        let r = app.put_config("router", json!({"config": {"n": n}})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a write never waits for the broker"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status: Value = app
        .req(Method::GET, "/api/v1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["broker"]["connected"], false);
    assert!(
        status["outbox_backlog"].as_u64().unwrap() >= (n - 1) as u64,
        "{status}"
    );

    broker.restart().await;
    // A subscriber that connects after the outage: the broker lost its retained messages, so
    // everything it sees comes from the manager re-sending its backlog.
    let mut sub = Subscriber::connect(broker.addr(), "config/updated/router").await;
    let mut versions = Vec::new();
    while versions.last() != Some(&(n as u64)) {
        versions.push(sub.next(15).await.json()["version"].as_u64().unwrap());
    }
    let expected: Vec<u64> = (2..=n as u64).collect();
    assert!(
        versions.ends_with(&expected),
        "every version, in order: {versions:?}"
    );
    state.wait_for(|s| s.connected).await.unwrap();
}

#[tokio::test]
async fn a_backlog_left_by_a_stopped_manager_is_delivered_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    // No broker yet: the writes pile up in the outbox.
    let app = app_on(&url, dir.path()).await;
    app.create("router", json!({"n": 1})).await;
    for n in 2..=10 {
        app.put_config("router", json!({"config": {"n": n}})).await;
    }
    let status: Value = app
        .req(Method::GET, "/api/v1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["outbox_backlog"], 10);
    app.stop().await;

    let mut broker = Mosquitto::start_on(port).await;
    let mut sub = Subscriber::connect(broker.addr(), "config/updated/router").await;
    let app = app_on(&url, dir.path()).await;
    let versions: Vec<u64> = {
        let mut v = Vec::new();
        while v.last() != Some(&10) {
            v.push(sub.next(15).await.json()["version"].as_u64().unwrap());
        }
        v
    };
    assert_eq!(versions, (1..=10).collect::<Vec<u64>>());
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    state.wait_for(|s| s.published >= 10).await.unwrap();
    // Marking rows published is batched; the backlog empties shortly after the acks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s: Value = app
            .req(Method::GET, "/api/v1/status")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["outbox_backlog"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog never emptied: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn every_write_is_audited_on_mqtt_without_its_values() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    let mut sub = Subscriber::connect(broker.addr(), "audit/config/#").await;
    app.create("router", json!({"token_budget": 4096})).await;
    app.patch_config("router", json!({"config": {"token_budget": 8192}}))
        .await;
    app.req(Method::DELETE, "/api/v1/services/router")
        .send()
        .await
        .unwrap();
    let put = sub.next(10).await;
    assert_eq!(put.topic, "audit/config/put");
    assert!(!put.retain);
    let body = put.json();
    assert_eq!(
        (
            body["action"].clone(),
            body["actor"].clone(),
            body["service"].clone(),
            body["version"].clone()
        ),
        (json!("put"), json!("admin"), json!("router"), json!(1))
    );
    assert!(body["at"].is_string());
    assert!(
        !String::from_utf8_lossy(&put.payload).contains("4096"),
        "no values in audit messages"
    );
    assert_eq!(sub.next(10).await.topic, "audit/config/patch");
    assert_eq!(sub.next(10).await.topic, "audit/config/delete");
}

#[tokio::test]
async fn deleting_a_service_clears_its_retained_envelope() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    app.create("router", json!({"a": 1})).await;
    app.req(Method::DELETE, "/api/v1/services/router")
        .send()
        .await
        .unwrap();
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    state.wait_for(|s| s.published >= 2).await.unwrap();
    let mut late = Subscriber::connect(broker.addr(), "config/updated/#").await;
    app.create("other", json!({"b": 1})).await;
    let first = late.next(10).await;
    assert_eq!(
        first.topic, "config/updated/other",
        "nothing retained for the deleted service"
    );
}

#[tokio::test]
async fn health_is_retained_and_reports_the_backlog() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    let mut sub = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    sub.next(10).await;
    // Whoever subscribes later still finds it: it is retained.
    let mut late = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    let m = late.next(10).await;
    assert!(m.retain);
    let h = m.json();
    assert_eq!(h["ok"], true);
    assert_eq!(h["mode"], "normal");
    assert_eq!(h["epoch"], app.state.epoch.to_string());
    for field in ["database", "schema_version", "outbox_backlog", "at"] {
        assert!(!h[field].is_null(), "{field} in {h}");
    }
    // A clean stop says so.
    app.stop().await;
    let bye = sub.next(10).await.json();
    assert_eq!(bye["ok"], false);
}

#[tokio::test]
async fn applied_reports_from_instances_are_recorded_and_summarised() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker.url(), dir.path()).await;
    wait_connected(&app).await;
    app.create("tts-worker", json!({"voice": "amy"})).await;
    app.put_config("tts-worker", json!({"config": {"voice": "joe"}}))
        .await;
    let reporter = Subscriber::connect(broker.addr(), "unused/#").await;
    for (instance, body) in [
        (
            "pi-kitchen",
            json!({"service": "tts-worker", "instance": "pi-kitchen", "version": 2, "status": "applied", "at": "2026-11-22T10:00:00Z", "schema_hash": "abc", "overrides": ["/voice"]}),
        ),
        (
            "pi-hall",
            json!({"service": "tts-worker", "instance": "pi-hall", "version": 1, "status": "applied", "at": "2026-11-22T10:00:00Z"}),
        ),
        (
            "pi-attic",
            json!({"service": "tts-worker", "instance": "pi-attic", "version": 2, "status": "rejected", "error": "voice: unknown voice", "at": "2026-11-22T10:00:00Z"}),
        ),
    ] {
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
    reporter
        .client
        .publish(
            "config/applied/tts-worker/pi-bad",
            rumqttc::QoS::AtLeastOnce,
            false,
            "garbage",
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let instances = loop {
        let r: Value = app
            .req(Method::GET, "/api/v1/services/tts-worker/instances")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["instances"].as_array().is_some_and(|a| a.len() == 3) {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reports not recorded: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(instances["version"], 2);
    let by_name: std::collections::HashMap<_, _> = instances["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap().to_owned(), i.clone()))
        .collect();
    assert_eq!(by_name["pi-kitchen"]["current"], true);
    assert_eq!(by_name["pi-kitchen"]["overrides"], json!(["/voice"]));
    assert_eq!(
        by_name["pi-hall"]["current"], false,
        "runs an older version"
    );
    assert_eq!(by_name["pi-attic"]["status"], "rejected");
    assert_eq!(by_name["pi-attic"]["error"], "voice: unknown voice");
    let list: Value = app
        .req(Method::GET, "/api/v1/services")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["services"][0]["instances"],
        json!({"total": 3, "current": 1})
    );
}

#[tokio::test]
async fn the_in_process_broker_carries_retained_signed_envelopes_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let app = app_on(&format!("embedded:127.0.0.1:{port}"), dir.path()).await;
    wait_connected(&app).await;
    let status: Value = app
        .req(Method::GET, "/api/v1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["broker"]["mode"], "embedded");
    app.create("router", json!({"model": "small"})).await;
    app.put_config("router", json!({"config": {"model": "large"}}))
        .await;
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    state.wait_for(|s| s.published >= 2).await.unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut late = Subscriber::connect(addr, "config/updated/router").await;
    let m = late.next(10).await;
    assert!(m.retain);
    assert_eq!(m.json()["version"], 2);
    independent_check(&public_key(&app).await, &m.payload).unwrap();
}

#[tokio::test]
async fn a_tls_broker_with_a_password_is_reached_with_mqtts_and_a_private_ca() {
    let (broker, ca) = Mosquitto::start_tls("dials", "s3cret:p@ss").await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path());
    settings.mqtt = BrokerSetting::parse(&format!(
        "mqtts://dials:s3cret%3Ap%40ss@localhost:{}",
        broker.port
    ))
    .unwrap();
    settings.mqtt_ca = Some(ca.clone());
    let app = spawn_with(settings).await;
    wait_connected(&app).await;
    app.create("router", json!({"a": 1})).await;
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.published >= 1),
    )
    .await
    .expect("the TLS broker acknowledged the envelope")
    .unwrap();
    let status: Value = app
        .req(Method::GET, "/api/v1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["broker"]["url"],
        format!("mqtts://localhost:{}", broker.port)
    );
    assert!(
        !status.to_string().contains("s3cret"),
        "the password is never shown"
    );

    // The wrong password never connects, and says why.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path());
    settings.mqtt =
        BrokerSetting::parse(&format!("mqtts://dials:wrong@localhost:{}", broker.port)).unwrap();
    settings.mqtt_ca = Some(ca);
    let refused = spawn_with(settings).await;
    let mut state = refused.state.publisher.as_ref().unwrap().watch_state();
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.last_error.is_some()),
    )
    .await
    .expect("an error is reported")
    .unwrap()
    .clone();
    assert!(!s.connected);
    let error = s.last_error.unwrap_or_default();
    assert!(
        error.contains("refused the connection: not authorized"),
        "the status says why: {error}"
    );
    // And a broker whose certificate is not trusted is refused too.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path());
    settings.mqtt = BrokerSetting::parse(&format!(
        "mqtts://dials:s3cret%3Ap%40ss@localhost:{}",
        broker.port
    ))
    .unwrap();
    let untrusted = spawn_with(settings).await;
    let mut state = untrusted.state.publisher.as_ref().unwrap().watch_state();
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.last_error.is_some()),
    )
    .await
    .expect("an error is reported")
    .unwrap()
    .clone();
    assert!(!s.connected, "{s:?}");
    let error = s.last_error.unwrap_or_default();
    assert!(error.contains("TLS with the MQTT broker failed"), "{error}");
}
