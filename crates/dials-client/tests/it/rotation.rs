//! Signing-key rotation with the fleet along: a client that pinned only the first key follows
//! the manager through two rotations made while it was down, and never trusts a key that no
//! statement from a key it trusts introduces.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use dials_client::Client;
use dials_mqtt::BrokerSetting;
use dials_server::{Application, ServerSettings};
use dials_wire::EnvelopeSigner;
use dials_wire::rotation::{RotationChain, RotationStatement};
use reqwest::{Method, StatusCode};
use rumqttc::QoS;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{TestConfig, next, report_for, reports, sign};

/// A manager on a data directory that outlives it, keys from its files (rotatable).
struct Manager {
    url: String,
    admin: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

async fn start(data: &Path, broker: &Mosquitto, addr: Option<SocketAddr>) -> (Manager, SocketAddr) {
    let mut settings = ServerSettings::local(data);
    settings.mqtt = BrokerSetting::parse(&broker.url()).unwrap();
    if let Some(addr) = addr {
        settings.http_addr = addr;
    }
    let app = Application::build(settings).await.expect("manager builds");
    let address = app.address();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    (
        Manager {
            url: format!("http://{address}"),
            admin,
            stop: Some(stop),
            task: Some(task),
        },
        address,
    )
}

impl Manager {
    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
    }

    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.req(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {body}");
        body
    }

    async fn put(&self, volume: u32) -> u64 {
        let body = self
            .json(
                Method::PUT,
                "/api/v1/services/tts/config",
                Some(json!({"config": {"voice": "amy", "volume": volume}})),
            )
            .await;
        body["version"].as_u64().unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

fn client(
    m: &Manager,
    token: &str,
    broker: &Mosquitto,
    pinned: &str,
) -> dials_client::Builder<TestConfig> {
    Client::<TestConfig>::builder("tts")
        .server(&m.url)
        .token(token)
        .mqtt(broker.url())
        .public_key(pinned)
        .instance("test-1")
}

fn rotate(data: &Path) -> (String, String) {
    dials_server::keys::rotate_signing_key(data).unwrap()
}

#[tokio::test]
async fn a_client_down_through_two_rotations_follows_them_from_the_key_it_pinned() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (m, addr) = start(&data, &broker, None).await;
    let keys = m.json(Method::GET, "/api/v1/keys", None).await;
    let first_key = keys["public_key"].as_str().unwrap().to_owned();
    let r = m
        .req(Method::PUT, "/api/v1/services/tts/config")
        .header("If-None-Match", "*")
        .json(&json!({"config": {"voice": "amy", "volume": 10}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = m
        .json(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "tts-pi", "role": "service", "service": "tts"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The client pins the first key, runs, and goes down.
    let dials = client(&m, &token, &broker, &first_key)
        .start()
        .await
        .unwrap();
    assert_eq!(dials.get().volume, 10);
    dials.shutdown().await;

    // Two rotations, each followed by a start and a change, while the client is down.
    m.stop().await;
    let (a, b) = rotate(&data);
    let (m, _) = start(&data, &broker, Some(addr)).await;
    m.put(20).await;
    m.stop().await;
    let (b2, c) = rotate(&data);
    assert_eq!(b, b2);
    let (m, _) = start(&data, &broker, Some(addr)).await;
    m.put(30).await;
    let keys = m.json(Method::GET, "/api/v1/keys", None).await;
    assert_eq!(keys["key_id"], c);
    let chain: Vec<(String, String)> = keys["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["old_key_id"].as_str().unwrap().to_owned(),
                s["new_key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(chain, [(a.clone(), b.clone()), (b.clone(), c.clone())]);

    // Back up, still pinning only the first key: it follows the chain and applies the next
    // change from MQTT, signed by the third key.
    let mut watch_reports = reports(&broker, "tts").await;
    let dials = client(&m, &token, &broker, &first_key)
        .start()
        .await
        .unwrap();
    assert_eq!(dials.get().volume, 30);
    let mut rx = dials.subscribe();
    let v = m.put(40).await;
    assert_eq!(next(&mut rx).await.volume, 40);
    assert_eq!(
        report_for(&mut watch_reports, "tts", v).await["status"],
        "applied"
    );

    // A stranger on the broker: a chain of statements that are unsigned or signed by a key
    // the client does not trust, naming the stranger's key, then an update signed by it.
    let stranger = EnvelopeSigner::from_seed(&[9; 32]);
    let accomplice = EnvelopeSigner::from_seed(&[8; 32]);
    let by_untrusted = RotationStatement::sign(
        &accomplice,
        &stranger.verifying_key(),
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let mut unsigned = by_untrusted.clone();
    unsigned.old_key_id = c.clone();
    unsigned.signature = String::new();
    let forged = RotationChain::new(vec![by_untrusted, unsigned]);
    let publisher = Subscriber::connect(broker.addr(), "nothing/here").await;
    publisher
        .client
        .publish("config/keys", QoS::AtLeastOnce, true, forged.to_bytes())
        .await
        .unwrap();
    let epoch = dials.info().epoch.unwrap();
    let evil = sign(
        &stranger,
        "tts",
        v + 1,
        epoch,
        json!({"voice": "evil", "volume": 200}),
        0,
    );
    publisher
        .client
        .publish("config/updated/tts", QoS::AtLeastOnce, false, evil)
        .await
        .unwrap();
    let report = report_for(&mut watch_reports, "tts", v + 1).await;
    assert_eq!(report["status"], "rejected", "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("untrusted signing key"),
        "{report}"
    );
    assert_eq!(dials.get().volume, 40, "the config in force stays");
    dials.shutdown().await;
    m.stop().await;
}

#[tokio::test]
async fn a_key_replaced_without_a_rotation_leaves_the_instance_stale_and_says_why() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (m, addr) = start(&data, &broker, None).await;
    let first_key = m.json(Method::GET, "/api/v1/keys", None).await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = m
        .req(Method::PUT, "/api/v1/services/tts/config")
        .header("If-None-Match", "*")
        .json(&json!({"config": {"voice": "amy", "volume": 10}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = m
        .json(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "tts-pi", "role": "service", "service": "tts"})),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    m.stop().await;
    // Someone replaces the key file by hand: no statement from the old key names the new one.
    std::fs::write(
        data.join("keys/signing.key"),
        format!(
            "{}\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [5u8; 32])
        ),
    )
    .unwrap();
    let (m, _) = start(&data, &broker, Some(addr)).await;
    let dials = client(&m, &token, &broker, &first_key)
        .start()
        .await
        .unwrap();
    let v = m.put(50).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let list = m
            .json(Method::GET, "/api/v1/services/tts/instances", None)
            .await;
        let row = &list["instances"][0];
        if row["version"] == v {
            assert_eq!(row["status"], "rejected", "{row}");
            assert!(
                row["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("untrusted signing key"),
                "{row}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        dials.get().volume,
        10,
        "nothing signed by that key is applied"
    );
    dials.shutdown().await;
    m.stop().await;
}
