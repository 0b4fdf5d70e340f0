//! Schemas over the API, with the demo fleet in examples/tars: registration, validation with
//! paths, defaults, dry runs, migration conflicts and search.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

fn fleet_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tars"))
}

const FLEET: [&str; 7] = [
    "global",
    "stt-worker",
    "tts-worker",
    "router",
    "llm-worker",
    "memory-worker",
    "wake-activation",
];

fn read(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn put_schema(
    app: &TestApp,
    service: &str,
    schema: &Value,
    query: &str,
) -> reqwest::Response {
    app.req(
        Method::PUT,
        &format!("/api/v1/services/{service}/schema{query}"),
    )
    .json(schema)
    .send()
    .await
    .unwrap()
}

async fn register_fleet(app: &TestApp) {
    for service in FLEET {
        let schema = read(fleet_dir().join(format!("{service}.schema.json")));
        let r = put_schema(app, service, &schema, "").await;
        assert_eq!(r.status(), StatusCode::OK, "{service}");
    }
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let r = app.req(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

/// (file, expected error path) for every invalid document, as the fixtures' README lists them.
fn invalid_documents() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(fleet_dir().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("- `invalid/")?;
            let (file, rest) = rest.split_once('`')?;
            let after = rest.split_once(": ")?.1;
            let key = after.split('`').nth(1)?;
            let path = if key.starts_with('/') {
                key.to_owned()
            } else {
                format!("/{key}")
            };
            Some((file.to_owned(), path))
        })
        .collect()
}

#[tokio::test]
async fn every_example_document_of_the_demo_fleet_is_accepted() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    for service in FLEET {
        let config = read(fleet_dir().join(format!("{service}.config.json")));
        let r = app.put_config(service, json!({"config": config})).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{service}: {}",
            r.text().await.unwrap()
        );
    }
    let list = get_json(&app, "/api/v1/services").await;
    let services = list["services"].as_array().unwrap();
    assert_eq!(services.len(), 7);
    assert!(
        services
            .iter()
            .all(|s| s["has_schema"] == true && s["version"] == 1)
    );
}

#[tokio::test]
async fn every_invalid_document_is_rejected_with_exactly_the_path_its_readme_names() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let cases = invalid_documents();
    assert_eq!(cases.len(), 14, "two invalid documents per service");
    for (file, path) in cases {
        let service = file.split('.').next().unwrap();
        let config = read(fleet_dir().join("invalid").join(&file));
        let r = app.put_config(service, json!({"config": config})).await;
        let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        let paths: Vec<_> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, [path.as_str()], "{file}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.len() > 5 && !message.contains("ValidationError"),
            "{file}: a sentence, not a type: {message}"
        );
    }
    let list = get_json(&app, "/api/v1/services").await;
    assert!(
        list["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["version"] == 0),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_service_with_a_schema_and_no_document_reads_as_all_defaults_at_version_0() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let r = app.get_config("tts-worker").await;
    assert_eq!(r.headers()["etag"], "\"0\"");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["version"], 0);
    let schema = read(fleet_dir().join("tts-worker.schema.json"));
    for (key, prop) in schema["properties"].as_object().unwrap() {
        match (prop.get("default"), prop.get("x-global")) {
            // A key taken from global is not the service's: its default lies below global.
            (_, Some(_)) => assert_eq!(body["config"].get(key), None, "{key}"),
            (Some(default), None) => assert_eq!(&body["config"][key], default, "{key}"),
            (None, None) => {}
        }
    }
    // A write without If-None-Match creates it: the schema makes the service known.
    let r = app
        .put_config(
            "tts-worker",
            json!({"config": {"volume_percent": 120}, "expected_version": 0}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["version"], 1);
    assert_eq!(body["config"]["volume_percent"], 120);
    assert_eq!(
        body["config"]["tts_provider"], schema["properties"]["tts_provider"]["default"],
        "defaults fill the rest"
    );
}

#[tokio::test]
async fn patches_and_restores_are_validated_too() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    app.put_config("router", json!({"config": {}})).await;
    let r = app
        .patch_config("router", json!({"config": {"router_wake_window_sec": 90}}))
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["path"], "/router_wake_window_sec");
    // A version written before a stricter schema cannot be restored into violating it.
    app.create("legacy", json!({"level": 9})).await;
    app.put_config("legacy", json!({"config": {"level": 1}}))
        .await;
    let strict =
        json!({"type": "object", "properties": {"level": {"type": "integer", "maximum": 5}}});
    assert_eq!(
        put_schema(&app, "legacy", &strict, "").await.status(),
        StatusCode::OK
    );
    let r = app
        .req(Method::POST, "/api/v1/services/legacy/restore")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["path"], "/level");
}

