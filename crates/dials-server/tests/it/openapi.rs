//! The OpenAPI document as a generated client reads it: every reference resolves, every status
//! a route can answer is listed, and values that can be any JSON are not typed as objects.

use serde_json::Value;

use crate::helpers::spawn_app;

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
