//! Secrets: sealed at rest, masked for everyone but the service itself, kept across a masked
//! read written back, set and removed through their own routes, revealed only with a reason.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app, token};

/// The llm-worker of these tests: a top-level secret with a minimum length, and a secret
/// inside a nested object.
fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "model": {"type": "string", "default": "gpt-4o-mini"},
            "api_key": {"type": "string", "minLength": 10, "x-secret": true, "title": "API key"},
            "mqtt": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "host": {"type": "string", "default": "127.0.0.1"},
                    "password": {"type": "string", "x-secret": true}
                }
            }
        }
    })
}

const KEY: &str = "sk-live-0123456789";
const PASSWORD: &str = "broker-pass-42";

/// A manager with the llm-worker schema and a config holding both secrets, and the worker's
/// own service token.
async fn with_secrets() -> (TestApp, String) {
    let app = spawn_app().await;
    let r = app
        .req(Method::PUT, "/api/v1/services/llm-worker/schema")
        .json(&schema())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .put_config(
            "llm-worker",
            json!({"config": {"model": "gpt-4o", "api_key": KEY, "mqtt": {"password": PASSWORD}}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let own = token(&app, "llm-worker", "service", Some("llm-worker")).await;
    (app, own)
}

async fn get_as(app: &TestApp, who: &str, path: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(who)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn send_as(
    app: &TestApp,
    who: &str,
    method: Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(who)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_secret_reads_masked_for_everyone_but_its_own_service() {
    let (app, own) = with_secrets().await;
    let viewer = token(&app, "viewer", "viewer", None).await;
    let path = "/api/v1/services/llm-worker/config";
    for who in [&app.token, &viewer] {
        let (status, body) = get_as(&app, who, path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["config"],
            json!({"model": "gpt-4o", "api_key": "********",
                   "mqtt": {"host": "127.0.0.1", "password": "********"}})
        );
        assert!(!body.to_string().contains(KEY), "{body}");
    }
    let (status, body) = get_as(&app, &own, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["config"]["api_key"], KEY);
    assert_eq!(body["config"]["mqtt"]["password"], PASSWORD);
    assert_eq!(
        body["secrets"],
        json!({"/api_key": 1, "/mqtt/password": 1}),
        "each secret's version is the config version that set it"
    );
}

#[tokio::test]
async fn a_masked_read_written_back_keeps_every_secret() {
    let (app, own) = with_secrets().await;
    let path = "/api/v1/services/llm-worker/config";
    let (_, masked) = get_as(&app, &app.token, path).await;
    let mut edited = masked["config"].clone();
    edited["model"] = json!("gpt-4.1");
    let r = app
        .put_config(
            "llm-worker",
            json!({"config": edited, "expected_version": 1}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let written: Value = r.json().await.unwrap();
    assert_eq!(written["version"], 2);
    assert_eq!(written["config"]["api_key"], "********");

    // Leaving a secret out of a PUT keeps it too.
    let r = app
        .put_config("llm-worker", json!({"config": {"model": "gpt-5"}}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // So does the mask in a PATCH.
    let r = app
        .patch_config(
            "llm-worker",
            json!({"config": {"api_key": "********", "model": "o3"}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let (_, body) = get_as(&app, &own, path).await;
    assert_eq!(body["version"], 4);
    assert_eq!(
        (
            body["config"]["api_key"].clone(),
            body["config"]["model"].clone()
        ),
        (json!(KEY), json!("o3"))
    );
    assert_eq!(
        body["secrets"],
        json!({"/api_key": 1, "/mqtt/password": 1}),
        "untouched secrets keep their version"
    );
    // History of the key: set once, never changed since.
    let h: Value = app
        .get_json("/api/v1/history?service=llm-worker&key=/api_key")
        .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1, "{h}");

    // A PATCH with null removes a secret, as it removes any key.
    let r = app
        .patch_config("llm-worker", json!({"config": {"api_key": null}}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = get_as(&app, &own, path).await;
    assert!(body["config"].get("api_key").is_none(), "{body}");
    assert_eq!(body["secrets"], json!({"/mqtt/password": 1}));
}

#[tokio::test]
async fn setting_a_secret_is_a_version_whose_history_and_diff_show_only_masks() {
    let (app, own) = with_secrets().await;
    let operator = token(&app, "ops", "operator", None).await;
    let r = send_as(
        &app,
        &operator,
        Method::PUT,
        "/api/v1/services/llm-worker/secrets/api_key",
        json!({"value": "sk-live-rotated-99", "reason": "rotated at the provider"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let written: Value = r.json().await.unwrap();
    assert_eq!(written["version"], 2);
    assert_eq!(
        (
            written["secret"]["key"].clone(),
            written["secret"]["set"].clone(),
            written["secret"]["version"].clone(),
            written["secret"]["updated_by"].clone()
        ),
        (json!("/api_key"), json!(true), json!(2), json!("ops"))
    );
    assert!(!written.to_string().contains("rotated-99"), "{written}");
    // The same value again changes nothing and says when it was set.
    let again: Value = send_as(
        &app,
        &operator,
        Method::PUT,
        "/api/v1/services/llm-worker/secrets/api_key",
        json!({"value": "sk-live-rotated-99"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (again["version"].clone(), again["secret"].clone()),
        (json!(2), written["secret"].clone())
    );

    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["config"]["api_key"], "sk-live-rotated-99");

    // The nested secret, by its pointer.
    let r = send_as(
        &app,
        &operator,
        Method::PUT,
        "/api/v1/services/llm-worker/secrets/mqtt/password",
        json!({"value": "new-pass"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["config"]["mqtt"]["password"], "new-pass");

    let history: Value = app.get_json("/api/v1/history?service=llm-worker").await;
    let entry = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == 2)
        .cloned()
        .unwrap();
    assert_eq!(
        (
            entry["key"].clone(),
            entry["kind"].clone(),
            entry["old"].clone(),
            entry["new"].clone(),
            entry["reason"].clone()
        ),
        (
            json!("/api_key"),
            json!("secret"),
            json!("********"),
            json!("********"),
            json!("rotated at the provider")
        )
    );
    let diff: Value = app
        .get_json("/api/v1/services/llm-worker/diff?from=1&to=2")
        .await;
    assert_eq!(
        diff["changes"],
        json!([{"op": "changed", "key": "/api_key", "old": "********", "new": "********"}])
    );
    let v1: Value = app.get_json("/api/v1/services/llm-worker/versions/1").await;
    assert_eq!(v1["config"]["api_key"], "********");
    for body in [&history, &diff, &v1] {
        let text = body.to_string();
        assert!(
            !text.contains(KEY) && !text.contains("rotated-99") && !text.contains("$secret"),
            "{text}"
        );
    }

    // The listing says what is set, by whom and under which master key, never a value.
    let list: Value = app.get_json("/api/v1/services/llm-worker/secrets").await;
    let secrets = list["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "{list}");
    assert_eq!(
        (
            secrets[0]["key"].clone(),
            secrets[0]["title"].clone(),
            secrets[0]["version"].clone()
        ),
        (json!("/api_key"), json!("API key"), json!(2))
    );
    assert_eq!(
        secrets[0]["key_id"],
        app.state.keys.master.current().id(),
        "{list}"
    );
    assert!(!list.to_string().contains("new-pass"));

    // Deleting it is a version too; a schema default (none here) would read again.
    let r = send_as(
        &app,
        &operator,
        Method::DELETE,
        "/api/v1/services/llm-worker/secrets/api_key",
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["version"], 4);
    assert!(body["config"].get("api_key").is_none());
    let r = send_as(
        &app,
        &operator,
        Method::DELETE,
        "/api/v1/services/llm-worker/secrets/api_key",
        Value::Null,
    )
    .await;
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn revealing_needs_an_operator_and_a_reason_and_is_audited_first() {
    let (app, own) = with_secrets().await;
    let viewer = token(&app, "viewer", "viewer", None).await;
    let operator = token(&app, "ops", "operator", None).await;
    let path = "/api/v1/services/llm-worker/secrets/api_key/reveal";
    let because = json!({"justification": "checking the key the provider shows as revoked"});
    for who in [&viewer, &own] {
        let r = send_as(&app, who, Method::POST, path, because.clone()).await;
        let body = problem(r, StatusCode::FORBIDDEN).await;
        assert!(!body.to_string().contains(KEY));
    }
    for bad in [
        json!({"justification": "   "}),
        json!({}),
        json!({"justification": "x".repeat(1001)}),
    ] {
        let r = send_as(&app, &operator, Method::POST, path, bad).await;
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    let r = send_as(&app, &operator, Method::POST, path, because.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let revealed: Value = r.json().await.unwrap();
    assert_eq!(
        revealed,
        json!({"service": "llm-worker", "key": "/api_key", "version": 1, "value": KEY})
    );
    let log: Value = app.get_json("/api/v1/audit?action=secret.").await;
    let entry = &log["items"][0];
    assert_eq!(
        (
            entry["action"].clone(),
            entry["actor"].clone(),
            entry["target"].clone(),
            entry["reason"].clone(),
            entry["address"].clone()
        ),
        (
            json!("secret.reveal"),
            json!("ops"),
            json!("llm-worker/api_key"),
            because["justification"].clone(),
            json!("127.0.0.1")
        )
    );
    assert!(!log.to_string().contains(KEY), "no value in the log");

    // A key that is not secret, or not set, has nothing to reveal.
    let r = send_as(
        &app,
        &operator,
        Method::POST,
        "/api/v1/services/llm-worker/secrets/model/reveal",
        because.clone(),
    )
    .await;
    problem(r, StatusCode::NOT_FOUND).await;
    let r = send_as(
        &app,
        &operator,
        Method::POST,
        "/api/v1/services/llm-worker/secrets/api_key",
        because,
    )
    .await;
    // The secret's own URL takes PUT and DELETE; revealing is POST on `…/reveal`.
    problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn a_secret_value_is_checked_against_its_schema_without_being_quoted() {
    let (app, _) = with_secrets().await;
    let r = app
        .req(Method::PUT, "/api/v1/services/llm-worker/secrets/api_key")
        .json(&json!({"value": "short-key"}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["path"], "/api_key", "{body}");
    assert!(!body.to_string().contains("short-key"), "{body}");
    let r = app
        .put_config(
            "llm-worker",
            json!({"config": {"api_key": "tiny", "model": "x"}}),
        )
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(!body.to_string().contains("tiny"), "{body}");
    let r = app
        .req(Method::PUT, "/api/v1/services/llm-worker/secrets/api_key")
        .json(&json!({"value": 12345678901u64}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // Nothing was written by any of them.
    let (_, body) = get_as(&app, &app.token, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["version"], 1);
}

#[tokio::test]
async fn the_secret_routes_refuse_bad_input_and_change_nothing() {
    let (app, _) = with_secrets().await;
    app.create("plain", json!({"a": 1})).await;
    let put = |path: &str| {
        app.req(Method::PUT, &format!("/api/v1/services/{path}"))
            .header("content-type", "application/json")
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "a key the schema does not mark secret",
            put("llm-worker/secrets/model").json(&json!({"value": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "a service without a schema",
            put("plain/secrets/a").json(&json!({"value": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "an unknown service",
            put("nobody/secrets/a").json(&json!({"value": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "a bad service name",
            put("Bad!/secrets/a").json(&json!({"value": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed JSON",
            put("llm-worker/secrets/api_key").body("{\"value\": "),
            StatusCode::BAD_REQUEST,
        ),
        (
            "an unknown field",
            put("llm-worker/secrets/api_key").json(&json!({"value": "sk-0123456789", "x": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no value",
            put("llm-worker/secrets/api_key").json(&json!({})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "null",
            put("llm-worker/secrets/api_key").json(&json!({"value": null})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "the mask",
            put("llm-worker/secrets/api_key").json(&json!({"value": "********"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a placeholder",
            put("llm-worker/secrets/api_key").json(&json!({"value": {"$secret": 1}})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a placeholder in a config",
            put("llm-worker/config").json(&json!({"config": {"api_key": {"$secret": 1}}})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a stale version",
            put("llm-worker/secrets/api_key")
                .json(&json!({"value": "sk-0123456789", "expected_version": 7})),
            StatusCode::CONFLICT,
        ),
        (
            "an oversized body",
            put("llm-worker/secrets/api_key").json(&json!({"value": "k".repeat(2 * 1024 * 1024)})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, request, status) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status, "{what}");
        problem(r, status).await;
    }
    let (_, body) = get_as(&app, &app.token, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["version"], 1, "nothing was written");
}

#[tokio::test]
async fn of_two_writers_of_a_secret_from_one_version_exactly_one_wins() {
    let (app, own) = with_secrets().await;
    let write = |value: &'static str| {
        app.req(Method::PUT, "/api/v1/services/llm-worker/secrets/api_key")
            .json(&json!({"value": value, "expected_version": 1}))
            .send()
    };
    let (a, b) = tokio::join!(write("sk-writer-aaaaaaa"), write("sk-writer-bbbbbbb"));
    let mut statuses = [a.unwrap().status(), b.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["version"], 2);
    let key = body["config"]["api_key"].as_str().unwrap();
    assert!(key.starts_with("sk-writer-"), "{key}");
}

#[tokio::test]
async fn restoring_an_old_version_brings_back_its_secret() {
    let (app, own) = with_secrets().await;
    app.req(Method::PUT, "/api/v1/services/llm-worker/secrets/api_key")
        .json(&json!({"value": "sk-second-0000000"}))
        .send()
        .await
        .unwrap();
    let r = app
        .req(Method::POST, "/api/v1/services/llm-worker/restore")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(body["version"], 3);
    assert_eq!(body["config"]["api_key"], KEY);
    assert_eq!(
        body["secrets"],
        json!({"/api_key": 3, "/mqtt/password": 1}),
        "a restored value is sealed again as new; the unchanged one keeps its version"
    );
}

#[tokio::test]
async fn a_schema_that_marks_a_stored_key_secret_seals_its_value() {
    let app = spawn_app().await;
    app.create("llm-worker", json!({"model": "gpt-4o", "api_key": KEY}))
        .await;
    let r = app
        .req(Method::PUT, "/api/v1/services/llm-worker/schema")
        .json(&schema())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let own = token(&app, "llm-worker", "service", Some("llm-worker")).await;
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(
        (
            body["version"].clone(),
            body["config"]["api_key"].clone(),
            body["secrets"].clone()
        ),
        (json!(2), json!(KEY), json!({"/api_key": 2}))
    );
    let (_, masked) = get_as(&app, &app.token, "/api/v1/services/llm-worker/config").await;
    assert_eq!(masked["config"]["api_key"], "********");
    let stored = app
        .state
        .store
        .service(&dials_domain::ServiceName::parse("llm-worker").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.document.unwrap().into_value()["api_key"],
        json!({"$secret": 2}),
        "the stored document holds a placeholder, not the value"
    );
    let history: Value = app
        .get_json("/api/v1/history?service=llm-worker&key=/api_key")
        .await;
    assert_eq!(history["items"][0]["kind"], "migrate");
    assert!(
        !history.to_string().contains(KEY),
        "history written before the key was secret is shown masked: {history}"
    );
    // The version written in clear was redacted in place, and the database files no longer
    // hold the value anywhere (while they do hold the config's other values).
    let v1 = app
        .state
        .store
        .version(
            &dials_domain::ServiceName::parse("llm-worker").unwrap(),
            dials_domain::Version(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.document.unwrap().into_value()["api_key"], "********");
    let files = database_bytes(&app);
    assert!(contains(&files, b"gpt-4o"), "the scan sees stored values");
    assert!(
        !contains(&files, KEY.as_bytes()),
        "the secret is nowhere in the database files"
    );
    // Restoring that version keeps the secret in force where it holds the mask.
    let r = app
        .req(Method::POST, "/api/v1/services/llm-worker/restore")
        .json(&json!({"version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, body) = get_as(&app, &own, "/api/v1/services/llm-worker/config").await;
    assert_eq!(
        (body["version"].clone(), body["config"]["api_key"].clone()),
        (json!(2), json!(KEY)),
        "version 1 as restored is version 2's content: nothing to write"
    );

    // And a schema that stops marking it secret stores it in clear again.
    let mut plain = schema();
    plain["properties"]["api_key"]
        .as_object_mut()
        .unwrap()
        .remove("x-secret");
    app.req(Method::PUT, "/api/v1/services/llm-worker/schema")
        .json(&plain)
        .send()
        .await
        .unwrap();
    let (_, body) = get_as(&app, &app.token, "/api/v1/services/llm-worker/config").await;
    assert_eq!(
        (body["version"].clone(), body["config"]["api_key"].clone()),
        (json!(3), json!(KEY))
    );
}

/// Every byte of the database's files (the database, its write-ahead log and shared memory).
fn database_bytes(app: &TestApp) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&app.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("dials.db") {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_watch_stream_and_search_show_secrets_masked() {
    let (app, _) = with_secrets().await;
    let search: Value = app.get_json("/api/v1/search?q=api_key").await;
    assert_eq!(search["items"][0]["value"], "********", "{search}");
    let mut stream = app
        .req(Method::GET, "/api/v1/watch?since=0")
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("\"api_key\":\"********\""), "{seen}");
    assert!(!seen.contains(KEY) && !seen.contains(PASSWORD), "{seen}");
}

#[tokio::test]
async fn a_service_reads_its_lkg_key_and_nobody_else_does() {
    let (app, own) = with_secrets().await;
    let foreign = token(&app, "other", "service", Some("tts-worker")).await;
    let operator = token(&app, "ops", "operator", None).await;
    let path = "/api/v1/services/llm-worker/lkg-key";
    let (status, mine) = get_as(&app, &own, path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, admins) = get_as(&app, &app.token, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine, admins, "one key per service, whoever asks");
    assert_eq!(mine["root_key_id"], app.state.keys.lkg_root.id());
    let (_, other) = get_as(&app, &app.token, "/api/v1/services/tts-worker/lkg-key").await;
    assert_ne!(other["key"], mine["key"], "each service has its own");
    for who in [&foreign, &operator] {
        let (status, _) = get_as(&app, who, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
