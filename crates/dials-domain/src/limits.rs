//! Input limits shared by every crate that walks user data: how deep a document may nest, and
//! how deep a schema may nest or chain through `$ref`s.
//!
//! Walks over documents and schemas recurse; bounding depth where a value enters keeps every
//! walk far from the end of a thread's stack, whatever the input.

use serde_json::Value;

use crate::DomainError;

/// How deep user data may go: a document may nest objects and arrays at most this deep, a key
/// path may have at most this many tokens, and a schema may nest subschemas (following each
/// `$ref` counts as one level) at most this deep.
pub const MAX_DEPTH: usize = 64;

/// The nesting depth of `value`: 0 for a scalar, 1 for an object or array of scalars, and so
/// on. Iterative, so it is safe on any value; stops counting once past `MAX_DEPTH + 1`.
pub fn depth_of(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        if !matches!(value, Value::Object(_) | Value::Array(_)) {
            continue;
        }
        let depth = depth + 1;
        deepest = deepest.max(depth);
        if depth > MAX_DEPTH {
            return depth;
        }
        match value {
            Value::Object(map) => stack.extend(map.values().map(|child| (child, depth))),
            Value::Array(items) => stack.extend(items.iter().map(|child| (child, depth))),
            _ => {}
        }
    }
    deepest
}

/// Refuses a value nested deeper than [`MAX_DEPTH`].
pub fn check_depth(value: &Value) -> Result<(), DomainError> {
    if depth_of(value) > MAX_DEPTH {
        Err(DomainError::TooDeep { limit: MAX_DEPTH })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for i in 0..levels {
            value = if i % 2 == 0 {
                json!({ "a": value })
            } else {
                json!([value])
            };
        }
        value
    }

    #[test]
    fn measures_nesting_of_objects_and_arrays() {
        assert_eq!(depth_of(&json!(1)), 0);
        assert_eq!(depth_of(&json!({})), 1);
        assert_eq!(depth_of(&json!({"a": [1, {"b": 2}], "c": 3})), 3);
        assert_eq!(depth_of(&nested(MAX_DEPTH)), MAX_DEPTH);
    }

    #[test]
    fn refuses_values_nested_past_the_limit() {
        assert!(check_depth(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(
            check_depth(&nested(MAX_DEPTH + 1)),
            Err(DomainError::TooDeep { limit: MAX_DEPTH })
        );
    }
}
