//! Config documents: one JSON object per service, and the leaves that make up its keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{DomainError, KeyPath};

/// One service's config: a JSON object, nested objects allowed.
///
/// A *key* is the JSON Pointer of a leaf. Leaves are every value that is not a non-empty object:
/// scalars, arrays (a list is one setting), empty objects (kept so they survive history), and
/// secret placeholders `{"$secret": n}` (one secret is one setting).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Document(Map<String, Value>);

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Self(Map::new())
    }

    /// Wraps a JSON value, refusing anything but an object, and an object nested deeper than
    /// [`MAX_DEPTH`](crate::MAX_DEPTH).
    pub fn from_value(value: Value) -> Result<Self, DomainError> {
        crate::limits::check_depth(&value)?;
        match value {
            Value::Object(map) => Ok(Self(map)),
            other => Err(DomainError::NotAnObject {
                found: json_type(&other),
            }),
        }
    }

    /// Wraps an object computed from documents already accepted (one filled with a schema's
    /// defaults, say), without measuring its depth again.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// The document as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The document as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// Consumes the document into a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Every leaf, keyed by its JSON Pointer, in pointer order.
    pub fn leaves(&self) -> BTreeMap<KeyPath, &Value> {
        let mut out = BTreeMap::new();
        collect_leaves(&KeyPath::root(), &self.0, &mut out);
        out
    }

    /// The leaves whose values differ from `other`'s, as (key, value here, value there), in no
    /// particular order. Walks both documents together and descends only into subtrees that
    /// differ; a leaf that became a subtree (or the other way round) is its old leaves gone and
    /// its new ones come.
    pub fn differing_leaves<'a>(&'a self, other: &'a Document) -> Vec<LeafChange<'a>> {
        let mut out = Vec::new();
        diff_maps(&KeyPath::root(), &self.0, &other.0, &mut out);
        out
    }

    /// The value at `key`, if present.
    pub fn get(&self, key: &KeyPath) -> Option<&Value> {
        if key.as_str().is_empty() {
            return None;
        }
        let mut current: Option<&Value> = None;
        let mut map = &self.0;
        for token in key.tokens() {
            let v = map.get(&token)?;
            current = Some(v);
            match v {
                Value::Object(inner) => map = inner,
                _ => map = EMPTY.get_or_init(Map::new),
            }
        }
        current
    }

    /// Removes the value at `key` and returns it; an object left empty by the removal is
    /// removed too, so no empty shell of a setting stays behind.
    pub fn remove(&mut self, key: &KeyPath) -> Option<Value> {
        let tokens: Vec<String> = key.tokens().collect();
        remove_in(&mut self.0, &tokens)
    }

    /// Sets the value at `key`, creating the objects on the way (and replacing a non-object
    /// in the way by one). The root pointer sets nothing.
    pub fn set(&mut self, key: &KeyPath, value: Value) {
        let tokens: Vec<String> = key.tokens().collect();
        let Some((last, parents)) = tokens.split_last() else {
            return;
        };
        let mut map = &mut self.0;
        for token in parents {
            let slot = map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(inner) = slot else {
                return;
            };
            map = inner;
        }
        map.insert(last.clone(), value);
    }

    /// Whether the document has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn remove_in(map: &mut Map<String, Value>, tokens: &[String]) -> Option<Value> {
    match tokens {
        [] => None,
        [last] => map.remove(last),
        [first, rest @ ..] => {
            let Value::Object(inner) = map.get_mut(first)? else {
                return None;
            };
            let removed = remove_in(inner, rest);
            if removed.is_some() && inner.is_empty() {
                map.remove(first);
            }
            removed
        }
    }
}

/// Whether `value` is an inner node of a document: a non-empty object that is not a secret
/// placeholder. Everything else is a leaf.
fn is_branch(value: &Value) -> bool {
    matches!(value, Value::Object(inner) if !inner.is_empty())
        && crate::secret::placeholder_version(value).is_none()
}

/// A leaf that differs: its key, its value before (if any), its value after (if any).
pub type LeafChange<'a> = (KeyPath, Option<&'a Value>, Option<&'a Value>);

