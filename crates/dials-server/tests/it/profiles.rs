//! Profiles, the fleet restore, export and import: many services written at once, all or
//! nothing, with a new version (and an MQTT message) only where something changes.

use std::time::Duration;

use dials_mqtt::BrokerSetting;
use dials_server::ServerSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::helpers::{TestApp, problem, spawn_app, spawn_with};

const KEY_V1: &str = "sk-first-0123456789";
const KEY_V2: &str = "sk-second-987654321";

fn llm_schema(max_tokens: u64) -> Value {
    json!({
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "max_tokens": {"type": "integer", "maximum": max_tokens},
            "api_key": {"type": "string", "x-secret": true}
        }
    })
}

async fn put_schema(app: &TestApp, service: &str, schema: Value) {
    let r = app
        .req(Method::PUT, &format!("/api/v1/services/{service}/schema"))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn put(app: &TestApp, service: &str, config: Value) -> Value {
    let r = app.put_config(service, json!({ "config": config })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.req(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn config_of(app: &TestApp, service: &str) -> Value {
    app.get_json(&format!("/api/v1/services/{service}/config"))
        .await
}

async fn reveal(app: &TestApp, service: &str, key: &str) -> Value {
    let r = post(
        app,
        &format!("/api/v1/services/{service}/secrets/{key}/reveal"),
        json!({"justification": "checking what a bulk write restored"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["value"].clone()
}

/// A fleet of three: `llm` (schema with a secret), `tts` and `stt` (no schema).
async fn fleet(app: &TestApp) {
    put_schema(app, "llm", llm_schema(4096)).await;
    put(
        app,
        "llm",
        json!({"model": "big", "max_tokens": 2000, "api_key": KEY_V1}),
    )
    .await;
    app.create("tts", json!({"volume": 5, "voice": "amy"}))
        .await;
    app.create("stt", json!({"model": "small"})).await;
}

#[tokio::test]
async fn a_profile_is_saved_listed_shown_and_deleted_with_secrets_masked() {
    let app = spawn_app().await;
    fleet(&app).await;
    let r = post(
        &app,
        "/api/v1/profiles",
        json!({"name": "night", "description": "quiet", "services": ["tts", "llm"]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["services"][0]["service"], "llm");
    assert_eq!(shown["services"][0]["config"]["api_key"], "********");
    assert!(!shown.to_string().contains(KEY_V1));
    assert_eq!(shown, app.get_json("/api/v1/profiles/night").await);

    let again = post(&app, "/api/v1/profiles", json!({"name": "night"})).await;
    let body = problem(again, StatusCode::CONFLICT).await;
    assert!(
        body["type"].as_str().unwrap().ends_with("conflict"),
        "{body}"
    );
    let replaced = post(
        &app,
        "/api/v1/profiles",
        json!({"name": "night", "overwrite": true}),
    )
    .await;
    assert_eq!(replaced.status(), StatusCode::CREATED);

    let list = app.get_json("/api/v1/profiles").await;
    assert_eq!(list["profiles"][0]["name"], "night");
    assert_eq!(
        list["profiles"][0]["services"],
        json!(["llm", "stt", "tts"])
    );

    let missing = post(
        &app,
        "/api/v1/profiles",
        json!({"name": "x", "services": ["nope"]}),
    )
    .await;
    problem(missing, StatusCode::NOT_FOUND).await;
    let bad = post(&app, "/api/v1/profiles", json!({"name": "Bad Name"})).await;
    problem(bad, StatusCode::BAD_REQUEST).await;

    let r = app
        .req(Method::DELETE, "/api/v1/profiles/night")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .req(Method::GET, "/api/v1/profiles/night")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn applying_a_profile_brings_back_its_documents_and_sealed_secrets() {
    let app = spawn_app().await;
    fleet(&app).await;
    let r = post(&app, "/api/v1/profiles", json!({"name": "day"})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    put(
        &app,
        "llm",
        json!({"model": "small", "max_tokens": 100, "api_key": KEY_V2}),
    )
    .await;
    put(&app, "tts", json!({"volume": 1, "voice": "amy"})).await;

    let dry = post(&app, "/api/v1/profiles/day/apply", json!({"dry_run": true})).await;
    assert_eq!(dry.status(), StatusCode::OK);
    let plan: Value = dry.json().await.unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["ok"], true);
    let tts = &plan["services"][2];
    assert_eq!(
        (
            &tts["service"],
            &tts["action"],
            &tts["from_version"],
            &tts["version"]
        ),
        (&json!("tts"), &json!("update"), &json!(2), &json!(3))
    );
    assert_eq!(
        tts["changes"],
        json!([{"key": "/volume", "old": 1, "new": 5}])
    );
    assert_eq!(plan["services"][1]["action"], "unchanged");
    assert!(!plan.to_string().contains(KEY_V1) && !plan.to_string().contains(KEY_V2));
    assert_eq!(
        config_of(&app, "tts").await["version"],
        2,
        "a dry run writes nothing"
    );

    let r = post(&app, "/api/v1/profiles/day/apply", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let plan: Value = r.json().await.unwrap();
    assert_eq!(plan["dry_run"], false);
    assert_eq!(config_of(&app, "tts").await["config"]["volume"], 5);
    assert_eq!(config_of(&app, "tts").await["version"], 3);
    let llm = config_of(&app, "llm").await;
    assert_eq!(
        (llm["config"]["model"].clone(), llm["version"].clone()),
        (json!("big"), json!(3))
    );
    assert_eq!(reveal(&app, "llm", "api_key").await, KEY_V1);
    assert_eq!(config_of(&app, "stt").await["version"], 1);
}

#[tokio::test]
async fn a_profile_with_one_invalid_member_applies_nothing() {
    let app = spawn_app().await;
    fleet(&app).await;
    post(&app, "/api/v1/profiles", json!({"name": "big"})).await;
    put(&app, "tts", json!({"volume": 1, "voice": "amy"})).await;
    put(&app, "llm", json!({"model": "big", "max_tokens": 100})).await;
    // The schema in force now refuses the profile's max_tokens of 2000.
    put_schema(&app, "llm", llm_schema(1000)).await;
    let before = app.get_json("/api/v1/status").await["revision"].clone();

    let dry = post(&app, "/api/v1/profiles/big/apply", json!({"dry_run": true})).await;
    let plan: Value = dry.json().await.unwrap();
    assert_eq!(plan["ok"], false);
    assert_eq!(plan["services"][0]["action"], "invalid");
    assert_eq!(plan["services"][0]["errors"][0]["path"], "/max_tokens");

    let r = post(&app, "/api/v1/profiles/big/apply", json!({})).await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["service"], "llm", "{body}");
    assert_eq!(body["errors"][0]["path"], "/max_tokens", "{body}");
    assert_eq!(app.get_json("/api/v1/status").await["revision"], before);
    assert_eq!(config_of(&app, "tts").await["config"]["volume"], 1);
}

#[tokio::test]
async fn a_fleet_restore_brings_three_services_back_to_their_state_at_an_instant() {
    let app = spawn_app().await;
    fleet(&app).await;
    put(&app, "tts", json!({"volume": 7, "voice": "amy"})).await;
    let then: Vec<Value> = vec![
        config_of(&app, "llm").await["config"].clone(),
        config_of(&app, "tts").await["config"].clone(),
        config_of(&app, "stt").await["config"].clone(),
    ];
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(
        &app,
        "llm",
        json!({"model": "tiny", "max_tokens": 10, "api_key": KEY_V2}),
    )
    .await;
    put(&app, "tts", json!({"volume": 1})).await;
    let r = app
        .req(Method::DELETE, "/api/v1/services/stt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.create("newcomer", json!({"x": 1})).await;
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();

    let future = post(
        &app,
        "/api/v1/restore",
        json!({"at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    problem(future, StatusCode::BAD_REQUEST).await;

    let r = post(&app, "/api/v1/restore", json!({"at": at_text})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let plan: Value = r.json().await.unwrap();
    let actions: Vec<(String, String)> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().into(),
                s["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("llm".into(), "update".into()),
            ("newcomer".into(), "skipped".into()),
            ("stt".into(), "create".into()),
            ("tts".into(), "update".into()),
        ]
    );
    let now: Vec<Value> = vec![
        config_of(&app, "llm").await["config"].clone(),
        config_of(&app, "tts").await["config"].clone(),
        config_of(&app, "stt").await["config"].clone(),
    ];
    assert_eq!(now, then);
    assert_eq!(reveal(&app, "llm", "api_key").await, KEY_V1);
    assert_eq!(config_of(&app, "newcomer").await["config"], json!({"x": 1}));

    // Restoring to the same instant again changes nothing.
    let r = post(&app, "/api/v1/restore", json!({"at": at_text})).await;
    let plan: Value = r.json().await.unwrap();
    assert!(
        plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "unchanged" || s["action"] == "skipped"),
        "{plan}"
    );

    let operator = crate::helpers::token(&app, "ops", "operator", None).await;
    let r = app
        .client
        .post(app.url("/api/v1/restore"))
        .bearer_auth(operator)
        .json(&json!({"at": at_text}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn applying_a_profile_publishes_only_the_services_that_change() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path());
    settings.mqtt = BrokerSetting::parse(&broker.url()).unwrap();
    let app = spawn_with(settings).await;
    fleet(&app).await;
    post(&app, "/api/v1/profiles", json!({"name": "day"})).await;
    put(&app, "tts", json!({"volume": 1, "voice": "amy"})).await;
    let mut state = app.state.publisher.as_ref().unwrap().watch_state();
    tokio::time::timeout(
        Duration::from_secs(10),
        state.wait_for(|s| s.published >= 4),
    )
    .await
    .expect("published in time")
    .unwrap();
    let mut sub = Subscriber::connect(broker.addr(), "config/updated/#").await;

    let r = post(&app, "/api/v1/profiles/day/apply", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A later write to another service: everything the apply published arrives before it.
    app.create("sentinel", json!({"end": true})).await;
    let mut seen = Vec::new();
    loop {
        let m = sub.next(10).await;
        let env = m.json();
        if m.retain || (env["service"] == "tts" && env["version"] == 2) {
            // What was there before the apply.
            continue;
        }
        let service = env["service"].as_str().unwrap().to_owned();
        if service == "sentinel" {
            break;
        }
        seen.push((service, env["version"].as_u64().unwrap()));
    }
    assert_eq!(seen, [("tts".to_owned(), 3)]);
    assert_eq!(config_of(&app, "llm").await["version"], 1);
    assert_eq!(config_of(&app, "stt").await["version"], 1);
}

async fn export(app: &TestApp, passphrase: Option<&str>, accept: &str) -> String {
    let mut r = app
        .req(Method::GET, "/api/v1/export")
        .header("Accept", accept);
    if let Some(p) = passphrase {
        r = r.header("Dials-Export-Passphrase", p);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

async fn import(
    app: &TestApp,
    file: &str,
    content_type: &str,
    passphrase: Option<&str>,
    dry_run: bool,
) -> reqwest::Response {
    let mut r = app
        .req(Method::POST, &format!("/api/v1/import?dry_run={dry_run}"))
        .header("Content-Type", content_type)
        .body(file.to_owned());
    if let Some(p) = passphrase {
        r = r.header("Dials-Export-Passphrase", p);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn an_export_imported_into_an_empty_manager_gives_the_same_fleet_and_a_reimport_changes_nothing()
 {
    let source = spawn_app().await;
    fleet(&source).await;
    post(
        &source,
        "/api/v1/profiles",
        json!({"name": "day", "description": "d"}),
    )
    .await;

    let plain = export(&source, None, "application/json").await;
    assert!(!plain.contains(KEY_V1));
    let file: Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(file["format"], 1);
    assert!(file.get("secrets").is_none());
    let llm = &file["services"][0];
    assert_eq!(
        (llm["name"].clone(), llm["secrets"].clone()),
        (json!("llm"), json!(["/api_key"]))
    );

    let sealed = export(&source, Some("correct horse battery"), "application/json").await;
    assert!(!sealed.contains(KEY_V1), "no plaintext secret in the file");
    assert!(!sealed.contains("correct horse"));

    let target = spawn_app().await;
    let wrong = import(
        &target,
        &sealed,
        "application/json",
        Some("wrong horse"),
        false,
    )
    .await;
    let body = problem(wrong, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase"),
        "{body}"
    );
    let none = import(&target, &sealed, "application/json", None, false).await;
    problem(none, StatusCode::BAD_REQUEST).await;

    let dry = import(
        &target,
        &sealed,
        "application/json",
        Some("correct horse battery"),
        true,
    )
    .await;
    assert_eq!(dry.status(), StatusCode::OK);
    let plan: Value = dry.json().await.unwrap();
    assert_eq!(plan["services"][0]["action"], "create");
    assert_eq!(
        plan["schemas"],
        json!([{"name": "llm", "action": "create"}])
    );
    assert_eq!(
        plan["profiles"],
        json!([{"name": "day", "action": "create"}])
    );
    assert!(
        target.get_json("/api/v1/services").await["services"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let r = import(
        &target,
        &sealed,
        "application/json",
        Some("correct horse battery"),
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    for service in ["llm", "tts", "stt"] {
        assert_eq!(
            config_of(&target, service).await["config"],
            config_of(&source, service).await["config"],
            "{service}"
        );
    }
    assert_eq!(
        target.get_json("/api/v1/services/llm/schema").await["schema"],
        source.get_json("/api/v1/services/llm/schema").await["schema"]
    );
    assert_eq!(reveal(&target, "llm", "api_key").await, KEY_V1);
    let profile_there = target.get_json("/api/v1/profiles/day").await;
    let profile_here = source.get_json("/api/v1/profiles/day").await;
    assert_eq!(profile_there, profile_here);

    // The same file again, and the YAML export of the source: nothing changes.
    let revision = target.get_json("/api/v1/status").await["revision"].clone();
    let again = import(
        &target,
        &sealed,
        "application/json",
        Some("correct horse battery"),
        false,
    )
    .await;
    let plan: Value = again.json().await.unwrap();
    assert!(
        plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "unchanged"),
        "{plan}"
    );
    assert_eq!(plan["profiles"][0]["action"], "unchanged");
    assert_eq!(plan["schemas"][0]["action"], "unchanged");
    let yaml = export(&source, None, "application/yaml").await;
    assert!(yaml.starts_with("format: 1"), "{yaml}");
    let r = import(&target, &yaml, "application/yaml", None, false).await;
    let plan: Value = r.json().await.unwrap();
    assert!(
        plan["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "unchanged"),
        "{plan}"
    );
    assert_eq!(
        target.get_json("/api/v1/status").await["revision"],
        revision
    );
    assert_eq!(reveal(&target, "llm", "api_key").await, KEY_V1);

    // Applying the imported profile after a change brings the imported secret back.
    put(
        &target,
        "llm",
        json!({"model": "x", "max_tokens": 1, "api_key": KEY_V2}),
    )
    .await;
    let r = post(&target, "/api/v1/profiles/day/apply", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(reveal(&target, "llm", "api_key").await, KEY_V1);
}

#[tokio::test]
async fn a_file_of_another_format_or_none_is_400_saying_which() {
    let app = spawn_app().await;
    // A later format, whose fields this build does not know, in JSON and in YAML.
    for (file, content_type) in [
        (
            json!({"format": 2, "written": "2027-01-01T00:00:00Z", "fleet": []}).to_string(),
            "application/json",
        ),
        (
            "format: 2\nwritten: 2027-01-01T00:00:00Z\nfleet: []\n".to_owned(),
            "application/yaml",
        ),
    ] {
        let r = import(&app, &file, content_type, None, false).await;
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            body["detail"], "export format 2 is not one this build reads (it reads 1)",
            "{content_type}"
        );
    }
    // A broken file of this format, and a file that is no export at all, say what is wrong.
    for file in [
        json!({"format": 1, "services": []}).to_string(),
        "{\"format\": 1, \"services\": [".to_owned(),
        "[1, 2]".to_owned(),
    ] {
        let r = import(&app, &file, "application/json", None, false).await;
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the file is not a dials export: "),
            "{file}: {detail}"
        );
    }
    assert!(
        app.get_json("/api/v1/services").await["services"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_import_with_one_invalid_service_writes_nothing() {
    let app = spawn_app().await;
    let file = json!({
        "format": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "services": [
            {"name": "good", "config": {"a": 1}},
            {"name": "llm", "config": {"max_tokens": 99999}, "schema": llm_schema(10)}
        ],
        "profiles": []
    });
    let r = import(&app, &file.to_string(), "application/json", None, false).await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["service"], "llm");
    assert!(
        app.get_json("/api/v1/services").await["services"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = app
        .req(Method::GET, "/api/v1/services/llm/schema")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A schema alone must fit the document the service already has.
    app.create("llm", json!({"max_tokens": 500})).await;
    let file = json!({
        "format": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "services": [{"name": "llm", "schema": llm_schema(10)}]
    });
    let r = import(&app, &file.to_string(), "application/json", None, false).await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["path"], "/max_tokens", "{body}");
    let r = app
        .req(Method::GET, "/api/v1/services/llm/schema")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the schema did not land");
    let r = import(&app, "{\"format\": 9}", "application/json", None, false).await;
    problem(r, StatusCode::BAD_REQUEST).await;
    let r = import(&app, "x", "text/plain", None, false).await;
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}
