//! JCS (RFC 8785) canonicalisation: never panics on a parsed value, the canonical form parses
//! back to the same value (numbers compared as IEEE doubles, as JCS writes them), and
//! canonicalising it again gives the same bytes.
#![no_main]

use dials_wire::envelope::canonical;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(bytes) = canonical(&value) else {
        return;
    };
    let back: Value = serde_json::from_slice(&bytes).expect("the canonical form is JSON");
    assert!(same(&value, &back), "canonical form changed the value");
    assert_eq!(
        canonical(&back).expect("canonical again"),
        bytes,
        "not idempotent"
    );
});
