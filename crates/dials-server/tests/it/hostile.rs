//! Requests written to hurt: each is refused with a clear problem, and the server keeps
//! answering afterwards.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, problem, spawn_app, token};

/// A schema whose `x` goes through a chain of `links` `$ref`s (~36 bytes each).
fn ref_chain(links: usize) -> Value {
    let mut defs = Map::new();
    for i in 0..links {
        defs.insert(
            format!("d{i}"),
            json!({"$ref": format!("#/$defs/d{}", i + 1)}),
        );
    }
    defs.insert(format!("d{links}"), json!({"type": "integer"}));
    json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs})
}

fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "a": value });
    }
    value
}

async fn still_answers(app: &TestApp) {
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_service_token_putting_a_five_thousand_link_ref_chain_gets_422_and_the_server_lives_on() {
    let app = spawn_app().await;
    let service_token = token(&app, "victim", "service", Some("victim")).await;
    let schema = ref_chain(5_000);
    let r = app
        .client
        .put(app.url("/api/v1/services/victim/schema"))
        .bearer_auth(&service_token)
        .json(&schema)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("limit of 64 levels"), "{detail}");

    still_answers(&app).await;
    let r = app
        .req(Method::PUT, "/api/v1/services/victim/schema")
        .json(&ref_chain(8))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_schema_whose_refs_expand_exponentially_is_refused_quickly() {
    let app = spawn_app().await;
    let mut defs = Map::new();
    for i in 0..30 {
        let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
        defs.insert(format!("d{i}"), json!({"allOf": [next.clone(), next]}));
    }
    defs.insert("d30".into(), json!({"type": "integer"}));
    let schema =
        json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs});
    let r = app
        .req(Method::PUT, "/api/v1/services/laughs/schema")
        .json(&schema)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["detail"].as_str().unwrap().contains("too large"),
        "{body}"
    );
    still_answers(&app).await;
}

#[tokio::test]
async fn a_document_nested_deeper_than_the_limit_is_refused_with_422() {
    let app = spawn_app().await;
    app.create("deep", json!({"ok": true})).await;
    let r = app
        .put_config("deep", json!({"config": {"x": nested(80)}}))
        .await;
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 64 levels"),
        "{body}"
    );
    let r = app
        .patch_config("deep", json!({"config": {"x": nested(80)}}))
        .await;
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        app.get_json("/api/v1/services/deep/config").await["config"],
        json!({"ok": true})
    );
}

#[tokio::test]
async fn a_key_path_deeper_than_any_document_is_refused_with_400() {
    let app = spawn_app().await;
    app.create("keys", json!({"ok": true})).await;
    let key = "a/".repeat(1_000);
    let r = app
        .req(
            Method::PUT,
            &format!("/api/v1/services/keys/secrets/{key}x"),
        )
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("more than 64 tokens"),
        "{body}"
    );
    still_answers(&app).await;
}

#[tokio::test]
async fn other_methods_on_a_secret_route_are_405_before_the_body_is_read() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::POST, "/api/v1/services/x/secrets/a"),
        (Method::PUT, "/api/v1/services/x/secrets/a/reveal"),
        (Method::DELETE, "/api/v1/services/x/secrets/a/reveal"),
        (Method::OPTIONS, "/api/v1/services/x/secrets/a/reveal"),
        (Method::PATCH, "/api/v1/services/x/secrets/a"),
    ] {
        let r = app
            .req(method.clone(), path)
            .json(&json!({"unexpected": true}))
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("allow").is_some(),
            "{method} {path} says what is allowed"
        );
        problem(r, StatusCode::METHOD_NOT_ALLOWED).await;
    }
}

#[tokio::test]
async fn a_version_beyond_what_the_database_can_hold_is_404_not_500() {
    let app = spawn_app().await;
    app.create("big", json!({"ok": true})).await;
    for path in [
        "/api/v1/services/big/versions/9223372036854775808",
        "/api/v1/services/big/versions/18446744073709551615",
    ] {
        let r = app.req(Method::GET, path).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    let r = app
        .req(
            Method::GET,
            "/api/v1/services/big/diff?from=9223372036854775808",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = app
        .req(Method::POST, "/api/v1/services/big/restore")
        .json(&json!({"version": 9223372036854775808u64}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn a_token_name_is_limited_in_characters_not_bytes() {
    let app = spawn_app().await;
    let create = |name: String| {
        app.req(Method::POST, "/api/v1/tokens")
            .json(&json!({"name": name, "role": "viewer"}))
            .send()
    };
    let r = create("é".repeat(100)).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = create("é".repeat(101)).await.unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
}
