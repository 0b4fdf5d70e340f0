//! A real manager on a free port (optionally publishing to a real Mosquitto), the config struct
//! the tests use, and small helpers to wait for what a client does.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use dials_client::{Builder, Client, SecretString};
use dials_mqtt::BrokerSetting;
use dials_server::{Application, ServerSettings};
use dials_wire::EnvelopeSigner;
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::broker::{Message, Mosquitto, Subscriber};

/// The config struct of the services under test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TestConfig {
    /// What it says.
    #[schemars(extend("x-env" = "T_VOICE", "x-complexity" = "simple"))]
    pub voice: String,
    /// How loud.
    #[schemars(range(min = 0, max = 200))]
    pub volume: u32,
    /// A credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            voice: "default-voice".into(),
            volume: 100,
            api_key: None,
        }
    }
}

/// The seed of the manager's envelope signing key, so tests can sign as the manager.
pub const SEED: [u8; 32] = [7; 32];

/// A running manager with its own data directory.
pub struct Manager {
    pub url: String,
    /// The admin token.
    pub token: String,
    /// A `service` token for each service the tests run as (what a real service holds).
    pub service_tokens: std::collections::HashMap<String, String>,
    pub signer: EnvelopeSigner,
    pub http: reqwest::Client,
    // Kept for the test's duration; removed on drop.
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A manager that publishes to `broker` (or to no broker).
pub async fn manager(broker: Option<&Mosquitto>) -> Manager {
    manager_with(broker, |_| {}).await
}

/// Like [`manager`], with settings changed by `configure` first.
pub async fn manager_with(
    broker: Option<&Mosquitto>,
    configure: impl FnOnce(&mut ServerSettings),
) -> Manager {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path().join("data"));
    if let Some(b) = broker {
        settings.mqtt = BrokerSetting::parse(&b.url()).unwrap();
    }
    configure(&mut settings);
    settings.key_overrides.signing = Some(base64::engine::general_purpose::STANDARD.encode(SEED));
    let app = Application::build(settings).await.expect("manager builds");
    let url = format!("http://{}", app.address());
    let token = std::fs::read_to_string(dir.path().join("data/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let mut m = Manager {
        url,
        token,
        service_tokens: Default::default(),
        signer: EnvelopeSigner::from_seed(&SEED),
        http: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
        task: Some(task),
    };
    for service in ["tts", "router", "tts-worker"] {
        let token = m.service_token(service).await;
        m.service_tokens.insert(service.to_owned(), token);
    }
    m
}

impl Manager {
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// Creates `service` with `config` (version 1) and returns its epoch.
    pub async fn create(&self, service: &str, config: Value) -> Uuid {
        let r = self
            .req(Method::PUT, &format!("/api/v1/services/{service}/config"))
            .header("If-None-Match", "*")
            .json(&json!({ "config": config }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "create {service}");
        let body: Value = r.json().await.unwrap();
        body["epoch"].as_str().unwrap().parse().unwrap()
    }

    /// Replaces the config; returns the new version.
    pub async fn put(&self, service: &str, config: Value) -> u64 {
        let r = self
            .req(Method::PUT, &format!("/api/v1/services/{service}/config"))
            .json(&json!({ "config": config }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "put {service}: {body}");
        body["version"].as_u64().unwrap()
    }

    /// The `service` token the tests' clients of `service` use.
    pub fn token_for(&self, service: &str) -> &str {
        self.service_tokens
            .get(service)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no service token for {service}"))
    }

    /// A new `service` token scoped to `service`.
    pub async fn service_token(&self, service: &str) -> String {
        let r = self
            .req(Method::POST, "/api/v1/tokens")
            .json(&json!({"name": format!("{service}-svc"), "role": "service", "service": service}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "create token: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn instances(&self, service: &str) -> Value {
        self.req(
            Method::GET,
            &format!("/api/v1/services/{service}/instances"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }

    /// A signed envelope as the manager would publish it.
    pub fn envelope(&self, service: &str, version: u64, epoch: Uuid, config: Value) -> Vec<u8> {
        sign(&self.signer, service, version, epoch, config, 0)
    }

    /// Stops the manager gracefully; its data dir stays.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// Signs an envelope issued `age_secs` ago.
pub fn sign(
    signer: &EnvelopeSigner,
    service: &str,
    version: u64,
    epoch: Uuid,
    config: Value,
    age_secs: i64,
) -> Vec<u8> {
    signer
        .sign(
            service,
            version,
            version,
            config,
            epoch,
            OffsetDateTime::now_utc() - time::Duration::seconds(age_secs),
        )
        .unwrap()
        .to_bytes()
}

/// A builder pointed at `m`, reporting as instance `test-1`.
pub fn builder(m: &Manager, service: &str) -> Builder<TestConfig> {
    Client::<TestConfig>::builder(service)
        .server(&m.url)
        .token(m.token_for(service))
        .public_key(m.signer.public_key_base64())
        .instance("test-1")
}

/// Waits for the next config on `rx`.
pub async fn next(rx: &mut watch::Receiver<Arc<TestConfig>>) -> Arc<TestConfig> {
    tokio::time::timeout(Duration::from_secs(15), rx.changed())
        .await
        .expect("a new config within 15 s")
        .expect("client alive");
    rx.borrow_and_update().clone()
}

/// Records the `new` config of every change a callback sees.
pub fn record(client: &Client<TestConfig>) -> mpsc::UnboundedReceiver<TestConfig> {
    let (tx, rx) = mpsc::unbounded_channel();
    client.on_change(move |_old, new| {
        let _ = tx.send(new.clone());
        Ok(())
    });
    rx
}

/// The applied-status topic of instance `test-1`.
pub fn applied_topic(service: &str) -> String {
    format!("config/applied/{service}/test-1")
}

/// Watches the applied reports of `service` (and can publish).
pub async fn reports(broker: &Mosquitto, service: &str) -> Subscriber {
    Subscriber::connect(broker.addr(), &applied_topic(service)).await
}

/// The next applied report for `version`, skipping others.
pub async fn report_for(sub: &mut Subscriber, service: &str, version: u64) -> Value {
    loop {
        let m: Message = sub.next_on(&applied_topic(service), 15).await;
        let report = m.json();
        if report["version"] == version {
            return report;
        }
    }
}
