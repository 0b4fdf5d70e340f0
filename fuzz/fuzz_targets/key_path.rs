//! JSON Pointer parsing: never panics; a parsed pointer rebuilds from its tokens, and setting,
//! getting and removing it on a document agree.
#![no_main]

use dials_domain::{Document, KeyPath};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = KeyPath::parse(input) else {
        return;
    };
    let tokens: Vec<String> = key.tokens().collect();
    assert_eq!(KeyPath::from_tokens(&tokens), key, "tokens of {input:?}");
    let _ = KeyPath::parse(key.as_str()).expect("a parsed pointer parses again");

    let mut doc = Document::new();
    doc.set(&key, json!(1));
    if tokens.is_empty() {
        assert!(doc.is_empty());
        return;
    }
    assert_eq!(doc.get(&key), Some(&json!(1)), "set then get {input:?}");
    let _ = doc.leaves();
    assert_eq!(doc.remove(&key), Some(json!(1)));
    assert!(doc.is_empty(), "removing the only key empties the document");
});