#[tokio::test]
async fn validate_is_a_dry_run_that_writes_nothing() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let bad = read(fleet_dir().join("invalid/tts-worker.1.json"));
    let r: Value = app
        .req(Method::POST, "/api/v1/services/tts-worker/validate")
        .json(&json!({"config": bad}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["valid"], false);
    assert_eq!(r["errors"][0]["path"], "/volume_percent");
    let good = read(fleet_dir().join("tts-worker.config.json"));
    let r: Value = app
        .req(Method::POST, "/api/v1/services/tts-worker/validate")
        .json(&json!({"config": good}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"valid": true, "errors": []}));
    assert_eq!(
        get_json(&app, "/api/v1/services/tts-worker/config").await["version"],
        0,
        "nothing stored"
    );
    assert!(
        get_json(&app, "/api/v1/history").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = app
        .req(Method::POST, "/api/v1/services/ghost/validate")
        .json(&json!({"config": {}}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_schema_the_stored_document_no_longer_fits_is_409_unless_migrated() {
    let app = spawn_app().await;
    app.create(
        "stt-worker",
        json!({"model": "large", "beam": 9, "legacy_flag": true}),
    )
    .await;
    let stricter = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "model": {"type": "string", "enum": ["small", "base"], "default": "base"},
            "beam": {"type": "integer", "maximum": 5, "default": 1},
        }
    });
    let r = put_schema(&app, "stt-worker", &stricter, "").await;
    let body = problem(r, StatusCode::CONFLICT).await;
    let mut paths: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/beam", "/legacy_flag", "/model"]);
    problem(
        app.req(Method::GET, "/api/v1/services/stt-worker/schema")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        get_json(&app, "/api/v1/services/stt-worker/config").await["version"],
        1,
        "nothing changed"
    );

    let r = put_schema(&app, "stt-worker", &stricter, "?migrate=true").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["migration"]["version"], 2);
    assert_eq!(body["migration"]["dropped"], json!(["/legacy_flag"]));
    let mut reset: Vec<_> = body["migration"]["reset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    reset.sort();
    assert_eq!(reset, ["/beam", "/model"]);
    let config = get_json(&app, "/api/v1/services/stt-worker/config").await;
    assert_eq!(config["config"], json!({"model": "base", "beam": 1}));
    let history = get_json(&app, "/api/v1/history?service=stt-worker").await;
    let migrated: Vec<_> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "migrate")
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        migrated.len(),
        3,
        "each dropped or reset key has its history: {history}"
    );
}

