//! Layers on the real binaries: `dials serve`, a real Mosquitto and the example echo-service
//! processes. A change to `global` reaches the echo-service whose struct takes the key
//! (`tts-worker`'s `log_level`) and no service that does not take it; an instance's override
//! reaches that instance only; and the effective view names the layer of every key.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::backup::echo_service;
use crate::broker::{Mosquitto, free_port};
use crate::process::{Running, admin_token, create};

/// A manager on a free port in a fresh data dir, publishing to `broker`.
async fn manager(broker: &Mosquitto, data: &Path) -> Running {
    let http = format!("127.0.0.1:{}", free_port());
    let url = broker.url();
    let args = ["--http", http.as_str(), "--mqtt", url.as_str()];
    crate::process::spawn_and_wait(crate::process::command(data, &args, &[])).await
}

/// The manager's REST API with the admin token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn put(&self, path: &str, config: Value) -> Value {
        let body = json!({ "config": config });
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn service_token(&self, service: &str) -> String {
        let name = format!("{service}-{}", uuid::Uuid::new_v4().simple());
        let body = json!({"name": name, "role": "service", "service": service});
        let made = self
            .send(reqwest::Method::POST, "/api/v1/tokens", Some(body))
            .await;
        made["token"].as_str().unwrap().to_owned()
    }

    /// Waits until the manager lists `instance` of `service` with a row `wanted` accepts,
    /// and answers it.
    async fn instance_row(
        &self,
        service: &str,
        instance: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/api/v1/services/{service}/instances");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = self.get(&path).await;
            let row = listed["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|row| row["instance"] == instance)
                .cloned();
            if let Some(row) = row.filter(&wanted) {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no row of {service}/{instance} as wanted: {listed}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running echo-service and the lines it prints.
struct Echo {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Echo {
    /// Starts the echo-service for `service` as instance `instance`, with extra environment.
    async fn start(
        api: &Api,
        broker: &Mosquitto,
        dir: &Path,
        service: &str,
        instance: &str,
        env: &[(&str, &str)],
    ) -> Echo {
        let keys = api.get("/api/v1/keys").await;
        let mut cmd = tokio::process::Command::new(echo_service());
        cmd.env("DIALS_SERVER", &api.base)
            .env("DIALS_TOKEN", api.service_token(service).await)
            .env("DIALS_MQTT_URL", broker.url())
            .env("DIALS_PUBLIC_KEY", keys["public_key"].as_str().unwrap())
            .env(
                "DIALS_LKG_PATH",
                dir.join(format!("{service}-{instance}.lkg")),
            )
            .env("DIALS_SERVICE", service)
            .env("DIALS_INSTANCE", instance)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Echo { child, lines }
    }

    /// The next line it prints.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("the echo-service printed in time")
            .unwrap()
            .expect("the echo-service runs");
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn a_change_to_global_reaches_the_echo_service_that_takes_the_key_and_no_other() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = manager(&broker, &data).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: running.base.clone(),
        token: admin_token(&data),
    };
    create(
        &api.http,
        &api.base,
        &api.token,
        "global",
        json!({"log_level": "WARNING"}),
    )
    .await;
    create(
        &api.http,
        &api.base,
        &api.token,
        "tts-worker",
        json!({"volume_percent": 40}),
    )
    .await;
    create(
        &api.http,
        &api.base,
        &api.token,
        "stt-worker",
        json!({"vad_threshold": 0.5}),
    )
    .await;

    // The tts-worker's struct takes `log_level` from global; the other echo-service reads
    // stt-worker untyped, so its schema takes nothing from global.
    let mut tts = Echo::start(&api, &broker, dir.path(), "tts-worker", "pi-kitchen", &[]).await;
    let untyped = [("DIALS_UNTYPED", "1")];
    let mut stt = Echo::start(&api, &broker, dir.path(), "stt-worker", "pi-hall", &untyped).await;
    let first = tts.next().await;
    assert_eq!(
        (&first["version"], &first["config"]["log_level"]),
        (&json!(1), &json!("WARNING")),
        "{first}"
    );
    assert_eq!(first["config"]["volume_percent"], 40);
    let first = stt.next().await;
    assert_eq!(
        first,
        json!({"version": 1, "config": {"vad_threshold": 0.5}})
    );
    let row = api
        .instance_row("tts-worker", "pi-kitchen", |r| r["global_version"] == 1)
        .await;
    assert_eq!(row["layers"], json!({"/log_level": "global"}), "{row}");
    api.instance_row("stt-worker", "pi-hall", |r| r["status"] == "applied")
        .await;

    let global = api
        .put(
            "/api/v1/services/global/config",
            json!({"log_level": "ERROR"}),
        )
        .await;
    assert_eq!(global["version"], 2);
    let line = tts.next().await;
    assert_eq!(
        (&line["version"], &line["config"]["log_level"]),
        (&json!(1), &json!("ERROR")),
        "the service's version stays, the value comes from global: {line}"
    );
    assert_eq!(line["config"]["volume_percent"], 40);
    let row = api
        .instance_row("tts-worker", "pi-kitchen", |r| r["global_version"] == 2)
        .await;
    assert_eq!(
        (&row["status"], &row["version"], &row["layers"]),
        (
            &json!("applied"),
            &json!(1),
            &json!({"/log_level": "global"})
        ),
        "{row}"
    );

    // The stt-worker printed nothing for global: the next line it prints is its own next
    // version, which the manager published after global's.
    api.put(
        "/api/v1/services/stt-worker/config",
        json!({"vad_threshold": 0.6}),
    )
    .await;
    let line = stt.next().await;
    assert_eq!(
        line,
        json!({"version": 2, "config": {"vad_threshold": 0.6}})
    );
    let row = api
        .instance_row("stt-worker", "pi-hall", |r| r["version"] == 2)
        .await;
    assert!(row.get("global_version").is_none(), "{row}");

    // The service's own document wins over global.
    api.put(
        "/api/v1/services/tts-worker/config",
        json!({"volume_percent": 40, "log_level": "DEBUG"}),
    )
    .await;
    let line = tts.next().await;
    assert_eq!(
        (&line["version"], &line["config"]["log_level"]),
        (&json!(2), &json!("DEBUG")),
        "{line}"
    );
    let row = api
        .instance_row("tts-worker", "pi-kitchen", |r| r["version"] == 2)
        .await;
    assert_eq!(row["layers"], json!({}), "{row}");
    drop(running);
}

#[tokio::test]
async fn an_override_reaches_its_instance_only_and_the_effective_view_names_each_layer() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = manager(&broker, &data).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: running.base.clone(),
        token: admin_token(&data),
    };
    create(
        &api.http,
        &api.base,
        &api.token,
        "global",
        json!({"log_level": "DEBUG"}),
    )
    .await;
    create(
        &api.http,
        &api.base,
        &api.token,
        "tts-worker",
        json!({"volume_percent": 40}),
    )
    .await;

    let env = [("TTS_CONCURRENCY", "2")];
    let mut kitchen =
        Echo::start(&api, &broker, dir.path(), "tts-worker", "pi-kitchen", &env).await;
    let mut hall = Echo::start(&api, &broker, dir.path(), "tts-worker", "pi-hall", &[]).await;
    let first = kitchen.next().await;
    assert_eq!(first["config"]["tts_concurrency"], 2, "{first}");
    assert_eq!(hall.next().await["config"]["volume_percent"], 40);
    api.instance_row("tts-worker", "pi-kitchen", |r| r["status"] == "applied")
        .await;
    api.instance_row("tts-worker", "pi-hall", |r| r["status"] == "applied")
        .await;

    let written = api
        .put(
            "/api/v1/services/tts-worker/instances/pi-kitchen/config",
            json!({"volume_percent": 120}),
        )
        .await;
    assert_eq!(written["version"], 1);
    let line = kitchen.next().await;
    assert_eq!(
        (&line["version"], &line["config"]["volume_percent"]),
        (&json!(1), &json!(120)),
        "{line}"
    );
    let row = api
        .instance_row("tts-worker", "pi-kitchen", |r| r["override_version"] == 1)
        .await;
    assert_eq!(
        row["layers"],
        json!({"/log_level": "global", "/volume_percent": "instance"}),
        "{row}"
    );

    // The hall printed nothing for the kitchen's override: its next line is the service's
    // next version, on which the kitchen's override stays on top.
    api.put(
        "/api/v1/services/tts-worker/config",
        json!({"volume_percent": 50, "piper_voice": "en_US-amy-medium"}),
    )
    .await;
    let line = hall.next().await;
    assert_eq!(
        (&line["version"], &line["config"]["volume_percent"]),
        (&json!(2), &json!(50)),
        "{line}"
    );
    let line = kitchen.next().await;
    assert_eq!(
        (
            &line["version"],
            &line["config"]["volume_percent"],
            &line["config"]["piper_voice"]
        ),
        (&json!(2), &json!(120), &json!("en_US-amy-medium")),
        "{line}"
    );
    let row = api
        .instance_row("tts-worker", "pi-hall", |r| r["version"] == 2)
        .await;
    assert_eq!(row["override_version"], 0, "{row}");
    api.instance_row("tts-worker", "pi-kitchen", |r| r["version"] == 2)
        .await;

    // Every key's layer: defaults, global, the service, the override, the environment.
    let effective = api
        .get("/api/v1/services/tts-worker/instances/pi-kitchen/effective")
        .await;
    let layers = &effective["layers"];
    for (key, layer) in [
        ("/tts_provider", "default"),
        ("/log_level", "global"),
        ("/piper_voice", "service"),
        ("/volume_percent", "instance"),
        ("/tts_concurrency", "env"),
    ] {
        assert_eq!(layers[key], layer, "{key}: {effective}");
    }
    assert_eq!(
        effective["versions"],
        json!({"service": 2, "global": 1, "instance": 1}),
        "{effective}"
    );
    assert_eq!(effective["config"]["volume_percent"], 120);
    assert_eq!(effective["config"]["log_level"], "DEBUG");
    let hall_view = api
        .get("/api/v1/services/tts-worker/instances/pi-hall/effective")
        .await;
    assert_eq!(hall_view["layers"]["/volume_percent"], "service");
    assert_eq!(hall_view["layers"]["/tts_concurrency"], "default");
    assert_eq!(hall_view["config"]["volume_percent"], 50);
    drop(running);
}
