//! What another client of the same broker can and cannot do: a flood of fake applied reports
//! does not slow config writes down, and forged or emptied retained messages on the manager's
//! topics are set right without waiting for the next write.

use std::time::{Duration, Instant};

use dials_mqtt::{BrokerSetting, MAX_INSTANCES_PER_SERVICE};
use dials_server::ServerSettings;
use dials_wire::Envelope;
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{TestApp, spawn_with};

async fn app_on(broker: &Mosquitto, dir: &std::path::Path) -> TestApp {
    let mut settings = ServerSettings::local(dir);
    settings.mqtt = BrokerSetting::parse(&broker.url()).unwrap();
    let app = spawn_with(settings).await;
    let mut state = app.state.publisher.as_ref().expect("MQTT on").watch_state();
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| s.connected))
        .await
        .expect("connected in time")
        .unwrap();
    app
}

async fn wait_published(app: &TestApp, count: u64) {
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.published >= count),
    )
    .await
    .expect("published in time")
    .unwrap();
}

/// Issues a PATCH every 20 ms, each to one of eight services in turn, until `done()` and at
/// least `min` went out, and returns how long each took. Open loop: a slow answer does not
/// delay the next request, so a stall shows in every request it holds up.
async fn patch_latencies(app: &TestApp, min: usize, done: impl Fn() -> bool) -> Vec<Duration> {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut requests = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while requests.len() < min || !done() {
        assert!(Instant::now() < deadline, "the flood was not taken in");
        tick.tick().await;
        let request = app
            .req(
                Method::PATCH,
                &format!("/api/v1/services/bench-{}/config", requests.len() % 8),
            )
            .json(&json!({"config": {"n": requests.len()}}));
        requests.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            start.elapsed()
        }));
    }
    let mut took = Vec::new();
    for r in requests {
        took.push(r.await.unwrap());
    }
    took
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn report(service: &str, instance: &str, version: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "service": service, "instance": instance, "version": version,
        "status": "applied", "at": "2026-11-22T10:00:00Z",
    }))
    .unwrap()
}

