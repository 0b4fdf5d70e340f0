//! RFC 7396 merge patch over `[target, patch]`: never panics, applying a patch twice changes
//! nothing more, and the diff of the result against the target never panics.
#![no_main]

use dials_domain::{Document, diff, merge_patch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let [target, patch] =
        <[Value; 2]>::try_from(pair).unwrap_or_else(|_| [Value::Null, Value::Null]);
    let Ok(target) = Document::from_value(target) else {
        return;
    };
    let Ok(once) = merge_patch(&target, &patch) else {
        return;
    };
    let twice = merge_patch(&once, &patch).expect("a patch that applied once applies again");
    assert_eq!(once, twice, "merge patch is idempotent");
    let _ = diff(&target, &once);
    let _ = once.leaves();
});