fn diff_maps<'a>(
    prefix: &KeyPath,
    old: &'a Map<String, Value>,
    new: &'a Map<String, Value>,
    out: &mut Vec<LeafChange<'a>>,
) {
    for (name, before) in old {
        match new.get(name) {
            Some(after) if before == after => {}
            Some(after) => {
                let path = prefix.child(name);
                match (before, after) {
                    (Value::Object(a), Value::Object(b))
                        if is_branch(before) && is_branch(after) =>
                    {
                        diff_maps(&path, a, b, out)
                    }
                    _ if !is_branch(before) && !is_branch(after) => {
                        out.push((path, Some(before), Some(after)))
                    }
                    _ => {
                        leaves_of(&path, before, out, true);
                        leaves_of(&path, after, out, false);
                    }
                }
            }
            None => leaves_of(&prefix.child(name), before, out, true),
        }
    }
    for (name, after) in new {
        if !old.contains_key(name) {
            leaves_of(&prefix.child(name), after, out, false);
        }
    }
}

/// Every leaf at or under `path`, as removed (`old`) or added.
fn leaves_of<'a>(path: &KeyPath, value: &'a Value, out: &mut Vec<LeafChange<'a>>, old: bool) {
    let change = |key: KeyPath, v: &'a Value| {
        if old {
            (key, Some(v), None)
        } else {
            (key, None, Some(v))
        }
    };
    match value {
        Value::Object(inner) if is_branch(value) => {
            let mut leaves = BTreeMap::new();
            collect_leaves(path, inner, &mut leaves);
            out.extend(leaves.into_iter().map(|(key, v)| change(key, v)));
        }
        leaf => out.push(change(path.clone(), leaf)),
    }
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

fn collect_leaves<'a>(
    prefix: &KeyPath,
    map: &'a Map<String, Value>,
    out: &mut BTreeMap<KeyPath, &'a Value>,
) {
    for (name, value) in map {
        let path = prefix.child(name);
        match value {
            Value::Object(inner) if is_branch(value) => collect_leaves(&path, inner, out),
            leaf => {
                out.insert(path, leaf);
            }
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<Value> for Document {
    type Error = DomainError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

/// The JSON type name of a value, as people say it ("a number", "an object"), for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refuses_a_document_nested_past_the_depth_limit() {
        let mut value = json!({"leaf": 1});
        for _ in 0..crate::MAX_DEPTH {
            value = json!({ "a": value });
        }
        assert_eq!(
            Document::from_value(value),
            Err(DomainError::TooDeep {
                limit: crate::MAX_DEPTH
            })
        );
    }

    #[test]
    fn refuses_anything_but_an_object() {
        assert!(Document::from_value(json!([1])).is_err());
        assert!(Document::from_value(json!("x")).is_err());
        assert!(Document::from_value(json!({})).is_ok());
    }

    #[test]
    fn flattens_nested_objects_into_pointer_keyed_leaves() {
        let doc = Document::from_value(json!({
            "a": 1, "mqtt": {"host": "pi", "port": 1883}, "list": [1, 2], "empty": {}, "a/b": true
        }))
        .unwrap();
        let keys: Vec<_> = doc.leaves().keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(
            keys,
            ["/a", "/a~1b", "/empty", "/list", "/mqtt/host", "/mqtt/port"]
        );
    }

    #[test]
    fn removes_a_key_and_the_objects_it_leaves_empty() {
        let mut doc =
            Document::from_value(json!({"a": {"b": {"c": 1}}, "x": 2, "y": {"z": 1, "w": 2}}))
                .unwrap();
        assert_eq!(
            doc.remove(&KeyPath::parse("/a/b/c").unwrap()),
            Some(json!(1))
        );
        assert_eq!(doc.remove(&KeyPath::parse("/y/z").unwrap()), Some(json!(1)));
        assert_eq!(doc.remove(&KeyPath::parse("/nope/x").unwrap()), None);
        assert_eq!(doc.into_value(), json!({"x": 2, "y": {"w": 2}}));
    }

    #[test]
    fn sets_values_by_pointer_making_objects_on_the_way() {
        let mut doc = Document::from_value(json!({"a": 1, "b": "x"})).unwrap();
        doc.set(&KeyPath::parse("/b/c/d").unwrap(), json!(2));
        doc.set(&KeyPath::parse("/a").unwrap(), json!(3));
        doc.set(&KeyPath::root(), json!(4));
        assert_eq!(doc.into_value(), json!({"a": 3, "b": {"c": {"d": 2}}}));
    }

    #[test]
    fn gets_values_by_pointer() {
        let doc = Document::from_value(json!({"mqtt": {"host": "pi"}, "n": 3})).unwrap();
        assert_eq!(
            doc.get(&KeyPath::parse("/mqtt/host").unwrap()),
            Some(&json!("pi"))
        );
        assert_eq!(doc.get(&KeyPath::parse("/n/x").unwrap()), None);
        assert_eq!(doc.get(&KeyPath::parse("/missing").unwrap()), None);
    }
}