#[tokio::test]
async fn registering_the_same_schema_again_changes_nothing() {
    let app = spawn_app().await;
    let schema = read(fleet_dir().join("router.schema.json"));
    let first: Value = put_schema(&app, "router", &schema, "")
        .await
        .json()
        .await
        .unwrap();
    let again: Value = put_schema(&app, "router", &schema, "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["hash"], again["hash"]);
    assert_eq!(
        first["updated_at"], again["updated_at"],
        "not re-registered"
    );
    let got = get_json(&app, "/api/v1/services/router/schema").await;
    assert_eq!(got["schema"], schema);
}

#[tokio::test]
async fn a_schema_that_is_not_a_schema_is_422_and_replaces_nothing() {
    let app = spawn_app().await;
    for bad in [
        json!({"type": "objekt"}),
        json!({"type": "object", "properties": {"a": {"pattern": "("}}}),
        json!([1]),
    ] {
        problem(
            put_schema(&app, "router", &bad, "").await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    problem(
        app.req(Method::GET, "/api/v1/services/router/schema")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_new_schema_changes_the_defaults_a_read_shows() {
    let app = spawn_app().await;
    let v1 = json!({"type": "object", "properties": {"a": {"type": "integer", "default": 1}}});
    put_schema(&app, "svc", &v1, "").await;
    assert_eq!(
        get_json(&app, "/api/v1/services/svc/config").await["config"],
        json!({"a": 1})
    );
    let v2 = json!({"type": "object", "properties": {"a": {"type": "integer", "default": 2}}});
    put_schema(&app, "svc", &v2, "").await;
    assert_eq!(
        get_json(&app, "/api/v1/services/svc/config").await["config"],
        json!({"a": 2})
    );
}

#[tokio::test]
async fn search_ranks_exact_then_prefix_then_substring_then_description() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let search = |q: &'static str| {
        get_json(
            &app,
            Box::leak(format!("/api/v1/search?q={q}").into_boxed_str()),
        )
    };
    let r = search("tts_provider").await;
    assert_eq!(
        (
            r["items"][0]["service"].clone(),
            r["items"][0]["key"].clone()
        ),
        (json!("tts-worker"), json!("/tts_provider"))
    );
    let keys: Vec<String> = search("wake").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect();
    let first_non_prefix = keys
        .iter()
        .position(|k| !k.trim_start_matches('/').starts_with("wake"))
        .unwrap_or(keys.len());
    assert!(
        keys[..first_non_prefix]
            .iter()
            .all(|k| k.trim_start_matches('/').starts_with("wake"))
    );
    assert!(
        keys[first_non_prefix..]
            .iter()
            .all(|k| !k.trim_start_matches('/').starts_with("wake")),
        "prefix matches come first: {keys:?}"
    );
    let all = get_json(&app, "/api/v1/search?q=&limit=1000").await;
    assert_eq!(
        all["total"], 71,
        "an empty query lists every setting of the fleet"
    );
    let item = &all["items"][0];
    for field in [
        "service",
        "key",
        "type",
        "complexity",
        "description",
        "is_default",
    ] {
        assert!(!item[field].is_null(), "{field} in {item}");
    }
}

#[tokio::test]
async fn search_filters_by_service_complexity_and_type_and_masks_secrets() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let global = read(fleet_dir().join("global.config.json"));
    app.put_config("global", json!({"config": global})).await;
    let by_service = get_json(&app, "/api/v1/search?service=tts-worker&limit=1000").await;
    assert_eq!(by_service["total"], 21);
    let simple = get_json(&app, "/api/v1/search?complexity=simple&limit=1000").await;
    assert_eq!(simple["total"], 20);
    assert!(
        simple["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["complexity"] == "simple")
    );
    let booleans = get_json(&app, "/api/v1/search?type=boolean&limit=1000").await;
    assert!(booleans["total"].as_u64().unwrap() > 0);
    assert!(
        booleans["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] == "boolean")
    );
    let password = get_json(&app, "/api/v1/search?q=password&service=global").await;
    let item = password["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "/mqtt/password")
        .unwrap()
        .clone();
    assert_eq!(item["value"], "********");
    assert_eq!(item["is_default"], false);
    let raw = serde_json::to_string(&get_json(&app, "/api/v1/search?q=&limit=1000").await).unwrap();
    let secret = global["mqtt"]["password"].as_str().unwrap();
    assert!(!raw.contains(secret), "no secret value in search results");
    problem(
        app.req(Method::GET, "/api/v1/search?complexity=hard")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn the_global_service_holds_shared_settings_and_cannot_be_deleted() {
    let app = spawn_app().await;
    register_fleet(&app).await;
    let global = read(fleet_dir().join("global.config.json"));
    assert_eq!(
        app.put_config("global", json!({"config": global}))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .req(Method::DELETE, "/api/v1/services/global")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;
    assert_eq!(
        get_json(&app, "/api/v1/services/global/config").await["version"],
        1
    );
}

#[tokio::test]
async fn writing_back_what_a_read_shows_leaves_a_global_setting_to_global() {
    let app = spawn_app().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "log_level": {"type": "string", "default": "info", "x-global": "/log/level"},
            "voice": {"type": "string", "default": "amy"}
        }
    });
    assert_eq!(
        put_schema(&app, "tts", &schema, "").await.status(),
        StatusCode::OK
    );
    app.create("global", json!({"log": {"level": "warn"}}))
        .await;
    app.create("tts", json!({"voice": "alba"})).await;

    // The read fills the service's own defaults, not the one below global.
    let read = get_json(&app, "/api/v1/services/tts/config").await;
    assert_eq!(read["config"], json!({"voice": "alba"}));

    // A form saved whole, or a file edited and sent back, with one change.
    let mut config = read["config"].clone();
    config["voice"] = json!("jenny");
    let r = app
        .req(Method::PUT, "/api/v1/services/tts/config")
        .header("If-Match", format!("\"{}\"", read["version"]))
        .json(&json!({"config": config}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let effective = get_json(&app, "/api/v1/services/tts/instances/pi/effective").await;
    assert_eq!(effective["config"]["log_level"], "warn", "{effective}");
    assert_eq!(effective["layers"]["/log_level"], "global", "{effective}");
    assert_eq!(effective["layers"]["/voice"], "service", "{effective}");

    // Set on purpose, the service's own value wins and reads back.
    let r = app
        .patch_config("tts", json!({"config": {"log_level": "debug"}}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let read = get_json(&app, "/api/v1/services/tts/config").await;
    assert_eq!(read["config"]["log_level"], "debug");
    let effective = get_json(&app, "/api/v1/services/tts/instances/pi/effective").await;
    assert_eq!(effective["layers"]["/log_level"], "service", "{effective}");
}
