//! The JSON Canonicalization Scheme (RFC 8785) for `serde_json` values: the bytes every
//! checksum, signature and LKG MAC is taken over.
//!
//! Members are written in the order of their names' UTF-16 code units, strings with the
//! escapes of ECMAScript's `JSON.stringify` (which are `serde_json`'s), and every number as
//! the IEEE double it denotes, formatted as ECMAScript's `Number.prototype.toString` does
//! (`ryu-js`). Integers within ±2^53 are exact doubles and are written as digits directly.
//!
//! Written here rather than through a general canonicalizer because it is on the path of
//! every write (an envelope's checksum and signature): it sorts references to members in
//! place and writes straight into one buffer, where a general one buffers and re-sorts every
//! member's serialization. `serde_json_canonicalizer` stays as the reference the tests compare
//! with.

use serde_json::{Map, Number, Value};

/// The largest integer every double represents exactly, and the neighbours of which too.
const EXACT: u64 = 1 << 53;

/// The canonical form of `value`.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// The canonical form of an object given as its members.
pub fn object_to_vec(map: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, map);
    out
}

/// Appends the canonical form of `value`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Appends the canonical form of an object.
pub fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| utf16_order(a.0, b.0));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// Appends a string with `JSON.stringify`'s escapes: `"`, `\`, and the control characters
/// (`\b \f \n \r \t`, the rest as `\u00xx`); everything else as its UTF-8 bytes.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly this set, with lowercase hex.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Appends an unsigned integer, as the double it denotes.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    if n <= EXACT {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    } else {
        write_f64(out, n as f64);
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        write_u64(out, u);
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= EXACT {
            out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        } else {
            write_f64(out, i as f64);
        }
    } else {
        // A serde_json number is finite: it has no NaN or infinity to refuse.
        write_f64(out, n.as_f64().unwrap_or_default());
    }
}

fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        // -0 is written as 0.
        out.push(b'0');
    } else {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
    }
}

/// Member order: by UTF-16 code units. UTF-8 byte order is code point order, which differs
/// only between characters beyond U+FFFF (surrogate pairs, 0xD800…) and U+E000…U+FFFF.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reference(value: &Value) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(value).expect("canonical")
    }

    #[test]
    fn agrees_with_the_reference_canonicalizer() {
        let values = [
            json!(null),
            json!({}),
            json!([]),
            json!({"b": 1, "a": [1, 2.5, -0.0, 1e21, 1e-7, 123456789012345678u64], "": true}),
            json!({"€": 1, "\u{10000}": 2, "\u{e000}": 3, "z": 4, "Z": 5, "é": {"x": null}}),
            json!({"s": "quote \" backslash \\ ctrl \u{1} \u{1f} \n\t\r\u{8}\u{c} del \u{7f} / é 😀"}),
            json!({"n": [0, -1, 9007199254740992u64, 9007199254740993u64, -9007199254740993i64,
                         u64::MAX, i64::MIN, 0.1, 100.0, 1.5e300, 5e-324, -1.25e-10, 333_333_333.333_333_3]}),
            json!({"deep": {"b": {"d": [{"y": 1, "x": 2}], "c": "v"}, "a": false}}),
        ];
        for value in &values {
            assert_eq!(
                String::from_utf8(to_vec(value)).unwrap(),
                String::from_utf8(reference(value)).unwrap(),
                "{value}"
            );
        }
    }

    #[test]
    fn an_object_alone_is_written_as_its_value() {
        let value = json!({"b": 2, "a": {"d": 1, "c": 0}});
        let Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(object_to_vec(map), to_vec(&value));
        assert_eq!(to_vec(&value), br#"{"a":{"c":0,"d":1},"b":2}"#);
    }
}
