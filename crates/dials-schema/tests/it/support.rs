//! Loading the TARS fixtures, and what their README promises about them.

use std::path::PathBuf;

use dials_domain::Document;
use dials_schema::CompiledSchema;
use serde_json::Value;

/// The seven services the fixtures cover.
pub const SERVICES: [&str; 7] = [
    "global",
    "stt-worker",
    "tts-worker",
    "router",
    "llm-worker",
    "memory-worker",
    "wake-activation",
];

/// The fixtures folder.
pub fn tars_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tars"))
}

/// A fixture file parsed as JSON.
pub fn json(relative: &str) -> Value {
    let path = tars_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {relative} is not JSON: {e}"))
}

/// The raw schema of `service`.
pub fn raw_schema(service: &str) -> Value {
    json(&format!("{service}.schema.json"))
}

/// The compiled schema of `service`.
pub fn schema(service: &str) -> CompiledSchema {
    CompiledSchema::compile(&raw_schema(service))
        .unwrap_or_else(|e| panic!("schema of {service} does not compile: {e}"))
}

/// The example document of `service`.
pub fn config(service: &str) -> Document {
    document(json(&format!("{service}.config.json")))
}

/// A JSON object as a document.
pub fn document(value: Value) -> Document {
    Document::from_value(value).expect("fixture documents are objects")
}

/// The fixtures README.
pub fn readme() -> String {
    std::fs::read_to_string(tars_dir().join("README.md")).expect("the fixtures have a README")
}

/// Each invalid document the README lists, with the one key its error must point at:
/// `(file under invalid/, pointer)`. Read from lines such as
/// ``- `invalid/global.1.json` — out of range: `/mqtt/port` is 70000…``, where the first
/// backticked word after the dash names the key.
pub fn readme_invalid_documents() -> Vec<(String, String)> {
    readme()
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("- `invalid/")?;
            let (file, rest) = rest.split_once('`')?;
            let (_, explanation) = rest.split_once('—')?;
            let key = explanation.split('`').nth(1)?;
            let pointer = if key.starts_with('/') {
                key.to_owned()
            } else {
                format!("/{key}")
            };
            Some((file.to_owned(), pointer))
        })
        .collect()
}

/// One row of the README's counts table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub service: String,
    pub settings: usize,
    pub simple: usize,
    pub advanced: usize,
    pub secret: usize,
    pub restart: usize,
    /// Pointers of the secret keys (empty for the total row).
    pub secret_keys: Vec<String>,
}

/// The README's counts table: one row per service, then the total row (service `total`).
pub fn readme_counts() -> Vec<Counts> {
    readme()
        .lines()
        .filter(|line| line.starts_with("| `") || line.starts_with("| **total**"))
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').trim_matches('*').to_owned())
                .collect();
            let number = |i: usize| -> usize {
                cells[i]
                    .parse()
                    .unwrap_or_else(|_| panic!("bad count in README row {line}"))
            };
            let secret_keys = cells
                .get(6)
                .map(|keys| {
                    keys.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty() && *k != "–")
                        .map(|k| format!("/{k}"))
                        .collect()
                })
                .unwrap_or_default();
            Counts {
                service: cells[0].clone(),
                settings: number(1),
                simple: number(2),
                advanced: number(3),
                secret: number(4),
                restart: number(5),
                secret_keys,
            }
        })
        .collect()
}
