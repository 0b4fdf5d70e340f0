//! Compiling schemas: what is accepted, what is refused and how the refusal reads.

use std::sync::Arc;

use dials_schema::{CompiledSchema, SchemaError, Violation};
use serde_json::{Value, json};

use crate::support::{SERVICES, document, raw_schema, schema};

fn refusal(schema: Value) -> SchemaError {
    CompiledSchema::compile(&schema).expect_err("the schema must be refused")
}

#[test]
fn every_fixture_schema_compiles() {
    for service in SERVICES {
        let compiled = schema(service);
        assert_eq!(compiled.raw(), &raw_schema(service));
    }
}

#[test]
fn a_compiled_schema_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let compiled = Arc::new(schema("global"));
    shareable(&compiled);
    let clone = Arc::clone(&compiled);
    let handle = std::thread::spawn(move || clone.check(&document(json!({}))).is_ok());
    assert!(handle.join().expect("thread finished"));
}

#[test]
fn the_hash_is_hex_sha256_and_ignores_key_order() {
    let compiled = schema("router");
    let hash = compiled.hash();
    assert_eq!(hash.len(), 64);
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    let reordered: Value = {
        let Value::Object(map) = raw_schema("router") else {
            panic!("object")
        };
        Value::Object(map.into_iter().rev().collect())
    };
    assert_eq!(
        CompiledSchema::compile(&reordered)
            .expect("compiles")
            .hash(),
        hash
    );
    assert_ne!(schema("global").hash(), hash);
}

#[test]
fn a_schema_without_dollar_schema_is_read_as_draft_2020_12() {
    // `prefixItems` exists only in 2020-12; an older draft would ignore it.
    let compiled = CompiledSchema::compile(&json!({
        "type": "object",
        "properties": {"pair": {"type": "array", "prefixItems": [{"type": "string"}]}}
    }))
    .expect("compiles");
    assert_eq!(compiled.validate(&json!({"pair": [1]})).len(), 1);
}

#[test]
fn a_draft_07_schema_from_schemars_is_accepted() {
    let compiled = CompiledSchema::compile(&json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"level": {"$ref": "#/definitions/Level"}},
        "definitions": {"Level": {"type": "string", "enum": ["info", "debug"], "default": "info"}}
    }))
    .expect("compiles");
    assert_eq!(
        compiled.apply_defaults(&document(json!({}))).into_value(),
        json!({"level": "info"})
    );
}

#[test]
fn a_schema_that_breaks_the_meta_schema_is_refused_with_the_place_and_the_reason() {
    let error = refusal(json!({"type": "object", "properties": {"a": {"type": "strnig"}}}));
    let SchemaError::Invalid { path, message } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(path, "/properties/a/type");
    assert!(
        message.starts_with("must be one of \"array\", \"boolean\""),
        "{message}"
    );
    assert!(
        error.to_string().contains("at /properties/a/type"),
        "{error}"
    );

    let error = refusal(json!({"properties": {"a": {"minimum": "zero"}}}));
    assert!(matches!(&error, SchemaError::Invalid { path, .. } if path == "/properties/a/minimum"));
    assert!(
        error
            .to_string()
            .contains("must be a number (got a string)"),
        "{error}"
    );

    let error = refusal(json!({"properties": {"a": {"pattern": "(unclosed"}}}));
    assert!(matches!(&error, SchemaError::Invalid { path, .. } if path == "/properties/a/pattern"));
}

#[test]
fn a_schema_must_describe_an_object() {
    for schema in [
        json!({"type": "string"}),
        json!({"type": ["array", "null"]}),
        json!({}),
    ] {
        assert!(
            matches!(refusal(schema.clone()), SchemaError::NotAnObject { .. }),
            "{schema}"
        );
    }
    assert!(matches!(
        refusal(json!(true)),
        SchemaError::NotAnObject { .. }
    ));
    assert!(matches!(
        refusal(json!("object")),
        SchemaError::NotAnObject { .. }
    ));
    let message = refusal(json!({"type": "string"})).to_string();
    assert!(message.contains("must describe a JSON object"), "{message}");
    assert!(CompiledSchema::compile(&json!({"properties": {}})).is_ok());
    assert!(CompiledSchema::compile(&json!({"type": ["object", "null"]})).is_ok());
}

