//! Bad input gets a clear problem+json error, never a 5xx, and loses nothing.

use dials_server::ServerSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app, spawn_with};

#[tokio::test]
async fn malformed_json_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/router/config")
        .body("{\"config\": {\"a\": ")
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );
    let current: Value = app.get_config("router").await.json().await.unwrap();
    assert_eq!(
        (current["version"].clone(), current["config"].clone()),
        (json!(1), json!({"a": 1}))
    );
}

#[tokio::test]
async fn an_empty_body_is_400() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/router/config")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_body_that_is_an_array_is_400_and_applies_nothing() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::POST, "/api/v1/profiles")
        .json(&json!({"name": "quiet", "services": ["router"]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    app.put_config("router", json!({"config": {"a": 2}})).await;
    // `[]` would otherwise read as `{}`: an apply with no dry run, writing the profile back.
    for (method, path) in [
        (Method::POST, "/api/v1/profiles/quiet/apply"),
        (Method::PUT, "/api/v1/services/router/config"),
        (Method::PATCH, "/api/v1/services/router/config"),
    ] {
        let r = app.req(method, path).body("[]").send().await.unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            body["detail"],
            json!("the request body must be a JSON object, not an array"),
            "{path}"
        );
    }
    let current: Value = app.get_config("router").await.json().await.unwrap();
    assert_eq!(
        (current["version"].clone(), current["config"].clone()),
        (json!(2), json!({"a": 2}))
    );
}

#[tokio::test]
async fn wrong_types_in_the_request_are_400_naming_the_field() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .put_config(
            "router",
            json!({"config": {"a": 2}, "expected_version": "one"}),
        )
        .await;
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("expected_version"),
        "{body}"
    );
    let r = app
        .put_config("router", json!({"config": {"a": 2}, "expected_versoin": 1}))
        .await;
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("expected_versoin"),
        "{body}"
    );
    let r = app.put_config("router", json!({"conf": {"a": 2}})).await;
    problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_document_that_is_not_an_object_is_422() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    for not_an_object in [json!(5), json!([1]), json!("x"), json!(null)] {
        let r = app
            .put_config("router", json!({"config": not_an_object}))
            .await;
        let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(body["errors"][0]["path"], "", "{body}");
    }
    let r = app.patch_config("router", json!({"config": [1]})).await;
    problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path());
    settings.max_body_bytes = 4096;
    let app = spawn_with(settings).await;
    app.create("router", json!({"a": 1})).await;
    let big = "x".repeat(5000);
    let r = app
        .put_config("router", json!({"config": {"a": big}}))
        .await;
    let body = problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(body["detail"].as_str().unwrap().contains("4096"), "{body}");
    let current: Value = app.get_config("router").await.json().await.unwrap();
    assert_eq!(current["version"], 1);
}

