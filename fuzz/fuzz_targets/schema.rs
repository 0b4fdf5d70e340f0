//! Schema compilation and validation over `[schema, document]`: never panics, never hangs,
//! and a document `check` accepts has no violations.
#![no_main]

use dials_domain::Document;
use dials_schema::CompiledSchema;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut pair = pair.into_iter();
    let (Some(schema), document) = (pair.next(), pair.next()) else {
        return;
    };
    let Ok(compiled) = CompiledSchema::compile(&schema) else {
        return;
    };
    let _ = compiled.settings();
    let Some(Ok(document)) = document.map(Document::from_value) else {
        return;
    };
    let _ = compiled.validate(&document.to_value());
    if let Ok(checked) = compiled.check(&document) {
        assert!(
            compiled.validate(&checked.to_value()).is_empty(),
            "a checked document validates"
        );
    }
    let _ = compiled.migrate(&document);
});
