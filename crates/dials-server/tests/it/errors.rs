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

#[tokio::test]
async fn a_database_outage_is_503_with_retry_after_and_no_internal_detail() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    app.state.store.close().await;
    let r = app.put_config("router", json!({"config": {"a": 2}})).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let body = problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["detail"], "the database is unavailable");
    let r = app
        .req(Method::GET, "/api/v1/services/other/config")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    // What was already read stays readable from memory.
    assert_eq!(app.get_config("router").await.status(), StatusCode::OK);
    assert_eq!(
        app.req(Method::GET, "/health")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