#[tokio::test]
async fn the_default_body_limit_is_one_mebibyte() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let just_under = "x".repeat(1024 * 1024 - 100);
    assert_eq!(
        app.put_config("router", json!({"config": {"a": just_under}}))
            .await
            .status(),
        StatusCode::OK
    );
    let over = "x".repeat(1024 * 1024 + 1);
    problem(
        app.put_config("router", json!({"config": {"a": over}}))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn a_bad_service_name_is_400_on_every_route() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/services/Bad_Name/config"),
        (Method::PUT, "/api/v1/services/1abc/config"),
        (Method::PATCH, "/api/v1/services/UPPER/config"),
        (Method::DELETE, "/api/v1/services/a_b"),
        (Method::GET, "/api/v1/services/a_b/versions/1"),
        (Method::GET, "/api/v1/services/a_b/diff"),
        (Method::POST, "/api/v1/services/a_b/restore"),
        (Method::GET, "/api/v1/history?service=Nope!"),
    ] {
        let r = app
            .req(method.clone(), path)
            .json(&json!({"config": {}, "version": 1}))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("service name"),
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn unknown_services_versions_and_routes_are_404() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    for (method, path) in [
        (Method::GET, "/api/v1/services/ghost/config"),
        (Method::GET, "/api/v1/services/router/versions/9"),
        (Method::GET, "/api/v1/services/ghost/diff"),
        (Method::GET, "/api/v1/history?service=ghost"),
        (Method::GET, "/api/v1/nothing-here"),
    ] {
        problem(
            app.req(method, path).send().await.unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    for path in [
        "/api/v1/history?since=yesterday",
        "/api/v1/history?limit=0",
        "/api/v1/history?limit=5000",
        "/api/v1/history?cursor=abc",
        "/api/v1/history?key=/a~2",
        "/api/v1/services/router/diff?from=x",
        "/api/v1/services/router/versions/one",
    ] {
        problem(
            app.req(Method::GET, path).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_as_problem_json() {
    let app = spawn_app().await;
    problem(
        app.req(Method::POST, "/api/v1/services")
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
}

/// A database outage, made by closing the store under the running server and taking the
/// file's permissions away, so that the manager cannot simply open it again. Until its check
/// (every second) notices, the store's own error answers; after that, read-only mode does.
/// Either way a request that needs the database is 503 with `Retry-After` and names no
/// internals, and what was already read stays readable from memory.
#[tokio::test]
async fn a_database_outage_is_503_with_retry_after_and_no_internal_detail() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    app.state.store.close().await;
    let file = dials_server::backup::database_path(&app.state.settings.database_url).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    outage(app.put_config("router", json!({"config": {"a": 2}})).await).await;
    let r = app
        .req(Method::GET, "/api/v1/services/other/config")
        .send()
        .await
        .unwrap();
    outage(r).await;
    // Once the check has run, the manager stays read-only: the file cannot be used.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    outage(app.put_config("router", json!({"config": {"a": 2}})).await).await;
    assert_eq!(app.get_config("router").await.status(), StatusCode::OK);
    assert_eq!(
        app.req(Method::GET, "/health")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A 503 for an outage, as the store says it or as read-only mode does.
async fn outage(r: reqwest::Response) {
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    let detail = body["detail"].as_str().unwrap();
    match retry_after.as_deref() {
        Some("1") => assert_eq!(detail, "the database is unavailable", "{body}"),
        Some("5") => assert!(detail.starts_with("dials is read-only"), "{body}"),
        other => panic!("Retry-After {other:?}: {body}"),
    }
    for internal in ["sqlite", "sqlx", "pool", "rusqlite"] {
        assert!(!detail.to_lowercase().contains(internal), "{body}");
    }
}

/// The current version and config of a service, to show a refused write changed nothing.
async fn unchanged(app: &crate::helpers::TestApp, service: &str) -> (Value, Value) {
    let current: Value = app.get_config(service).await.json().await.unwrap();
    (current["version"].clone(), current["config"].clone())
}

#[tokio::test]
async fn a_body_declared_as_anything_but_json_is_415_and_changes_nothing() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let r = app
            .req(Method::PUT, "/api/v1/services/router/config")
            .header("Content-Type", content_type)
            .body(r#"{"config": {"a": 2}}"#)
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{body}"
        );
    }
    // JSON by any of its names is fine, and so is a body that says nothing of its type.
    for (n, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = app
            .req(Method::PATCH, "/api/v1/services/router/config")
            .body(format!(r#"{{"config": {{"n": {n}}}}}"#));
        if !content_type.is_empty() {
            request = request.header("Content-Type", content_type);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{content_type:?}");
    }
    assert_eq!(unchanged(&app, "router").await.1["a"], 1);
}

#[tokio::test]
async fn a_key_given_twice_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/router/config")
        .header("Content-Type", "application/json")
        .body(r#"{"config": {"a": 2, "b": {"c": 1, "c": 3}}}"#)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(r#""c" appears twice"#),
        "{body}"
    );
    assert_eq!(unchanged(&app, "router").await, (json!(1), json!({"a": 1})));
}

#[tokio::test]
async fn an_integer_beyond_64_bits_is_400_and_changes_nothing_while_big_exact_ones_stay_exact() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PATCH, "/api/v1/services/router/config")
        .header("Content-Type", "application/json")
        .body(r#"{"config": {"id": 123456789012345678901234567890}}"#)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("123456789012345678901234567890"),
        "{body}"
    );
    assert_eq!(unchanged(&app, "router").await, (json!(1), json!({"a": 1})));
    // The largest 64-bit integers are kept exactly.
    let r = app
        .req(Method::PATCH, "/api/v1/services/router/config")
        .header("Content-Type", "application/json")
        .body(r#"{"config": {"max": 18446744073709551615, "min": -9223372036854775808}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (_, config) = unchanged(&app, "router").await;
    assert_eq!(config["max"].as_u64(), Some(u64::MAX));
    assert_eq!(config["min"].as_i64(), Some(i64::MIN));
}

#[tokio::test]
async fn if_match_compares_strongly_and_star_means_the_service_exists() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let patch = |if_match: &'static str, a: i64| {
        app.req(Method::PATCH, "/api/v1/services/router/config")
            .header("If-Match", if_match)
            .json(&json!({"config": {"a": a}}))
            .send()
    };
    // A weak tag never matches If-Match, even the current version's.
    let r = patch("W/\"1\"", 2).await.unwrap();
    let body = problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["current_version"], 1);
    assert_eq!(unchanged(&app, "router").await.0, json!(1));
    // `*` matches any current version.
    assert_eq!(patch("*", 3).await.unwrap().status(), StatusCode::OK);
    // A list matches when any of its tags does.
    assert_eq!(
        patch("\"7\", \"2\"", 4).await.unwrap().status(),
        StatusCode::OK
    );
    let r = patch("\"1\", \"2\"", 5).await.unwrap();
    problem(r, StatusCode::PRECONDITION_FAILED).await;
    // `*` on a service that does not exist fails instead of creating it.
    let r = app
        .req(Method::PUT, "/api/v1/services/ghost/config")
        .header("If-Match", "*")
        .json(&json!({"config": {"a": 1}}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(
        app.get_config("ghost").await.status(),
        StatusCode::NOT_FOUND
    );
    // Garbage is 400.
    let r = patch("version one", 6).await.unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(unchanged(&app, "router").await, (json!(3), json!({"a": 4})));
}

#[tokio::test]
async fn version_numbers_beyond_the_database_range_are_404_or_409_never_500() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    for path in [
        "/api/v1/services/router/versions/9223372036854775808",
        "/api/v1/services/router/versions/18446744073709551615",
        "/api/v1/services/router/diff?from=1&to=18446744073709551615",
        "/api/v1/services/router/diff?from=9223372036854775808",
    ] {
        let r = app.req(Method::GET, path).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    let r = app
        .req(Method::POST, "/api/v1/services/router/restore")
        .json(&json!({"version": 18446744073709551615u64}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    let r = app
        .put_config(
            "router",
            json!({"config": {"a": 2}, "expected_version": 18446744073709551615u64}),
        )
        .await;
    problem(r, StatusCode::CONFLICT).await;
    let r = app
        .req(Method::PATCH, "/api/v1/services/router/config")
        .header("If-Match", "\"18446744073709551615\"")
        .json(&json!({"config": {"a": 2}}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(unchanged(&app, "router").await, (json!(1), json!({"a": 1})));
}