#[test]
fn an_unknown_dialect_is_refused_by_name() {
    let error = refusal(json!({"$schema": "https://example.com/my-dialect", "type": "object"}));
    assert_eq!(
        error,
        SchemaError::UnknownDialect {
            dialect: "https://example.com/my-dialect".to_owned()
        }
    );
}

#[test]
fn references_outside_the_schema_or_to_nowhere_are_refused() {
    let error = refusal(json!({"properties": {"a": {"$ref": "https://example.com/a.json"}}}));
    assert!(
        matches!(error, SchemaError::UnresolvableReference { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("https://example.com/a.json"),
        "{error}"
    );
    let error = refusal(json!({"properties": {"a": {"$ref": "#/$defs/Missing"}}}));
    assert!(error.to_string().contains("/$defs/Missing"), "{error}");
}

#[test]
fn a_schema_whose_own_default_breaks_it_is_refused() {
    let error =
        refusal(json!({"properties": {"port": {"type": "integer", "maximum": 10, "default": 11}}}));
    let SchemaError::InvalidDefault { violations } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].path, "/port");
    assert!(
        error
            .to_string()
            .contains("/port must be at most 10 (got 11)"),
        "{error}"
    );
}

#[test]
fn a_required_key_without_default_does_not_make_the_schema_invalid() {
    let compiled = CompiledSchema::compile(&json!({
        "type": "object", "required": ["host"], "properties": {"host": {"type": "string"}}
    }))
    .expect("compiles");
    let violations = compiled
        .check(&document(json!({})))
        .expect_err("host is required");
    assert_eq!(violations[0].path, "/host");
    assert_eq!(violations[0].message, "is required");
}

#[test]
fn a_schemars_style_schema_with_refs_validates_fills_and_catalogues() {
    let compiled = CompiledSchema::compile(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Config",
        "type": "object",
        "properties": {
            "mqtt": {"$ref": "#/$defs/Mqtt", "default": {"host": "localhost", "port": 1883}},
            "backup": {"anyOf": [{"$ref": "#/$defs/Backup"}, {"type": "null"}]},
            "level": {"$ref": "#/$defs/Level", "default": "info", "x-complexity": "simple"}
        },
        "$defs": {
            "Mqtt": {
                "type": "object",
                "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer", "format": "uint16", "minimum": 0, "maximum": 65535},
                    "password": {"type": ["string", "null"], "x-secret": true}
                },
                "required": ["host", "port"]
            },
            "Backup": {"type": "object", "properties": {"dir": {"type": "string", "default": "/b"}}},
            "Level": {"oneOf": [
                {"const": "info", "description": "Normal."},
                {"const": "debug", "description": "Chatty."}
            ]}
        }
    }))
    .expect("compiles");

    let filled = compiled
        .check(&document(json!({})))
        .expect("defaults satisfy the schema");
    assert_eq!(
        filled.into_value(),
        json!({"mqtt": {"host": "localhost", "port": 1883}, "level": "info"})
    );
    let keys: Vec<String> = compiled
        .settings()
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "/mqtt/host",
            "/mqtt/port",
            "/mqtt/password",
            "/backup/dir",
            "/level"
        ]
    );
    let level = &compiled.settings()[4];
    assert_eq!(level.type_, "string");
    assert_eq!(level.enum_values, Some(vec![json!("info"), json!("debug")]));
    assert_eq!(compiled.settings()[1].default, Some(json!(1883)));
    let secrets: Vec<String> = compiled
        .secret_keys()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(secrets, ["/mqtt/password"]);

    let violations = compiled
        .check(&document(json!({
            "mqtt": {"host": "h", "port": 70000}, "level": "trace", "backup": {"dir": 5}
        })))
        .expect_err("invalid");
    assert_eq!(
        violations,
        [
            Violation::new("/backup/dir", "must be a string (got 5)"),
            Violation::new("/level", r#"must be one of "info", "debug" (got "trace")"#),
            Violation::new("/mqtt/port", "must be at most 65535 (got 70000)"),
        ],
        "an Option's null branch is set aside and a oneOf of constants reads as an enum"
    );
    assert!(compiled.check(&document(json!({"backup": null}))).is_ok());
}
