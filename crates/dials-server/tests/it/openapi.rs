//! The OpenAPI document as a generated client reads it: every reference resolves, every status
//! a route can answer is listed, and values that can be any JSON are not typed as objects.

use jsonschema::Validator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

async fn document() -> Value {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_reference_in_the_openapi_document_resolves() {
    let spec = document().await;
    let mut found = Vec::new();
    refs(&spec, &mut found);
    assert!(found.len() > 20, "the document uses references");
    let missing: Vec<&str> = found
        .into_iter()
        .filter(|target| {
            target
                .strip_prefix('#')
                .is_none_or(|pointer| spec.pointer(pointer).is_none())
        })
        .collect();
    assert!(missing.is_empty(), "unresolved: {missing:?}");
}

#[tokio::test]
async fn every_operation_documents_the_errors_it_can_answer() {
    let spec = document().await;
    let mut gaps = Vec::new();
    for (method, path, operation) in operations(&spec) {
        let responses = operation["responses"].as_object().unwrap();
        let mut expected = Vec::new();
        if operation["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            expected.extend(["401", "403", "429", "503"]);
        }
        if path.contains('{') {
            expected.extend(["400", "404"]);
        }
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "415"]);
        }
        for status in expected {
            if !responses.contains_key(status) {
                gaps.push(format!("{method} {path}: {status}"));
            }
        }
    }
    assert!(gaps.is_empty(), "undocumented: {gaps:#?}");
    let put_config = &spec["paths"]["/api/v1/services/{service}/config"]["put"]["responses"];
    for status in ["409", "412", "422"] {
        assert!(put_config.get(status).is_some(), "PUT config {status}");
    }
}

#[tokio::test]
async fn history_diff_and_secret_values_may_be_any_json() {
    let spec = document().await;
    let schemas = &spec["components"]["schemas"];
    for (schema, field) in [
        ("HistoryEntry", "old"),
        ("HistoryEntry", "new"),
        ("KeyDiff", "old"),
        ("KeyDiff", "new"),
        ("PutSecret", "value"),
        ("RevealResponse", "value"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert!(property.is_object(), "{schema}.{field} is described");
        assert!(
            property.get("type").is_none(),
            "{schema}.{field} is typed {}",
            property["type"]
        );
    }
}

/// The schema the document gives the parameter `name` in `place` of `method path`, compiled.
fn documented(spec: &Value, method: &str, path: &str, place: &str, name: &str) -> Validator {
    let schema = spec["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == place && p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no {place} parameter {name}"))["schema"]
        .clone();
    jsonschema::validator_for(&schema).unwrap()
}

/// `value` as it goes into a query string.
fn in_query(value: &str) -> String {
    value.replace('+', "%2B").replace(' ', "%20")
}

