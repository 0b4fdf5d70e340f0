//! JSON Merge Patch (RFC 7396) over config documents.

use serde_json::{Map, Value};

use crate::document::json_type;
use crate::{Document, DomainError};

/// Applies an RFC 7396 merge patch to `target`. The patch must be an object, so that the result
/// is still a document: `null` removes a key, an object merges recursively, anything else
/// replaces.
pub fn merge_patch(target: &Document, patch: &Value) -> Result<Document, DomainError> {
    let Value::Object(patch) = patch else {
        return Err(DomainError::NotAnObject {
            found: json_type(patch),
        });
    };
    let mut out = target.as_map().clone();
    merge_into(&mut out, patch);
    // A patch nested deeper than documents may be makes a document too deep: refused here.
    Document::from_value(Value::Object(out))
}

fn merge_into(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (name, value) in patch {
        match value {
            Value::Null => {
                target.remove(name);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_into(slot, inner);
                }
            }
            other => {
                target.insert(name.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(target: Value, patch: Value) -> Value {
        merge_patch(&Document::from_value(target).unwrap(), &patch)
            .unwrap()
            .into_value()
    }

    #[test]
    fn follows_the_rfc_7396_examples() {
        // The test cases of RFC 7396 appendix A whose target and patch are objects.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(
                apply(target.clone(), patch.clone()),
                expected,
                "{target} + {patch}"
            );
        }
    }

    #[test]
    fn refuses_a_patch_that_would_nest_the_document_too_deep() {
        let mut patch = json!(1);
        for _ in 0..=crate::MAX_DEPTH {
            patch = json!({ "a": patch });
        }
        let err = merge_patch(&Document::new(), &patch).unwrap_err();
        assert_eq!(
            err,
            DomainError::TooDeep {
                limit: crate::MAX_DEPTH
            }
        );
    }

    #[test]
    fn refuses_a_patch_that_is_not_an_object() {
        let err = merge_patch(&Document::new(), &json!([1])).unwrap_err();
        assert_eq!(err, DomainError::NotAnObject { found: "an array" });
    }
}
