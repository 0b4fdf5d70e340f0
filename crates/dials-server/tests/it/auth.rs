//! Authentication on every API route.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn the_api_refuses_requests_without_a_valid_token() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let routes = [
        (Method::GET, "/api/v1/status"),
        (Method::GET, "/api/v1/services"),
        (Method::GET, "/api/v1/services/router/config"),
        (Method::PUT, "/api/v1/services/router/config"),
        (Method::PATCH, "/api/v1/services/router/config"),
        (Method::DELETE, "/api/v1/services/router"),
        (Method::GET, "/api/v1/services/router/versions/1"),
        (Method::GET, "/api/v1/services/router/diff"),
        (Method::POST, "/api/v1/services/router/restore"),
        (Method::GET, "/api/v1/history"),
    ];
    for (i, (method, path)) in routes.into_iter().enumerate() {
        let none = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        problem(none, StatusCode::UNAUTHORIZED).await;
        // Bad credentials count towards the per-address limit (10 in a burst; see the
        // security tests), so only the first routes try them.
        if i >= 4 {
            continue;
        }
        let wrong = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth("dials_not-a-real-token")
            .send()
            .await
            .unwrap();
        problem(wrong, StatusCode::UNAUTHORIZED).await;
        let basic = app
            .client
            .request(method.clone(), app.url(path))
            .basic_auth("admin", Some(&app.token))
            .send()
            .await
            .unwrap();
        problem(basic, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(
        app.get_config("router").await.status(),
        StatusCode::OK,
        "nothing was deleted"
    );
}

#[tokio::test]
async fn health_openapi_and_docs_need_no_token() {
    let app = spawn_app().await;
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));
    let spec: serde_json::Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/api/v1/services/{service}/config",
        "/api/v1/services/{service}/restore",
        "/api/v1/history",
        "/api/v1/status",
        "/api/v1/services/{service}/secrets",
        "/api/v1/services/{service}/lkg-key",
    ] {
        assert!(spec["paths"][path].is_object(), "the spec documents {path}");
    }
    // The secret routes take the key as a wildcard, documented as `{key}`.
    let key = &spec["paths"]["/api/v1/services/{service}/secrets/{key}"];
    assert!(key["put"].is_object() && key["delete"].is_object(), "{key}");
    assert!(
        spec["paths"]["/api/v1/services/{service}/secrets/{key}/reveal"]["post"].is_object(),
        "the spec documents reveal"
    );
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("swagger"),
        "the docs page is served from the binary"
    );
    assert!(
        !html.contains("https://"),
        "the docs page loads nothing from the network"
    );
}
