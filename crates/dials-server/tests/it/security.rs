//! Roles on every route, tokens, browser sessions with CSRF, rate limiting and the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::{TestApp, problem, spawn_app, token};

async fn call(
    app: &TestApp,
    who: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = who {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_contract_prescribes() {
    let app = spawn_app().await;
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "integer", "default": 1},
        "k": {"type": "string", "x-secret": true}
    }});
    app.req(Method::PUT, "/api/v1/services/router/schema")
        .json(&schema)
        .send()
        .await
        .unwrap();
    app.put_config("router", json!({"config": {"a": 2}})).await;
    let viewer = token(&app, "viewer", "viewer", None).await;
    let operator = token(&app, "operator", "operator", None).await;
    let admin = app.token.clone();
    let own = token(&app, "router-svc", "service", Some("router")).await;
    let foreign = token(&app, "tts-svc", "service", Some("tts-worker")).await;
    let whom = [
        ("none", None),
        ("viewer", Some(viewer.as_str())),
        ("operator", Some(operator.as_str())),
        ("admin", Some(admin.as_str())),
        ("own service", Some(own.as_str())),
        ("foreign service", Some(foreign.as_str())),
    ];
    // Expected status for: none, viewer, operator, admin, own service token, foreign service token.
    let ok = StatusCode::OK;
    let (u, f) = (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN);
    let table: Vec<(Method, &str, Option<Value>, [StatusCode; 6])> = vec![
        (Method::GET, "/health", None, [ok, ok, ok, ok, ok, ok]),
        (Method::GET, "/api/v1/keys", None, [ok, ok, ok, ok, ok, ok]),
        (Method::GET, "/metrics", None, [ok, ok, ok, ok, ok, ok]),
        (
            Method::GET,
            "/api/v1/openapi.json",
            None,
            [ok, ok, ok, ok, ok, ok],
        ),
        (Method::GET, "/api/v1/status", None, [u, ok, ok, ok, f, f]),
        (Method::GET, "/api/v1/services", None, [u, ok, ok, ok, f, f]),
        (
            Method::GET,
            "/api/v1/services/router/config",
            None,
            [u, ok, ok, ok, ok, f],
        ),
        (
            Method::PUT,
            "/api/v1/services/router/config",
            Some(json!({"config": {"a": 3}})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::PATCH,
            "/api/v1/services/router/config",
            Some(json!({"config": {"a": 4}})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/schema",
            None,
            [u, ok, ok, ok, ok, f],
        ),
        (
            Method::PUT,
            "/api/v1/services/router/schema",
            Some(schema.clone()),
            [u, f, f, ok, ok, f],
        ),
        (
            Method::POST,
            "/api/v1/services/router/validate",
            Some(json!({"config": {"a": 1}})),
            [u, ok, ok, ok, ok, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/versions/1",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/diff",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::POST,
            "/api/v1/services/router/restore",
            Some(json!({"version": 1})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/instances",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::PUT,
            "/api/v1/services/router/instances/pi/config",
            Some(json!({"config": {"a": 5}})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/instances/pi/config",
            None,
            [u, ok, ok, ok, ok, f],
        ),
        (
            Method::PATCH,
            "/api/v1/services/router/instances/pi/config",
            Some(json!({"config": {"a": 6}})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/instances/pi/config/versions/1",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/instances/pi/config/diff",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::POST,
            "/api/v1/services/router/instances/pi/config/restore",
            Some(json!({"version": 1})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/instances/pi/effective",
            None,
            [u, ok, ok, ok, ok, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/secrets",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (
            Method::PUT,
            "/api/v1/services/router/secrets/k",
            Some(json!({"value": "v"})),
            [u, f, ok, ok, f, f],
        ),
        (
            Method::POST,
            "/api/v1/services/router/secrets/k/reveal",
            Some(json!({"justification": "matrix"})),
            [u, f, ok, ok, f, f],
        ),
        // The operator removes it; the admin, past the role check, finds nothing left.
        (
            Method::DELETE,
            "/api/v1/services/router/secrets/k",
            None,
            [u, f, StatusCode::NO_CONTENT, StatusCode::NOT_FOUND, f, f],
        ),
        (
            Method::GET,
            "/api/v1/services/router/lkg-key",
            None,
            [u, f, f, ok, ok, f],
        ),
        (Method::GET, "/api/v1/history", None, [u, ok, ok, ok, f, f]),
        (
            Method::GET,
            "/api/v1/search?q=a",
            None,
            [u, ok, ok, ok, f, f],
        ),
        (Method::GET, "/api/v1/tokens", None, [u, f, f, ok, f, f]),
        (Method::GET, "/api/v1/audit", None, [u, f, f, ok, f, f]),
        (
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "x", "role": "viewer"})),
            [u, f, f, StatusCode::CREATED, f, f],
        ),
        (
            Method::DELETE,
            "/api/v1/tokens/00000000-0000-0000-0000-000000000000",
            None,
            [u, f, f, StatusCode::NOT_FOUND, f, f],
        ),
        (
            Method::DELETE,
            "/api/v1/services/router",
            None,
            [u, f, f, StatusCode::NO_CONTENT, f, f],
        ),
    ];
    for (method, path, body, expected) in table {
        for ((who, secret), want) in whom.iter().zip(expected) {
            let got = call(&app, *secret, method.clone(), path, body.clone()).await;
            assert_eq!(got, want, "{method} {path} as {who}");
        }
    }
    // The watch stream answers its headers, then streams; only the status matters here.
    for ((who, secret), want) in whom.iter().zip([u, ok, ok, ok, f, f]) {
        let got = call(&app, *secret, Method::GET, "/api/v1/watch", None).await;
        assert_eq!(got, want, "GET /api/v1/watch as {who}");
    }
}

#[tokio::test]
async fn a_service_token_reads_only_its_own_service() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    app.create("tts-worker", json!({"b": 1})).await;
    let own = token(&app, "router-svc", "service", Some("router")).await;
    assert_eq!(
        call(
            &app,
            Some(&own),
            Method::GET,
            "/api/v1/services/router/config",
            None
        )
        .await,
        StatusCode::OK
    );
    let r = app
        .client
        .get(app.url("/api/v1/services/tts-worker/config"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        body["detail"].as_str().unwrap().contains("own service"),
        "{body}"
    );
}

#[tokio::test]
async fn a_service_token_reads_global_with_its_secrets_masked_and_cannot_change_it() {
    let app = spawn_app().await;
    let schema = json!({
        "type": "object",
        "properties": {
            "log_level": {"type": "string", "default": "INFO"},
            "mqtt": {"type": "object", "properties": {
                "host": {"type": "string"},
                "password": {"type": "string", "x-secret": true}
            }}
        }
    });
    let r = app
        .req(Method::PUT, "/api/v1/services/global/schema")
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .req(Method::PUT, "/api/v1/services/global/config")
        .json(&json!({"config": {"mqtt": {"host": "broker.lan", "password": "hunter2-broker"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let own = token(&app, "router-svc", "service", Some("router")).await;
    let r = app
        .client
        .get(app.url("/api/v1/services/global/config"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains("hunter2-broker"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["config"],
        json!({"log_level": "INFO", "mqtt": {"host": "broker.lan", "password": "********"}})
    );
    // Reading is all: no write, and nothing else of global.
    for (method, path, body) in [
        (
            Method::PATCH,
            "/api/v1/services/global/config",
            Some(json!({"config": {"log_level": "DEBUG"}})),
        ),
        (Method::GET, "/api/v1/services/global/versions/1", None),
        (Method::GET, "/api/v1/services/global/secrets", None),
    ] {
        assert_eq!(
            call(&app, Some(&own), method.clone(), path, body).await,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn tokens_are_shown_once_listed_without_secrets_and_validated() {
    let app = spawn_app().await;
    let secret = token(&app, "ci", "viewer", None).await;
    let list = app
        .req(Method::GET, "/api/v1/tokens")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret), "the secret is never listed");
    assert!(!list.contains(&app.token));
    let tokens: Value = serde_json::from_str(&list).unwrap();
    let names: Vec<_> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ci"]);
    for bad in [
        json!({"name": "x", "role": "root"}),
        json!({"name": "", "role": "viewer"}),
        json!({"name": "x", "role": "service"}),
        json!({"name": "x", "role": "viewer", "service": "router"}),
        json!({"name": "x", "role": "service", "service": "Bad!"}),
        json!({"name": "x", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let r = app
            .req(Method::POST, "/api/v1/tokens")
            .json(&bad)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    // Use is recorded (asynchronously, to the minute).
    assert_eq!(
        call(&app, Some(&secret), Method::GET, "/api/v1/services", None).await,
        StatusCode::OK
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let t: Value = app
            .req(Method::GET, "/api/v1/tokens")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !t["tokens"][1]["last_used_at"].is_null() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last_used_at never set"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let app = spawn_app().await;
    let secret = token(&app, "ci", "operator", None).await;
    assert_eq!(
        call(&app, Some(&secret), Method::GET, "/api/v1/services", None).await,
        StatusCode::OK
    );
    let list: Value = app
        .req(Method::GET, "/api/v1/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["tokens"][1]["id"].as_str().unwrap().to_owned();
    let r = app
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, Some(&secret), Method::GET, "/api/v1/services", None).await,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let secret = dials_server::new_token_secret();
    app.state
        .store
        .insert_token(&dials_store::TokenRecord {
            id: uuid::Uuid::new_v4(),
            name: "old".into(),
            role: "admin".into(),
            service: None,
            hash: dials_server::hash_token(&secret),
            created_at: OffsetDateTime::now_utc() - time::Duration::days(2),
            created_by: "admin".into(),
            expires_at: Some(OffsetDateTime::now_utc() - time::Duration::days(1)),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/v1/services"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_browser_session_needs_the_csrf_token_for_unsafe_methods() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let operator = token(&app, "browser", "operator", None).await;
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"token": operator}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let session: Value = r.json().await.unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(session["role"], "operator");

    let with_cookie = |method: Method, path: &str| {
        app.client
            .request(method, app.url(path))
            .header("cookie", &cookie)
    };
    assert_eq!(
        with_cookie(Method::GET, "/api/v1/services/router/config")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "reads need no CSRF token"
    );
    let body = json!({"config": {"a": 2}});
    let r = with_cookie(Method::PUT, "/api/v1/services/router/config")
        .json(&body)
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::FORBIDDEN).await;
    assert!(p["detail"].as_str().unwrap().contains("CSRF"), "{p}");
    let r = with_cookie(Method::PUT, "/api/v1/services/router/config")
        .header("x-csrf-token", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let r = with_cookie(Method::PUT, "/api/v1/services/router/config")
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bearer requests need no CSRF token.
    assert_eq!(
        app.put_config("router", json!({"config": {"a": 3}}))
            .await
            .status(),
        StatusCode::OK
    );

    let r = with_cookie(Method::DELETE, "/api/v1/session")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = with_cookie(Method::GET, "/api/v1/services/router/config")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_session_ends_when_its_token_is_revoked() {
    let app = spawn_app().await;
    let viewer = token(&app, "browser", "viewer", None).await;
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"token": viewer}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let list: Value = app
        .req(Method::GET, "/api/v1/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["tokens"][1]["id"].as_str().unwrap().to_owned();
    app.req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/v1/services"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"token": "dials_wrong"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_service_token_cannot_open_a_browser_session() {
    let app = spawn_app().await;
    let service = token(&app, "router-svc", "service", Some("router")).await;
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"token": service}))
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers().contains_key("set-cookie"),
        "no session cookie for a service token"
    );
    let body = problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        body["detail"].as_str().unwrap().contains("web UI"),
        "{body}"
    );
    // The same token still works for what it is for.
    let r = app
        .client
        .get(app.url("/api/v1/services/router/schema"))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bad_token_hammered_from_the_admins_address_is_blocked_without_blocking_the_admin() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let r = app
            .client
            .get(app.url("/api/v1/services"))
            .bearer_auth("dials_stale-token-of-a-service")
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            let body = problem(r, StatusCode::TOO_MANY_REQUESTS).await;
            assert!(
                body["detail"].as_str().unwrap().contains("credential"),
                "{body}"
            );
        }
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The admin on the same address (127.0.0.1) is not held up, and neither is a sign-in.
    let r = app.get_config("router").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"token": app.token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Both the failures and the rate limiting are in the access log.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log: Value = app.get_json("/api/v1/audit?outcome=denied").await;
        let reasons: Vec<String> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect();
        if reasons.iter().any(|r| r.contains("not valid"))
            && reasons.iter().any(|r| {
                r.starts_with("rate limited: too many failed authentications with this credential")
            })
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{log}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn guessing_with_many_tokens_from_one_address_is_rate_limited() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..102 {
        let r = app
            .client
            .get(app.url("/api/v1/services"))
            .bearer_auth(format!("dials_guess{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert!(
        statuses[..100]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[100..],
        [StatusCode::TOO_MANY_REQUESTS; 2],
        "{statuses:?}"
    );
    // While the address is blocked, even a right guess learns nothing.
    let r = app.get_config("router").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        body["detail"].as_str().unwrap().contains("address"),
        "{body}"
    );
    // Requests without credentials to open routes still work.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_audit_log_records_writes_token_changes_and_denied_attempts() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let viewer = token(&app, "nosy", "viewer", None).await;
    let r = app
        .client
        .delete(app.url("/api/v1/services/router"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let r = app
        .client
        .get(app.url("/api/v1/tokens"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNAUTHORIZED).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log: Value = app
            .req(Method::GET, "/api/v1/audit")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["outcome"] == "denied")
            .count()
            == 2
        {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "denials not audited: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let items = log["items"].as_array().unwrap();
    let find = |action: &str| {
        items
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("{action} in {log}"))
    };
    let write = find("config.put");
    assert_eq!(
        (
            write["actor"].clone(),
            write["target"].clone(),
            write["address"].clone()
        ),
        (json!("admin"), json!("router"), json!("127.0.0.1"))
    );
    assert_eq!(find("token.create")["actor"], "admin");
    let forbidden = find("DELETE /api/v1/services/router");
    assert_eq!(
        (forbidden["actor"].clone(), forbidden["outcome"].clone()),
        (json!("nosy"), json!("denied"))
    );
    assert!(
        forbidden["reason"].as_str().unwrap().contains("admin"),
        "{forbidden}"
    );
    let anonymous = find("GET /api/v1/tokens");
    assert_eq!(anonymous["actor"], "anonymous");
    let only_denied: Value = app
        .req(Method::GET, "/api/v1/audit?outcome=denied&actor=nosy")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only_denied["items"].as_array().unwrap().len(), 1);
    assert!(
        !log.to_string().contains(&viewer),
        "no token secret in the audit log"
    );
}

#[tokio::test]
async fn a_flood_of_anonymous_requests_adds_a_few_audit_rows_not_thousands() {
    let app = spawn_app().await;
    let audit_rows = |app: &TestApp| {
        let app_url = app.url("/api/v1/audit?outcome=denied&limit=1000");
        let client = app.client.clone();
        let token = app.token.clone();
        async move {
            let page: Value = client
                .get(app_url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let anonymous = reqwest::Client::new();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, url) = (anonymous.clone(), app.url("/api/v1/services"));
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                let r = client
                    .get(format!("{url}?w={worker}&i={i}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = audit_rows(&app).await;
    assert!(
        !rows.is_empty() && rows.len() <= 5,
        "2,000 denials from one address: {} rows",
        rows.len()
    );
    // When the window ends, one row counts the repeats.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rows = audit_rows(&app).await;
        let summary = rows.iter().find(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("more denied within"))
        });
        if let Some(summary) = summary {
            let count: u64 = summary["reason"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(count >= 1990, "{summary}");
            assert!(rows.len() <= 6, "{} rows", rows.len());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no summary row: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
