//! Migration of stored documents to a new schema, on the fixtures.

use dials_domain::KeyPath;
use dials_schema::CompiledSchema;
use serde_json::json;

use crate::support::{config, document, json, raw_schema, schema};

/// Invalid fixture documents, the key each breaks, and whether the key is unknown to the schema
/// (so dropped) or known with a bad value (so reset to its default).
const CASES: [(&str, &str, bool); 14] = [
    ("global.1.json", "/mqtt/port", false),
    ("global.2.json", "/mqtt/client_id", true),
    ("stt-worker.1.json", "/whisper_model", false),
    ("stt-worker.2.json", "/ws_url", false),
    ("tts-worker.1.json", "/volume_percent", false),
    ("tts-worker.2.json", "/tts_provider", false),
    ("router.1.json", "/router_stream_min_chars", false),
    ("router.2.json", "/router_wake_window_sec", false),
    ("llm-worker.1.json", "/llm_provider", false),
    ("llm-worker.2.json", "/llm_max_tokens", true),
    ("memory-worker.1.json", "/memory_file", false),
    ("memory-worker.2.json", "/memory_top_k", false),
    ("wake-activation.1.json", "/wake_detection_threshold", false),
    (
        "wake-activation.2.json",
        "/wake_speex_noise_suppression",
        false,
    ),
];

fn key(pointer: &str) -> KeyPath {
    KeyPath::parse(pointer).expect("test keys are pointers")
}

#[test]
fn every_invalid_fixture_migrates_by_dropping_or_resetting_exactly_its_broken_key() {
    for (file, broken, unknown) in CASES {
        let service = file.split('.').next().expect("service prefix");
        let schema = schema(service);
        let doc = document(json(&format!("invalid/{file}")));
        let migration = schema
            .migrate(&doc)
            .unwrap_or_else(|v| panic!("{file}: {v:?}"));
        let broken = key(broken);
        if unknown {
            assert_eq!(migration.dropped, std::slice::from_ref(&broken), "{file}");
            assert!(migration.reset.is_empty(), "{file}");
            assert_eq!(migration.document.get(&broken), None, "{file}");
        } else {
            assert_eq!(migration.reset, std::slice::from_ref(&broken), "{file}");
            assert!(migration.dropped.is_empty(), "{file}");
            let default = schema.setting(&broken).and_then(|s| s.default.clone());
            assert_eq!(migration.document.get(&broken).cloned(), default, "{file}");
        }
        assert!(
            schema.check(&migration.document).is_ok(),
            "{file}: result is valid"
        );
        // Every other key keeps the example's value.
        let example = config(service);
        for (k, v) in example.leaves() {
            if k != broken {
                assert_eq!(migration.document.get(&k), Some(v), "{file}: {k} kept");
            }
        }
    }
}

#[test]
fn a_document_valid_under_the_new_schema_migrates_unchanged() {
    // Complete: the example with the key it otherwise leaves to global set too.
    let mut complete = config("tts-worker").into_value();
    complete["log_level"] = serde_json::json!("WARNING");
    let complete = document(complete);
    let migration = schema("tts-worker").migrate(&complete).expect("valid");
    assert!(migration.is_unchanged());
    assert_eq!(migration.document, complete);
}

#[test]
fn a_narrowed_schema_resets_values_it_no_longer_allows_and_drops_removed_keys() {
    let mut raw = raw_schema("tts-worker");
    // The new version drops elevenlabs altogether and caps the volume at 60, default 50.
    raw["properties"]["tts_provider"]["enum"] = json!(["piper"]);
    raw["properties"]["volume_percent"]["maximum"] = json!(60);
    raw["properties"]["volume_percent"]["default"] = json!(50);
    let properties = raw["properties"].as_object_mut().expect("properties");
    for name in ["eleven_api_base", "eleven_api_key", "eleven_voice_id"] {
        properties.shift_remove(name);
    }
    let new = CompiledSchema::compile(&raw).expect("compiles");
    let stored = config("tts-worker");

    let conflicts = new.conflicts(&stored);
    let paths: Vec<&str> = conflicts.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/eleven_api_base",
            "/eleven_api_key",
            "/eleven_voice_id",
            "/tts_provider",
            "/volume_percent"
        ]
    );
    assert!(
        conflicts
            .iter()
            .all(|v| !v.message.contains("example-elevenlabs-key")),
        "a secret never appears in a message"
    );

    let migration = new.migrate(&stored).expect("repairable");
    assert_eq!(
        migration.dropped,
        [
            key("/eleven_api_base"),
            key("/eleven_api_key"),
            key("/eleven_voice_id")
        ]
    );
    assert_eq!(
        migration.reset,
        [key("/tts_provider"), key("/volume_percent")]
    );
    assert_eq!(
        migration.document.get(&key("/tts_provider")),
        Some(&json!("piper"))
    );
    assert_eq!(
        migration.document.get(&key("/volume_percent")),
        Some(&json!(50))
    );
    assert!(new.conflicts(&migration.document).is_empty());
}

#[test]
fn a_new_required_key_without_default_cannot_be_migrated() {
    let mut raw = raw_schema("llm-worker");
    raw["required"] = json!(["openai_api_key"]);
    let new = CompiledSchema::compile(&raw).expect("compiles");
    let mut stored = config("llm-worker").into_value();
    stored
        .as_object_mut()
        .expect("object")
        .remove("openai_api_key");
    let violations = new
        .migrate(&document(stored))
        .expect_err("nothing to fill it with");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].path, "/openai_api_key");
    assert_eq!(violations[0].message, "is required");
}
