//! Versions, diffs, restores and per-key history.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

async fn json_of(app: &TestApp, path: &str) -> Value {
    let r = app.req(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

async fn restore(app: &TestApp, service: &str, body: Value) -> reqwest::Response {
    app.req(Method::POST, &format!("/api/v1/services/{service}/restore"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_version_can_be_read_back() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    app.put_config("router", json!({"config": {"a": 2}, "reason": "tuning"}))
        .await;
    let v1 = json_of(&app, "/api/v1/services/router/versions/1").await;
    assert_eq!(v1["config"], json!({"a": 1}));
    let v2 = json_of(&app, "/api/v1/services/router/versions/2").await;
    assert_eq!(
        (v2["kind"].clone(), v2["reason"].clone()),
        (json!("put"), json!("tuning"))
    );
}

#[tokio::test]
async fn a_diff_lists_added_removed_and_changed_keys() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1, "b": {"c": 1}, "gone": true}))
        .await;
    app.put_config(
        "router",
        json!({"config": {"a": 2, "b": {"c": 1, "d": "new"}}}),
    )
    .await;
    let d = json_of(&app, "/api/v1/services/router/diff?from=1").await;
    assert_eq!(d["to"], 2, "to defaults to the current version");
    assert_eq!(
        d["changes"],
        json!([
            {"key": "/a", "op": "changed", "old": 1, "new": 2},
            {"key": "/b/d", "op": "added", "new": "new"},
            {"key": "/gone", "op": "removed", "old": true},
        ])
    );
    let from_nothing = json_of(&app, "/api/v1/services/router/diff?from=0&to=1").await;
    assert_eq!(from_nothing["changes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_restore_writes_the_old_state_as_a_new_version() {
    let app = spawn_app().await;
    app.create("router", json!({"model": "small"})).await;
    app.put_config("router", json!({"config": {"model": "large"}}))
        .await;
    let r = restore(
        &app,
        "router",
        json!({"version": 1, "reason": "large was too slow"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["version"], 3,
        "a restore is a new version, not a rewind"
    );
    assert_eq!(body["config"], json!({"model": "small"}));
    let v3 = json_of(&app, "/api/v1/services/router/versions/3").await;
    assert_eq!(v3["kind"], "restore");
    let h = json_of(&app, "/api/v1/history?service=router&limit=1").await;
    assert_eq!(h["items"][0]["kind"], "restore");
    assert_eq!(h["items"][0]["old"], "large");
    assert_eq!(h["items"][0]["new"], "small");
}

#[tokio::test]
async fn a_restore_by_time_finds_the_state_at_that_instant() {
    let app = spawn_app().await;
    let v1 = app.create("router", json!({"model": "small"})).await;
    let at = v1["updated_at"].as_str().unwrap().to_owned();
    app.put_config("router", json!({"config": {"model": "large"}}))
        .await;
    let body: Value = restore(&app, "router", json!({"at": at}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["config"], json!({"model": "small"}));
    let before_anything = restore(&app, "router", json!({"at": "2001-01-01T00:00:00Z"})).await;
    problem(before_anything, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_restore_needs_exactly_one_target_and_an_existing_version() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    problem(
        restore(&app, "router", json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        restore(
            &app,
            "router",
            json!({"version": 1, "at": "2026-01-01T00:00:00Z"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        restore(&app, "router", json!({"version": 9})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        restore(&app, "ghost", json!({"version": 1})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let stale = restore(&app, "router", json!({"version": 1, "expected_version": 5})).await;
    assert_eq!(
        problem(stale, StatusCode::CONFLICT).await["current_version"],
        1
    );
}

#[tokio::test]
async fn a_deleted_service_can_be_restored_from_its_history() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    app.req(Method::DELETE, "/api/v1/services/router")
        .send()
        .await
        .unwrap();
    problem(
        restore(&app, "router", json!({"version": 2})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let r = restore(&app, "router", json!({"version": 1})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["version"].clone(), body["config"].clone()),
        (json!(3), json!({"a": 1}))
    );
}

#[tokio::test]
async fn history_filters_by_service_key_actor_and_time() {
    let app = spawn_app().await;
    app.create("router", json!({"mqtt": {"host": "a", "port": 1}, "x": 1}))
        .await;
    app.create("tts-worker", json!({"mqtt": {"host": "a"}}))
        .await;
    app.put_config(
        "router",
        json!({"config": {"mqtt": {"host": "b", "port": 1}, "x": 2}}),
    )
    .await;

    let by_key = json_of(&app, "/api/v1/history?service=router&key=/mqtt").await;
    let keys: Vec<_> = by_key["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["/mqtt/host", "/mqtt/port", "/mqtt/host"]);
    let bare_key = json_of(&app, "/api/v1/history?service=router&key=x").await;
    assert_eq!(
        bare_key["items"].as_array().unwrap().len(),
        2,
        "a bare name means /name"
    );
    let by_actor = json_of(&app, "/api/v1/history?actor=admin").await;
    assert_eq!(by_actor["items"].as_array().unwrap().len(), 6);
    assert!(
        json_of(&app, "/api/v1/history?actor=someone").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let future = json_of(&app, "/api/v1/history?since=2100-01-01T00:00:00Z").await;
    assert!(future["items"].as_array().unwrap().is_empty());
    let past = json_of(&app, "/api/v1/history?until=2000-01-01T00:00:00Z").await;
    assert!(past["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn history_pages_with_a_cursor_losing_and_repeating_nothing() {
    let app = spawn_app().await;
    app.create("router", json!({"n": 0})).await;
    for n in 1..=24 {
        app.put_config("router", json!({"config": {"n": n}})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/history?limit=10".to_owned();
    loop {
        let page = json_of(&app, &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["version"].as_u64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/history?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (1..=25).rev().collect::<Vec<u64>>(),
        "newest first, each once"
    );
}
