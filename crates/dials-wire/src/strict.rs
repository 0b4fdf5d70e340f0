//! Strict JSON reading for request bodies: what JSON's grammar allows but would lose data
//! silently is refused instead. A key given twice in one object would keep only its last value,
//! and an integer beyond the 64-bit range would be rounded to a float.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value read with every object's keys checked for duplicates.
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One lookup per member: the entry both checks for a duplicate and takes the value.
            match out.entry(key) {
                serde_json::map::Entry::Occupied(taken) => {
                    return Err(de::Error::custom(format_args!(
                        "the key {:?} appears twice in one object",
                        taken.key()
                    )));
                }
                serde_json::map::Entry::Vacant(free) => {
                    let StrictValue(v) = map.next_value()?;
                    free.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// The first integer literal in `json` (outside strings) that does not fit in 64 bits, signed
/// or unsigned; `None` when every one fits. Literals with a fraction or an exponent are floats
/// by intent and are left alone. Malformed input is left for the parser to report.
pub fn oversized_integer(json: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < json.len()
                    && matches!(json[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let literal = &json[start..i];
                let integer = !literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
                if integer {
                    let text = std::str::from_utf8(literal).unwrap_or_default();
                    if text.parse::<i64>().is_err() && text.parse::<u64>().is_err() {
                        let digits = text.trim_start_matches('-');
                        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                            return Some(text.to_owned());
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<StrictValue>(text).map(|v| v.0)
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let err = strict(r#"{"a": 1, "a": 2}"#).unwrap_err();
        assert!(err.to_string().contains(r#""a" appears twice"#), "{err}");
        assert!(strict(r#"{"x": [{"b": 1, "c": {"d": 1, "d": 1}}]}"#).is_err());
        assert_eq!(
            strict(r#"{"a": 1, "b": {"a": 2}}"#).unwrap(),
            serde_json::json!({"a": 1, "b": {"a": 2}})
        );
    }

    #[test]
    fn values_read_the_same_as_serde_json_reads_them() {
        let text = r#"{"s": "x\"y", "n": -3, "u": 18446744073709551615, "f": 1.5e3,
            "b": true, "z": null, "l": [1, "2", {"k": []}]}"#;
        assert_eq!(
            strict(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn only_integers_beyond_64_bits_are_oversized() {
        assert_eq!(oversized_integer(b"{\"a\": 1}"), None);
        assert_eq!(
            oversized_integer(b"[18446744073709551615, -9223372036854775808]"),
            None
        );
        assert_eq!(
            oversized_integer(b"{\"a\": 18446744073709551616}"),
            Some("18446744073709551616".into())
        );
        assert_eq!(
            oversized_integer(b"[-9223372036854775809]"),
            Some("-9223372036854775809".into())
        );
        assert_eq!(
            oversized_integer(b"[1e400, 123456789012345678901234.5]"),
            None
        );
        assert_eq!(
            oversized_integer(br#"{"s": "99999999999999999999999", "t": "\"", "n": 1}"#),
            None,
            "digits inside strings are text"
        );
    }
}
