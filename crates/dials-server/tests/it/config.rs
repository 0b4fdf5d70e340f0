//! Reading and writing config documents.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn a_created_service_reads_back_with_its_version_etag_and_epoch() {
    let app = spawn_app().await;
    let created = app
        .create(
            "tts-worker",
            json!({"voice": "amy", "mqtt": {"port": 1883}}),
        )
        .await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["revision"], 1);
    assert_eq!(created["updated_by"], "admin");

    let r = app.get_config("tts-worker").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["config"],
        json!({"voice": "amy", "mqtt": {"port": 1883}})
    );
    assert_eq!(body["epoch"], app.state.epoch.to_string());
    assert_eq!(body, created, "GET answers what the write answered");
}

#[tokio::test]
async fn a_put_to_a_service_that_does_not_exist_is_404_and_creates_nothing() {
    let app = spawn_app().await;
    let body = problem(
        app.put_config("ghost", json!({"config": {"a": 1}})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("If-None-Match"),
        "{body}"
    );
    problem(app.get_config("ghost").await, StatusCode::NOT_FOUND).await;
    let list: Value = app
        .req(Method::GET, "/api/v1/services")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["services"], json!([]));
}

#[tokio::test]
async fn creating_a_service_that_exists_fails_its_precondition() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/router/config")
        .header("If-None-Match", "*")
        .json(&json!({"config": {"a": 2}}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["current_version"], 1);
    let current: Value = app.get_config("router").await.json().await.unwrap();
    assert_eq!(current["config"]["a"], 1, "nothing was overwritten");
}

#[tokio::test]
async fn a_stale_expected_version_is_409_with_the_current_version() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let ok = app
        .put_config("router", json!({"config": {"a": 2}, "expected_version": 1}))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let stale = app
        .put_config("router", json!({"config": {"a": 3}, "expected_version": 1}))
        .await;
    let body = problem(stale, StatusCode::CONFLICT).await;
    assert_eq!(body["current_version"], 2);
    let current: Value = app.get_config("router").await.json().await.unwrap();
    assert_eq!(current["config"]["a"], 2);
}

#[tokio::test]
async fn a_failed_if_match_is_412_and_a_matching_one_writes() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let put = |etag: &'static str| {
        app.req(Method::PUT, "/api/v1/services/router/config")
            .header("If-Match", etag)
            .json(&json!({"config": {"a": etag}}))
            .send()
    };
    let body = problem(put("\"7\"").await.unwrap(), StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(body["current_version"], 1);
    let ok = put("\"1\"").await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["etag"], "\"2\"");
}

#[tokio::test]
async fn expected_version_and_if_match_that_disagree_are_refused() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/router/config")
        .header("If-Match", "\"1\"")
        .json(&json!({"config": {"a": 2}, "expected_version": 2}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_merge_patch_changes_only_what_it_names() {
    let app = spawn_app().await;
    app.create(
        "stt-worker",
        json!({"model": "base", "vad": {"threshold": 0.5, "min_ms": 250}}),
    )
    .await;
    let r = app
        .patch_config(
            "stt-worker",
            json!({"config": {"vad": {"threshold": 0.6, "min_ms": null}}, "reason": "fewer false wakes"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(
        body["config"],
        json!({"model": "base", "vad": {"threshold": 0.6}})
    );
}

#[tokio::test]
async fn a_write_that_changes_nothing_makes_no_new_version() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app.put_config("router", json!({"config": {"a": 1}})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["version"], 1);
    let history: Value = app
        .req(Method::GET, "/api/v1/history")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        1,
        "only the create's key"
    );
}

#[tokio::test]
async fn a_get_with_the_current_etag_is_not_modified() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::GET, "/api/v1/services/router/config")
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    app.put_config("router", json!({"config": {"a": 2}})).await;
    let r = app
        .req(Method::GET, "/api/v1/services/router/config")
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_service_list_shows_every_live_service_with_its_version() {
    let app = spawn_app().await;
    app.create("tts-worker", json!({"a": 1})).await;
    app.create("global", json!({"log_level": "info"})).await;
    app.put_config("tts-worker", json!({"config": {"a": 2}}))
        .await;
    let list: Value = app
        .req(Method::GET, "/api/v1/services")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<_> = list["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("global".to_owned(), 1), ("tts-worker".to_owned(), 2)]
    );
}

#[tokio::test]
async fn a_deleted_service_is_gone_but_its_history_stays_and_versions_carry_on() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let r = app
        .req(Method::DELETE, "/api/v1/services/router")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    problem(app.get_config("router").await, StatusCode::NOT_FOUND).await;
    problem(
        app.req(Method::DELETE, "/api/v1/services/router")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let deletion: Value = app
        .req(Method::GET, "/api/v1/services/router/versions/2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deletion["kind"], "delete");
    assert_eq!(deletion["config"], Value::Null);

    let again = app.create("router", json!({"a": 5})).await;
    assert_eq!(
        again["version"], 3,
        "version 2 was the deletion; none is reused"
    );
    let history: Value = app
        .req(Method::GET, "/api/v1/history?service=router")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<_> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("put"), json!("delete"), json!("put")]);
}
