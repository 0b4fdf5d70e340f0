//! `dials seed` as a person runs it twice: it creates what is missing, and never clobbers a
//! live edit or a real secret unless asked to.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{Running, admin_token, cli, start};

const REAL_KEY: &str = "sk-live-7c1e9a4f20b3d";

struct Fleet {
    running: Running,
    admin: String,
    http: reqwest::Client,
}

impl Fleet {
    async fn start(data: &Path) -> Self {
        let running = start(data).await;
        Self {
            admin: admin_token(data),
            running,
            http: reqwest::Client::new(),
        }
    }

    /// `dials seed ARGS --json`: exit code and one row per service, by name.
    async fn seed(&self, args: &[&str]) -> (i32, std::collections::BTreeMap<String, Value>) {
        let mut all = vec!["seed", "--json", "--server", &self.running.base, "--token"];
        all.push(&self.admin);
        all.extend_from_slice(args);
        let (code, out, err) = cli(&all, &[]).await;
        let rows: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let rows = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["service"].as_str().unwrap().to_owned(), r.clone()))
            .collect();
        (code, rows)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.running.base))
            .bearer_auth(&self.admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }

    async fn config(&self, service: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/api/v1/services/{service}/config"),
            None,
        )
        .await
    }

    async fn reveal(&self, service: &str, key: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/services/{service}/secrets/{key}/reveal"),
                Some(json!({"justification": "test"})),
            )
            .await;
        v["value"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn a_second_seed_keeps_a_live_edit_and_a_real_secret_and_says_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(dir.path()).await;
    let (code, first) = fleet.seed(&[]).await;
    assert_eq!(code, 0, "{first:?}");
    assert_eq!(first.len(), 7);
    assert!(
        first
            .values()
            .all(|r| r["schema"] == "created" && r["config"] == "created" && r["version"] == 1),
        "{first:?}"
    );

    // Live edits: a value, and the real API key in place of the example.
    fleet
        .call(
            reqwest::Method::PATCH,
            "/api/v1/services/tts-worker/config",
            Some(json!({"config": {"volume_percent": 35}})),
        )
        .await;
    fleet
        .call(
            reqwest::Method::PATCH,
            "/api/v1/services/llm-worker/config",
            Some(json!({"config": {"openai_api_key": REAL_KEY}})),
        )
        .await;

    let (code, second) = fleet.seed(&[]).await;
    assert_eq!(code, 0, "{second:?}");
    let tts = &second["tts-worker"];
    assert_eq!(
        (
            tts["schema"].clone(),
            tts["config"].clone(),
            tts["version"].clone()
        ),
        (json!("unchanged"), json!("differs"), json!(2)),
        "{tts}"
    );
    assert_eq!(
        tts["changes"],
        json!([{"key": "/volume_percent", "op": "changed", "stored": 35, "seed": 80}])
    );
    // The stored secret is not compared with the example value, let alone replaced by it.
    assert_eq!(second["llm-worker"]["config"], "unchanged", "{second:?}");
    for (name, row) in &second {
        if name != "tts-worker" {
            assert_eq!(row["config"], "unchanged", "{name}: {row}");
        }
    }
    assert_eq!(
        fleet.config("tts-worker").await["config"]["volume_percent"],
        35
    );
    assert_eq!(fleet.config("tts-worker").await["version"], 2);

    // The human output names each outcome.
    let (code, human, _) = cli(
        &[
            "seed",
            "--server",
            &fleet.running.base,
            "--token",
            &fleet.admin,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    assert!(human.contains("differs (not applied)"), "{human}");
    assert!(human.contains("unchanged"), "{human}");
    assert!(human.contains("/volume_percent"), "{human}");

    // A dry run of --overwrite says what it would do and does nothing.
    let (code, dry) = fleet.seed(&["--overwrite", "--dry-run"]).await;
    assert_eq!(code, 0);
    assert_eq!(dry["tts-worker"]["config"], "would_overwrite");
    assert_eq!(fleet.config("tts-worker").await["version"], 2);

    // --overwrite puts the folder's value back, and still keeps the real secret.
    let (code, over) = fleet.seed(&["--overwrite"]).await;
    assert_eq!(code, 0, "{over:?}");
    assert_eq!(over["tts-worker"]["config"], "overwritten");
    assert_eq!(over["tts-worker"]["version"], 3);
    assert_eq!(over["llm-worker"]["config"], "unchanged");
    assert_eq!(
        fleet.config("tts-worker").await["config"]["volume_percent"],
        80
    );
    assert_eq!(fleet.reveal("llm-worker", "openai_api_key").await, REAL_KEY);

    // And a seed after that changes nothing at all.
    let (_, last) = fleet.seed(&[]).await;
    assert!(
        last.values()
            .all(|r| r["schema"] == "unchanged" && r["config"] == "unchanged"),
        "{last:?}"
    );
    fleet.running.signal("TERM").await;
}

#[tokio::test]
async fn a_schema_the_stored_config_no_longer_fits_is_registered_only_with_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(&dir.path().join("data")).await;
    assert_eq!(fleet.seed(&[]).await.0, 0);

    // A newer folder whose tts-worker allows at most 50 % volume (the stored config has 80).
    let folder = dir.path().join("v2");
    std::fs::create_dir(&folder).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tars");
    let mut schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("tts-worker.schema.json")).unwrap(),
    )
    .unwrap();
    schema["properties"]["volume_percent"]["maximum"] = json!(50);
    schema["properties"]["volume_percent"]["default"] = json!(50);
    std::fs::write(
        folder.join("tts-worker.schema.json"),
        serde_json::to_vec(&schema).unwrap(),
    )
    .unwrap();
    let folder = folder.to_str().unwrap();

    let (code, rows) = fleet.seed(&[folder]).await;
    assert_eq!(code, 0);
    assert_eq!(rows["tts-worker"]["schema"], "differs");

    let (code, rows) = fleet.seed(&[folder, "--overwrite"]).await;
    assert_eq!(code, 1, "a schema the config does not fit is an error");
    let error = rows["tts-worker"]["error"].as_str().unwrap();
    assert!(error.contains("--migrate"), "{error}");
    assert_eq!(fleet.config("tts-worker").await["version"], 1);

    let (code, rows) = fleet.seed(&[folder, "--migrate"]).await;
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(rows["tts-worker"]["schema"], "overwritten");
    let now = fleet.config("tts-worker").await;
    assert_eq!(
        (
            now["version"].clone(),
            now["config"]["volume_percent"].clone()
        ),
        (json!(2), json!(50))
    );
    fleet.running.signal("TERM").await;
}
