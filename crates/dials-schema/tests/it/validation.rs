//! Validation of the fixture documents: examples pass, each invalid document fails at exactly
//! the key its README names, and messages read as sentences.

use dials_schema::Violation;
use serde_json::json;

use crate::support::{SERVICES, config, document, json, readme_invalid_documents, schema};

/// Every invalid document and the key its one error must point at, as the README states them.
const INVALID: [(&str, &str); 14] = [
    ("global.1.json", "/mqtt/port"),
    ("global.2.json", "/mqtt/client_id"),
    ("stt-worker.1.json", "/whisper_model"),
    ("stt-worker.2.json", "/ws_url"),
    ("tts-worker.1.json", "/volume_percent"),
    ("tts-worker.2.json", "/tts_provider"),
    ("router.1.json", "/router_stream_min_chars"),
    ("router.2.json", "/router_wake_window_sec"),
    ("llm-worker.1.json", "/llm_provider"),
    ("llm-worker.2.json", "/llm_max_tokens"),
    ("memory-worker.1.json", "/memory_file"),
    ("memory-worker.2.json", "/memory_top_k"),
    ("wake-activation.1.json", "/wake_detection_threshold"),
    ("wake-activation.2.json", "/wake_speex_noise_suppression"),
];

fn service_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

#[test]
fn the_expected_error_table_is_the_one_the_readme_states() {
    let mut from_readme = readme_invalid_documents();
    from_readme.sort();
    let mut table: Vec<(String, String)> = INVALID
        .iter()
        .map(|(f, k)| ((*f).to_owned(), (*k).to_owned()))
        .collect();
    table.sort();
    assert_eq!(table, from_readme);
}

#[test]
fn every_invalid_fixture_file_is_covered_by_the_table() {
    let mut files: Vec<String> = std::fs::read_dir(crate::support::tars_dir().join("invalid"))
        .expect("invalid/ exists")
        .map(|entry| {
            entry
                .expect("readable")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = INVALID.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[test]
fn every_example_config_is_accepted_after_defaults() {
    for service in SERVICES {
        let schema = schema(service);
        if let Err(violations) = schema.check(&config(service)) {
            panic!("{service} example rejected: {violations:?}");
        }
    }
}

#[test]
fn an_empty_document_is_accepted_for_every_service() {
    for service in SERVICES {
        let result = schema(service).check(&document(json!({})));
        assert!(result.is_ok(), "{service}: {result:?}");
    }
}

#[test]
fn every_invalid_document_fails_at_exactly_the_key_the_readme_names() {
    for (file, key) in INVALID {
        let schema = schema(service_of(file));
        let doc = document(json(&format!("invalid/{file}")));
        let violations = schema.check(&doc).expect_err(file);
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, [key], "{file}: {violations:?}");
        assert_eq!(
            schema.conflicts(&doc),
            violations,
            "{file}: conflicts agree with check"
        );
    }
}

#[test]
fn invalid_documents_get_messages_a_person_understands() {
    let expected = [
        ("global.1.json", "must be at most 65535 (got 70000)"),
        ("global.2.json", "is not a known setting"),
        (
            "stt-worker.1.json",
            concat!(
                r#"must be one of "tiny", "tiny.en", "base", "base.en", "small", "small.en", "#,
                r#""medium", "medium.en", "large", "large-v2", "large-v3" (got "large-v4")"#
            ),
        ),
        ("tts-worker.1.json", "must be at most 200 (got 250)"),
        (
            "tts-worker.2.json",
            r#"must be one of "piper", "elevenlabs" (got "google")"#,
        ),
        ("router.1.json", "must be an integer (got a string)"),
        ("router.2.json", "must be at most 60.0 (got 90.0)"),
        ("llm-worker.2.json", "is not a known setting"),
        ("memory-worker.2.json", "must be an integer (got 5.5)"),
        ("wake-activation.1.json", "must be at most 1.0 (got 1.2)"),
        ("wake-activation.2.json", "must be a boolean (got a string)"),
    ];
    for (file, message) in expected {
        let violations = schema(service_of(file))
            .check(&document(json(&format!("invalid/{file}"))))
            .expect_err(file);
        assert_eq!(violations[0].message, message, "{file}");
    }
}

#[test]
fn a_pattern_violation_quotes_the_pattern_and_the_value() {
    let violations = schema("stt-worker")
        .check(&document(json("invalid/stt-worker.2.json")))
        .expect_err("invalid");
    assert!(
        violations[0]
            .message
            .starts_with("must match the pattern ^wss?://"),
        "{violations:?}"
    );
    assert!(
        violations[0].message.contains("(got \"http://"),
        "{violations:?}"
    );
}

#[test]
fn a_secret_value_is_never_quoted_back_in_a_message() {
    let schema = schema("global");
    let password = "hunter2-very-secret";
    let doc = document(json!({"mqtt": {"url": format!("http://tars:{password}@mqtt:1883")}}));
    let violations = schema.check(&doc).expect_err("url must be mqtt://");
    assert!(!violations.is_empty());
    for violation in &violations {
        assert_eq!(violation.path, "/mqtt/url");
        assert!(!violation.message.contains(password), "{violation}");
    }
}

#[test]
fn violations_are_sorted_by_path_one_per_broken_rule() {
    let doc = document(json!({
        "tts_provider": "google", "volume_percent": 250, "zzz": 1, "aaa": 2, "tts_concurrency": "x"
    }));
    let violations = schema("tts-worker").check(&doc).expect_err("invalid");
    let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/aaa",
            "/tts_concurrency",
            "/tts_provider",
            "/volume_percent",
            "/zzz"
        ]
    );
}

#[test]
fn a_document_that_is_not_an_object_is_one_violation_at_the_root() {
    let violations = schema("router").validate(&json!([1, 2]));
    assert_eq!(
        violations,
        [Violation::new("", "must be an object (got an array)")]
    );
}

#[test]
fn formats_are_checked_not_just_annotated() {
    let doc = document(json!({"mqtt": {"url": "mqtt://has a space"}}));
    let violations = schema("global").check(&doc).expect_err("not a uri");
    assert!(
        violations.iter().all(|v| v.path == "/mqtt/url"),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.message.starts_with("must be a valid uri")),
        "{violations:?}"
    );
}
