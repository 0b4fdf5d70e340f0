//! Turning what people type into typed JSON: keys (`mqtt.host` or `/mqtt/host`), values read
//! by the type the service's schema gives them, and times (`2026-05-01T12:00:00Z` or `2h`).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::usage;

/// A key as the segments of its JSON Pointer: `/mqtt/host` (with `~1` and `~0` escapes) or the
/// dotted `mqtt.host`.
pub fn key_segments(key: &str) -> anyhow::Result<Vec<String>> {
    let segments: Vec<String> = if let Some(pointer) = key.strip_prefix('/') {
        pointer
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect()
    } else {
        key.split('.').map(str::to_owned).collect()
    };
    if key.is_empty() || segments.iter().any(String::is_empty) {
        return Err(usage(format!(
            "invalid key {key:?}: write it as name, parent.child or /parent/child"
        )));
    }
    Ok(segments)
}

/// The JSON Pointer of a key's segments.
pub fn pointer(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The schema of a key, following `properties` and local `$ref`s.
pub fn schema_at<'a>(root: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = resolve(root, root);
    for s in segments {
        node = resolve(root, node.get("properties")?.get(s)?);
    }
    Some(node)
}

/// Follows a local `$ref` (`#/$defs/Name`), once per level.
pub fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) if r.starts_with('#') => root.pointer(&r[1..]).unwrap_or(node),
        _ => node,
    }
}

/// The JSON types a schema allows (`type` as a string or a list; `anyOf`/`oneOf` branches).
fn types(root: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(root, schema);
    let mut out = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(Into::into)),
        _ => {}
    }
    for branch in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = schema.get(branch) {
            for o in options {
                out.extend(types(root, o));
            }
        }
    }
    if out.is_empty()
        && let Some(Value::Array(values)) = schema.get("enum")
    {
        for v in values {
            out.push(
                match v {
                    Value::String(_) => "string",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "boolean",
                    Value::Null => "null",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                }
                .into(),
            );
        }
    }
    out
}

/// Reads `text` as the type the schema gives the key: numbers, booleans, `null`, JSON for
/// objects and arrays, strings as typed. Without a type (or when `text` does not read as it,
/// so the server can say why), JSON when it parses, else a string.
pub fn typed_value(text: &str, root: Option<&Value>, segments: &[String]) -> Value {
    let as_json = || serde_json::from_str::<Value>(text).ok();
    let allowed = match root.and_then(|r| schema_at(r, segments).map(|s| types(r, s))) {
        Some(t) if !t.is_empty() => t,
        _ => return as_json().unwrap_or_else(|| Value::String(text.to_owned())),
    };
    let allows = |t: &str| allowed.iter().any(|a| a == t);
    if text == "null" && allows("null") {
        return Value::Null;
    }
    if let Some(v) = as_json() {
        let fits = match &v {
            Value::Number(n) => {
                allows("number") || (allows("integer") && (n.is_i64() || n.is_u64()))
            }
            Value::Bool(_) => allows("boolean"),
            Value::Array(_) => allows("array"),
            Value::Object(_) => allows("object"),
            // Strings are taken as typed, quotes included.
            Value::String(_) | Value::Null => false,
        };
        if fits {
            return v;
        }
    }
    Value::String(text.to_owned())
}

/// Adds `value` at `segments` into a merge patch.
pub fn insert(patch: &mut Map<String, Value>, segments: &[String], value: Value) {
    let (last, parents) = segments.split_last().expect("a key has a segment");
    let mut node = patch;
    for s in parents {
        let entry = node
            .entry(s.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().expect("just made an object");
    }
    node.insert(last.clone(), value);
}

/// A point in time: RFC 3339, or an age such as `90s`, `30m`, `2h`, `7d` (that long ago).
pub fn parse_time(text: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let bad = || {
        usage(format!(
            "invalid time {text:?}: expected RFC 3339 (2026-05-01T12:00:00Z) or an age (30m, 2h, 7d)"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(OffsetDateTime::now_utc() - time::Duration::seconds(seconds))
}

/// A timestamp in RFC 3339 for a query string.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "rate": {"type": "number"},
            "workers": {"type": "integer"},
            "on": {"type": "boolean"},
            "name": {"type": "string"},
            "user": {"type": ["string", "null"]},
            "tags": {"type": "array"},
            "mqtt": {"$ref": "#/$defs/Mqtt"},
        }, "$defs": {"Mqtt": {"type": "object", "properties": {"port": {"type": "integer"}}}}})
    }

    fn typed(key: &str, text: &str) -> Value {
        typed_value(text, Some(&schema()), &key_segments(key).unwrap())
    }

    #[test]
    fn values_are_read_as_the_schema_types_them() {
        assert_eq!(typed("rate", "1.2"), json!(1.2));
        assert_eq!(typed("workers", "3"), json!(3));
        assert_eq!(typed("on", "true"), json!(true));
        assert_eq!(typed("name", "80"), json!("80"));
        assert_eq!(typed("name", "true"), json!("true"));
        assert_eq!(typed("user", "null"), json!(null));
        assert_eq!(typed("tags", "[1,2]"), json!([1, 2]));
        assert_eq!(typed("mqtt.port", "1884"), json!(1884));
        assert_eq!(typed("/mqtt/port", "1884"), json!(1884));
        // Not a number: sent as text so that the server names the problem.
        assert_eq!(typed("rate", "fast"), json!("fast"));
    }

    #[test]
    fn without_a_schema_json_wins_else_text() {
        let seg = key_segments("x").unwrap();
        assert_eq!(typed_value("12", None, &seg), json!(12));
        assert_eq!(typed_value("{\"a\":1}", None, &seg), json!({"a": 1}));
        assert_eq!(typed_value("hello world", None, &seg), json!("hello world"));
    }

    #[test]
    fn keys_are_dotted_or_pointers() {
        assert_eq!(key_segments("mqtt.host").unwrap(), ["mqtt", "host"]);
        assert_eq!(key_segments("/a~1b/c~0d").unwrap(), ["a/b", "c~d"]);
        assert_eq!(pointer(&key_segments("/a~1b/c~0d").unwrap()), "/a~1b/c~0d");
        assert!(key_segments("a..b").is_err());
        assert!(key_segments("").is_err());
    }

    #[test]
    fn a_patch_nests_dotted_keys() {
        let mut patch = Map::new();
        insert(&mut patch, &key_segments("mqtt.host").unwrap(), json!("h"));
        insert(&mut patch, &key_segments("mqtt.port").unwrap(), json!(1));
        insert(&mut patch, &key_segments("level").unwrap(), json!("INFO"));
        assert_eq!(
            Value::Object(patch),
            json!({"mqtt": {"host": "h", "port": 1}, "level": "INFO"})
        );
    }

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert!(parse_time("2026-05-01T12:00:00Z").is_ok());
        let two_hours = parse_time("2h").unwrap();
        let age = OffsetDateTime::now_utc() - two_hours;
        assert!(age.whole_minutes() >= 119 && age.whole_minutes() <= 121);
        assert!(parse_time("yesterday").is_err());
    }
}