/// Holds the query parameter `name` of `GET path` to its documented schema: each value that
/// `documented` says it allows is answered 200 at `url`, each it refuses 400.
async fn query_follows_document(
    app: &TestApp,
    spec: &Value,
    (path, url): (&str, &str),
    name: &str,
    cases: &[(&str, bool)],
) {
    let schema = documented(spec, "get", path, "query", name);
    for &(value, allowed) in cases {
        assert_eq!(schema.is_valid(&json!(value)), allowed, "{name} {value:?}");
        let r = app
            .req(Method::GET, &format!("{url}?{name}={}", in_query(value)))
            .send()
            .await
            .unwrap();
        let expected = if allowed {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(r.status(), expected, "{url}: {name} {value:?}");
    }
}

#[tokio::test]
async fn if_match_and_cursor_are_refused_exactly_where_the_document_says() {
    // A client generated from the document, or a fuzzer reading it, must get a 400 for every
    // value the document rules out, and never a 400 for one it allows.
    let app = spawn_app().await;
    let spec = document().await;
    app.create("router", json!({"a": 0})).await;

    let if_match = documented(
        &spec,
        "patch",
        "/api/v1/services/{service}/config",
        "header",
        "If-Match",
    );
    let allowed = [
        "*",
        " * ",
        "\"1\"",
        "W/\"1\"",
        "\"9\", \"1\"",
        "\"9\" ,\t\"2\"",
        ", \"3\"",
        "\"4\",",
        "\"9\",,W/\"2\", \"5\"",
        "\"00\"",
        "\"18446744073709551615\"",
    ];
    let refused = [
        "1",
        "\"1",
        "1\"",
        "\"+1\"",
        "\"-1\"",
        "\"\"",
        ",",
        "*, \"1\"",
        "\"1\" \"2\"",
        "W/1",
        "w/\"1\"",
        "\"1\"x",
        "\"0x1\"",
        "\"123456789012345678901\"",
    ];
    for (value, documented) in allowed
        .iter()
        .map(|v| (v, true))
        .chain(refused.iter().map(|v| (v, false)))
    {
        assert_eq!(
            if_match.is_valid(&json!(value)),
            documented,
            "the document's If-Match pattern on {value:?}"
        );
        let before = app.get_json("/api/v1/services/router/config").await["version"].clone();
        let r = app
            .req(Method::PATCH, "/api/v1/services/router/config")
            .header("If-Match", *value)
            .json(&json!({"config": {"a": 1}}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        if documented {
            assert!(
                [StatusCode::OK, StatusCode::PRECONDITION_FAILED].contains(&status),
                "If-Match {value:?}: {status}"
            );
        } else {
            problem(r, StatusCode::BAD_REQUEST).await;
            let after = app.get_json("/api/v1/services/router/config").await["version"].clone();
            assert_eq!(before, after, "If-Match {value:?} changed nothing");
        }
    }

    query_follows_document(
        &app,
        &spec,
        ("/api/v1/history", "/api/v1/history"),
        "cursor",
        &[
            ("1", true),
            ("999999999999999999", true),
            ("0", false),
            ("01", false),
            ("+1", false),
            ("-1", false),
            ("1e3", false),
            (" 1", false),
            ("1234567890123456789", false),
        ],
    )
    .await;
}

#[tokio::test]
async fn numbers_and_instance_cursors_are_refused_exactly_where_the_document_says() {
    let app = spawn_app().await;
    let spec = document().await;
    app.create("router", json!({"a": 0})).await;
    app.patch_config("router", json!({"config": {"a": 1}}))
        .await
        .error_for_status()
        .unwrap();
    let status = |path: String| {
        let r = app.req(Method::GET, &path).send();
        async move { r.await.unwrap().status() }
    };

    // Whole numbers in the query: decimal digits, as a generated client writes them.
    for (value, documented) in [
        ("1", true),
        ("1000", true),
        ("+5", false),
        ("05", false),
        (" 5", false),
        ("5 ", false),
        ("1e2", false),
        ("0x10", false),
        ("", false),
    ] {
        let expected = if documented {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let path = format!("/api/v1/history?limit={}", in_query(value));
        assert_eq!(status(path).await, expected, "limit {value:?}");
        let path = format!("/api/v1/services/router/diff?from={}&to=2", in_query(value));
        let expected = if documented && value == "1" {
            StatusCode::OK
        } else if documented {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status(path).await, expected, "from {value:?}");
    }
    assert_eq!(
        status("/api/v1/services/router/diff?from=0&to=2".into()).await,
        StatusCode::OK,
        "0 is the empty document"
    );

    // A version in the path: a whole number from 1. The service has versions 1 and 2; an
    // instance of it has no override, so each version the document allows is 404 there.
    let documented_version = documented(
        &spec,
        "get",
        "/api/v1/services/{service}/versions/{version}",
        "path",
        "version",
    );
    for (value, in_path) in [
        ("1", "1"),
        ("2", "2"),
        ("3", "3"),
        ("0", "0"),
        ("+1", "%2B1"),
        ("01", "01"),
        ("1e0", "1e0"),
        (" 1", "%201"),
        ("-1", "-1"),
        ("0x1", "0x1"),
    ] {
        let allowed = value
            .parse::<i64>()
            .is_ok_and(|n| documented_version.is_valid(&json!(n)) && n.to_string() == value);
        let (service, instance) = match (allowed, value) {
            (true, "3") => (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            (true, _) => (StatusCode::OK, StatusCode::NOT_FOUND),
            (false, _) => (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
        };
        let path = format!("/api/v1/services/router/versions/{in_path}");
        assert_eq!(status(path).await, service, "version {value:?}");
        let path = format!("/api/v1/services/router/instances/mic-1/config/versions/{in_path}");
        assert_eq!(status(path).await, instance, "override version {value:?}");
    }

    // The instances of a service page by name, in lowercase hex.
    query_follows_document(
        &app,
        &spec,
        (
            "/api/v1/services/{service}/instances",
            "/api/v1/services/router/instances",
        ),
        "cursor",
        &[
            ("61", true),
            ("6d69632d31", true),
            ("6A", false),
            ("+a", false),
            ("6", false),
            ("zz", false),
            ("7", false),
        ],
    )
    .await;
}
