//! Secrets as the real binary keeps them: nowhere in clear but where they must be, and sealed
//! again by a master-key rotation without losing a value.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::process::{Running, cli, run_to_exit, start, start_with_env};

/// The demo fleet's secret values, and one set through the secret route.
const FLEET_SECRETS: [&str; 3] = [
    "example-broker-pass-not-real",
    "sk-example-not-a-real-key-0000",
    "example-elevenlabs-key-not-real",
];
const ROTATED: &str = "sk-rotated-3f9a1c7e5b2d";

struct Api {
    base: String,
    admin: String,
    http: reqwest::Client,
}

impl Api {
    fn new(running: &Running, data: &Path) -> Self {
        let admin = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            base: running.base.clone(),
            admin,
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn get(&self, token: &str, path: &str) -> String {
        let (status, body) = self.send(token, reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn token(&self, name: &str, role: &str, service: Option<&str>) -> String {
        let mut body = json!({"name": name, "role": role});
        if let Some(s) = service {
            body["service"] = json!(s);
        }
        let (status, text) = self
            .send(
                &self.admin,
                reqwest::Method::POST,
                "/api/v1/tokens",
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

async fn seed(api: &Api) {
    let (code, out, err) = cli(&["seed", "--server", &api.base, "--token", &api.admin], &[]).await;
    assert_eq!(code, 0, "{out}\n{err}");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_secret_appears_nowhere_but_in_its_service_s_own_read_and_a_reveal() {
    let broker = Mosquitto::start().await;
    let mut wire = Subscriber::connect(broker.addr(), "#").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = broker.url();
    let running = start_with_env(&data, &["--mqtt", &url], &[("DIALS_LOG", "debug")]).await;
    let api = Api::new(&running, &data);
    seed(&api).await;
    let viewer = api.token("viewer", "viewer", None).await;
    let operator = api.token("operator", "operator", None).await;
    let own = api.token("llm-worker", "service", Some("llm-worker")).await;

    let (status, set) = api
        .send(
            &operator,
            reqwest::Method::PUT,
            "/api/v1/services/llm-worker/secrets/openai_api_key",
            Some(json!({"value": ROTATED, "reason": "new key from the provider"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (status, patched) = api
        .send(
            &operator,
            reqwest::Method::PATCH,
            "/api/v1/services/llm-worker/config",
            Some(json!({"config": {"openai_model": "gpt-4o"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let (status, restored) = api
        .send(
            &operator,
            reqwest::Method::POST,
            "/api/v1/services/tts-worker/restore",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");

    // Everything a viewer, an operator or an admin can read.
    let mut answers = vec![set, patched, restored];
    for token in [&api.admin, &viewer, &operator] {
        for path in [
            "/api/v1/status",
            "/api/v1/services",
            "/api/v1/history?limit=1000",
            "/api/v1/search?limit=1000",
            "/api/v1/search?q=key",
        ] {
            answers.push(api.get(token, path).await);
        }
        for service in ["global", "llm-worker", "tts-worker"] {
            let config = api
                .get(token, &format!("/api/v1/services/{service}/config"))
                .await;
            let version = serde_json::from_str::<Value>(&config).unwrap()["version"]
                .as_u64()
                .unwrap();
            answers.push(config);
            for v in 1..=version {
                answers.push(
                    api.get(token, &format!("/api/v1/services/{service}/versions/{v}"))
                        .await,
                );
                answers.push(
                    api.get(
                        token,
                        &format!("/api/v1/services/{service}/diff?from=0&to={v}"),
                    )
                    .await,
                );
            }
            for path in ["secrets", "instances", "schema"] {
                answers.push(
                    api.get(token, &format!("/api/v1/services/{service}/{path}"))
                        .await,
                );
            }
        }
    }
    for path in ["/api/v1/audit?limit=1000", "/api/v1/tokens"] {
        answers.push(api.get(&api.admin, path).await);
    }
    // The watch stream from the start: every change, in order.
    let mut stream = api
        .http
        .get(format!("{}/api/v1/watch?since=0", api.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let mut events = String::new();
    while events.matches("event: change").count() < 9 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
            .await
            .expect("events in time")
            .unwrap()
            .expect("stream open");
        events.push_str(&String::from_utf8_lossy(&chunk));
    }
    answers.push(events);

    // Where the value must be: the service's own read, and a reveal. They prove the scan
    // below would find it.
    let mine = api.get(&own, "/api/v1/services/llm-worker/config").await;
    assert!(mine.contains(ROTATED), "{mine}");
    let (status, revealed) = api
        .send(
            &operator,
            reqwest::Method::POST,
            "/api/v1/services/llm-worker/secrets/openai_api_key/reveal",
            Some(json!({"justification": "compare with the provider's dashboard"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revealed.contains(ROTATED), "{revealed}");

    // The MQTT side: wait for the latest llm-worker envelope, then stop and collect the rest.
    let latest = serde_json::from_str::<Value>(&mine).unwrap()["version"].clone();
    let mut payloads = Vec::new();
    let envelope = loop {
        let m = wire.next(15).await;
        payloads.push(m.clone());
        if m.topic == "config/updated/llm-worker" && m.json()["version"] == latest {
            break m.json();
        }
    };
    assert_eq!(
        envelope["config"]["openai_api_key"],
        json!({"$secret": envelope["version"].as_u64().unwrap() - 1}),
        "the envelope names the secret's version, set one version before: {envelope}"
    );
    let (status, logs) = running.signal("TERM").await;
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "the scan reads debug logs"
    );
    while let Ok(m) = wire.messages.try_recv() {
        payloads.push(m);
    }
    assert!(
        payloads
            .iter()
            .any(|m| contains(&m.payload, "All systems online.")),
        "the scan sees configs on the wire"
    );

    let files = files_under(&data);
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, "All systems online.")),
        "the scan sees configs in the database files"
    );
    for secret in FLEET_SECRETS.iter().chain([&ROTATED]) {
        for (i, answer) in answers.iter().enumerate() {
            assert!(
                !answer.contains(secret),
                "answer {i} shows {secret}: {answer}"
            );
        }
        assert!(!logs.contains(secret), "the log shows {secret}");
        for m in &payloads {
            assert!(
                !contains(&m.payload, secret),
                "{} carries {secret}",
                m.topic
            );
        }
        for (path, bytes) in &files {
            assert!(!contains(bytes, secret), "{path} holds {secret}");
        }
    }
}

#[tokio::test]
async fn rotating_the_master_key_reseals_live_secrets_and_drops_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let data_arg = data.to_str().unwrap();
    let running = start(data).await;
    let api = Api::new(&running, data);
    seed(&api).await;
    let own = api.token("global-svc", "service", Some("global")).await;
    let before = api.get(&own, "/api/v1/services/global/config").await;
    assert!(before.contains(FLEET_SECRETS[0]));

    // Not while the server runs: it holds the data directory.
    let (code, _, err) = cli(&["keys", "rotate", "master", "--data-dir", data_arg], &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another dials is using the data directory"),
        "{err}"
    );
    let (status, logs) = running.signal("TERM").await;
    assert!(status.success(), "{logs}");

    let (_, shown, _) = cli(&["keys", "show", "--json", "--data-dir", data_arg], &[]).await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    let master = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["key"] == "master")
            .cloned()
            .collect()
    };
    let old = master(&shown);
    assert_eq!(old.len(), 1, "{shown}");
    assert_eq!(old[0]["secrets"], 4, "the fleet's four secrets: {shown}");

    let (code, out, err) = cli(
        &["keys", "rotate", "master", "--json", "--data-dir", data_arg],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rotated["old_key_id"], old[0]["key_id"]);
    assert_eq!(rotated["resealed"], 4);
    let (_, shown, _) = cli(&["keys", "show", "--json", "--data-dir", data_arg], &[]).await;
    let now = master(&serde_json::from_str(&shown).unwrap());
    assert_eq!(
        now,
        [
            json!({"key": "master", "key_id": rotated["new_key_id"], "status": "current",
                "secrets": 4, "source": "keys/master.key"})
        ],
        "only the new key is left, and it seals everything"
    );
    let key_file = std::fs::read_to_string(data.join("keys/master.key")).unwrap();
    assert_eq!(key_file.lines().count(), 1);

    let again = start(data).await;
    let after = api_on(&again, &api)
        .get(&own, "/api/v1/services/global/config")
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&after).unwrap()["config"],
        serde_json::from_str::<Value>(&before).unwrap()["config"],
        "every secret reads as before"
    );
    again.signal("TERM").await;

    // A rotation cut short (the new key written first, the old one still second) is finished
    // by the next start.
    let newer = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    std::fs::write(data.join("keys/master.key"), format!("{newer}\n{key_file}")).unwrap();
    let finished = start(data).await;
    let after = api_on(&finished, &api)
        .get(&own, "/api/v1/services/global/config")
        .await;
    assert!(after.contains(FLEET_SECRETS[0]));
    let (_, logs) = finished.signal("TERM").await;
    assert!(
        logs.contains("resealed secrets with the current master key"),
        "{logs}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("keys/master.key")).unwrap(),
        format!("{newer}\n")
    );

    // A master key that cannot open the secrets is refused at start, naming what is missing.
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (code, err) = run_to_exit(
        data,
        &["--http", "127.0.0.1:0"],
        &[("DIALS_MASTER_KEY", wrong)],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("4 with key") && err.contains("not available"),
        "{err}"
    );
    let (code, _, err) = cli(
        &["keys", "rotate", "master", "--data-dir", data_arg],
        &[("DIALS_MASTER_KEY", wrong)],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("DIALS_MASTER_KEY"), "{err}");
}

fn api_on(running: &Running, like: &Api) -> Api {
    Api {
        base: running.base.clone(),
        admin: like.admin.clone(),
        http: like.http.clone(),
    }
}
