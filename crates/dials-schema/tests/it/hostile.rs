//! Schemas and documents written to hurt: each must be refused with a clear error, quickly,
//! and never crash the process.

use dials_domain::{Document, MAX_DEPTH};
use dials_schema::{CompiledSchema, MAX_EXPANDED_VALUES, SchemaError};
use serde_json::{Map, Value, json};

/// A schema whose property `x` is `d0`, where each `d(i)` is `link` applied to a `$ref` to
/// `d(i+1)` and the last is an integer.
fn chained(links: usize, link: impl Fn(Value) -> Value) -> Value {
    let mut defs = Map::new();
    for i in 0..links {
        let next = json!({"$ref": format!("#/$defs/d{}", i + 1)});
        defs.insert(format!("d{i}"), link(next));
    }
    defs.insert(format!("d{links}"), json!({"type": "integer"}));
    json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs})
}

/// Runs `f` on a thread with the 2 MiB stack a server worker thread has.
fn on_a_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

#[test]
fn a_five_thousand_link_ref_chain_is_refused_not_a_stack_overflow() {
    let schema = chained(5_000, |next| next);
    let result = on_a_worker_stack(move || CompiledSchema::compile(&schema).map(|_| ()));
    assert_eq!(result, Err(SchemaError::TooDeep { limit: MAX_DEPTH }));
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("deeper than the limit of 64 levels")
    );
}

#[test]
fn a_ref_chain_within_the_limit_still_compiles() {
    let schema = chained(MAX_DEPTH / 2, |next| next);
    let compiled = CompiledSchema::compile(&schema).expect("compiles");
    assert!(compiled.validate(&json!({"x": 1})).is_empty());
    assert_eq!(compiled.validate(&json!({"x": "one"})).len(), 1);
}

#[test]
fn definitions_that_each_refer_twice_to_the_next_are_refused_as_too_large() {
    for link in [
        |next: Value| json!({"allOf": [next.clone(), next]}),
        |next: Value| json!({"anyOf": [next.clone(), next]}),
        |next: Value| json!({"type": "object", "properties": {"a": next.clone(), "b": next}}),
    ] {
        let schema = chained(25, link);
        assert_eq!(
            CompiledSchema::compile(&schema).map(|_| ()),
            Err(SchemaError::TooLarge {
                limit: MAX_EXPANDED_VALUES
            })
        );
    }
}

#[test]
fn a_recursive_ref_applied_twice_to_one_value_is_refused() {
    // Validating {"a": {"a": … "x"}} against this takes 2^depth steps.
    let schema = json!({"type": "object", "properties": {
        "a": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}
    }});
    let err = CompiledSchema::compile(&schema).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, SchemaError::RecursiveReference { .. }),
        "{err}"
    );
}

#[test]
fn a_recursive_type_validates_documents_up_to_the_depth_limit() {
    let schema = json!({"type": "object", "properties": {
        "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
        "value": {"type": "integer"}
    }});
    let compiled = CompiledSchema::compile(&schema).expect("a linked list is fine");
    let mut doc = json!({"value": "x"});
    for _ in 1..MAX_DEPTH {
        doc = json!({ "next": doc });
    }
    let doc = Document::from_value(doc).expect("at the limit");
    let violations = on_a_worker_stack(move || compiled.check(&doc).map(|_| ()).unwrap_err());
    assert_eq!(violations.len(), 1);
}

#[test]
fn a_huge_pattern_is_refused_as_an_invalid_regex() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "string", "pattern": "(a{1000}){1000}"}
    }});
    let err = CompiledSchema::compile(&schema).map(|_| ()).unwrap_err();
    assert!(matches!(err, SchemaError::Invalid { .. }), "{err}");
}
