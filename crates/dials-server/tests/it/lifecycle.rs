//! First start, restart and status.

use dials_server::ServerSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn the_first_start_writes_a_private_admin_token() {
    let app = spawn_app().await;
    let path = app.data_dir.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(app.token.starts_with("dials_") && app.token.len() >= 43 + 6);
    let status = app.req(Method::GET, "/api/v1/status").send().await.unwrap();
    assert_eq!(status.status(), StatusCode::OK);
}

#[tokio::test]
async fn everything_written_survives_a_restart_with_the_same_epoch() {
    let app = spawn_app().await;
    let settings = ServerSettings::local(app.data_dir.clone());
    let epoch = app.state.epoch;
    let token = app.token.clone();
    app.create("router", json!({"a": 1})).await;
    app.put_config("router", json!({"config": {"a": 2}})).await;
    let dir = app.stop().await;

    let again = spawn_with(settings).await;
    assert_eq!(again.state.epoch, epoch);
    assert_eq!(
        again.token, token,
        "a restart does not replace the admin token"
    );
    let body: Value = again.get_config("router").await.json().await.unwrap();
    assert_eq!(
        (body["version"].clone(), body["config"].clone()),
        (json!(2), json!({"a": 2}))
    );
    let h: Value = again
        .req(Method::GET, "/api/v1/history")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
    let created = again
        .req(Method::PUT, "/api/v1/services/router/config")
        .json(&json!({"config": {"a": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.json::<Value>().await.unwrap()["revision"],
        3,
        "revisions carry on"
    );
    drop(dir);
}

#[tokio::test]
async fn status_reports_mode_database_epoch_revision_and_backlog() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let s: Value = app
        .req(Method::GET, "/api/v1/status")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["mode"], "normal");
    assert_eq!(s["database"]["backend"], "sqlite");
    assert_eq!(s["database"]["ok"], true);
    assert_eq!(s["epoch"], app.state.epoch.to_string());
    assert_eq!(s["revision"], 1);
    assert_eq!(s["outbox_backlog"], 1, "the change waits for the publisher");
    assert!(s["uptime_seconds"].as_f64().unwrap() >= 0.0);
}