/// `GET …/instances` page by page; every instance name.
async fn all_instances(app: &TestApp, service: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/services/{service}/instances?limit=400");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get_json(&path).await;
        names.extend(
            page["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["instance"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return names,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_fake_applied_reports_neither_stalls_writes_nor_crowds_out_real_ones() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path()).await;
    for i in 0..8 {
        app.create(&format!("bench-{i}"), json!({"n": 0})).await;
    }
    app.create("tts", json!({"voice": "amy"})).await;
    app.create("crowded", json!({"x": 1})).await;
    wait_published(&app, 10).await;

    // The write path on its own.
    patch_latencies(&app, 8, || true).await;
    let baseline = patch_latencies(&app, 50, || true).await;

    // A hostile client: 20,000 reports in 4 s, twice what the manager writes, of which none is
    // for a known instance: unknown services, impossible versions, garbage, and thousands of
    // made-up instances of one real service. Two real instances report in the middle of it.
    let attacker = Subscriber::connect(broker.addr(), "unused/#").await;
    let client = attacker.client.clone();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        for i in 0..20_000u32 {
            if i % 100 == 0 {
                pace.tick().await;
            }
            let (topic, payload) = match i % 10 {
                0..=3 => {
                    let service = format!("ghost-{}", i % 997);
                    (
                        format!("config/applied/{service}/x{i}"),
                        report(&service, "x", 1),
                    )
                }
                4 | 5 => (
                    format!("config/applied/tts/fake-{i}"),
                    report("tts", "fake", if i % 2 == 0 { 0 } else { 99 }),
                ),
                6 => (format!("config/applied/tts/junk-{i}"), b"garbage".to_vec()),
                _ => (
                    format!("config/applied/crowded/c{i}"),
                    report("crowded", "c", 1),
                ),
            };
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
            sent += 1;
            if i == 7_000 || i == 14_000 {
                for instance in ["pi-real", "pi-other"] {
                    client
                        .publish(
                            format!("config/applied/tts/{instance}"),
                            QoS::AtLeastOnce,
                            true,
                            report("tts", instance, 1),
                        )
                        .await
                        .unwrap();
                    sent += 1;
                }
            }
        }
        sent
    });

    // Writes while the manager takes the flood in.
    let publisher = app.state.publisher.as_ref().unwrap();
    let total = 20_004;
    let under_flood =
        patch_latencies(&app, 50, || publisher.state().reports.received >= total).await;
    assert_eq!(flood.await.unwrap(), total);

    let (base, flooded) = (p50(baseline), p50(under_flood.clone()));
    let bound = base * 3 + Duration::from_millis(25);
    eprintln!(
        "PATCH p50 {base:?} alone, {flooded:?} under the flood ({} writes); {:?}",
        under_flood.len(),
        publisher.state().reports
    );
    assert!(
        flooded <= bound,
        "PATCH p50 {flooded:?} under the flood, {base:?} without: more than {bound:?}"
    );

    // The real instances are recorded; nothing else of the flood is, beyond the bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let names = all_instances(&app, "tts").await;
        if names == ["pi-other", "pi-real"] {
            break;
        }
        assert!(
            names.iter().all(|n| n.starts_with("pi-")),
            "impossible versions recorded: {names:?}"
        );
        assert!(Instant::now() < deadline, "real reports lost: {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .req(Method::GET, "/api/v1/services/ghost-1/instances")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "unknown services not recorded"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = publisher.state().reports;
        if c.recorded + c.dropped + c.superseded >= c.received {
            break;
        }
        assert!(Instant::now() < deadline, "reports still waiting: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let crowded = all_instances(&app, "crowded").await;
    assert_eq!(crowded.len(), MAX_INSTANCES_PER_SERVICE as usize);
    let unpaged = app.get_json("/api/v1/services/crowded/instances").await;
    assert_eq!(
        unpaged["instances"].as_array().unwrap().len(),
        MAX_INSTANCES_PER_SERVICE as usize,
        "without paging, every instance in one answer"
    );
    assert!(unpaged["next_cursor"].is_null());
    for bad in ["limit=0", "limit=1001", "cursor=zz"] {
        let r = app
            .req(
                Method::GET,
                &format!("/api/v1/services/crowded/instances?{bad}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }

    let status = app.get_json("/api/v1/status").await;
    let reports = &status["broker"]["reports"];
    assert_eq!(reports["received"], total);
    let dropped = reports["dropped"].as_u64().unwrap();
    assert!(
        dropped >= 8_000 + 4_000 + 2_000 + 5_000,
        "drops counted: {status}"
    );
}

async fn fresh_retained(broker: &Mosquitto, topic: &str) -> Option<Vec<u8>> {
    let mut sub = Subscriber::connect(broker.addr(), topic).await;
    match tokio::time::timeout(Duration::from_millis(500), sub.messages.recv()).await {
        Ok(Some(m)) if m.retain => Some(m.payload),
        _ => None,
    }
}

/// Publishes retained and waits until the broker passed it on (so it is the retained one now).
async fn publish_retained(attacker: &mut Subscriber, topic: &str, payload: Vec<u8>) {
    attacker
        .client
        .publish(topic, QoS::AtLeastOnce, true, payload.clone())
        .await
        .unwrap();
    loop {
        let m = attacker.next_on(topic, 10).await;
        if m.payload == payload {
            return;
        }
    }
}

#[tokio::test]
async fn a_forged_or_emptied_retained_envelope_is_set_right_without_a_new_write() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path()).await;
    app.create("tts", json!({"voice": "amy"})).await;
    wait_published(&app, 1).await;
    let keys = app.get_json("/api/v1/keys").await;
    let trusted =
        [dials_wire::envelope::parse_public_key(keys["public_key"].as_str().unwrap()).unwrap()];

    let mut attacker = Subscriber::connect(broker.addr(), "config/updated/#").await;
    let genuine = attacker.next_on("config/updated/tts", 10).await;
    let mut forged: Value = serde_json::from_slice(&genuine.payload).unwrap();
    forged["config"]["voice"] = json!("evil");
    publish_retained(
        &mut attacker,
        "config/updated/tts",
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    publish_retained(&mut attacker, "config/updated/tts", Vec::new()).await;
    // One for a service the manager never had: it is cleared.
    publish_retained(
        &mut attacker,
        "config/updated/ghost",
        b"{\"format\":1}".to_vec(),
    )
    .await;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(payload) = fresh_retained(&broker, "config/updated/tts").await
            && let Ok(envelope) = Envelope::verify(&payload, &trusted)
        {
            assert_eq!(
                (envelope.version, envelope.config),
                (1, json!({"voice": "amy"}))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retained envelope was not set right"
        );
    }
    let cleared = attacker.next_on("config/updated/ghost", 10).await;
    assert!(
        cleared.payload.is_empty(),
        "the stranger's envelope is cleared"
    );
    let status = app.get_json("/api/v1/status").await;
    assert!(
        status["broker"]["repairs"].as_u64().unwrap() >= 2,
        "{status}"
    );
}

#[tokio::test]
async fn a_forged_or_emptied_health_message_is_set_right() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&broker, dir.path()).await;
    let topic = "system/health/config-manager";
    let mut attacker = Subscriber::connect(broker.addr(), topic).await;
    attacker.next_on(topic, 10).await;
    publish_retained(
        &mut attacker,
        topic,
        br#"{"ok":false,"mode":"unreachable"}"#.to_vec(),
    )
    .await;
    publish_retained(&mut attacker, topic, Vec::new()).await;

    let epoch = app.state.epoch.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(payload) = fresh_retained(&broker, topic).await {
            let health: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if health["ok"] == true && health["epoch"] == epoch.as_str() {
                assert_eq!(health["mode"], "normal");
                break;
            }
        }
        assert!(Instant::now() < deadline, "health was not set right");
    }
}
