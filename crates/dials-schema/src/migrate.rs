//! Migration: bringing a stored document in line with a new version of its schema.
//!
//! When a service registers a new schema, its stored document may break it: a key was removed,
//! a range narrowed, an enum lost a value. [`CompiledSchema::migrate`] repairs what can be
//! repaired without guessing — unknown keys are dropped, a value that breaks its rule goes back
//! to the schema's default (or is dropped when it has none and is not required) — and reports
//! what it did, so the change can be recorded and shown. What cannot be repaired that way
//! (a required key with no default) is returned as violations.

use std::collections::HashSet;

use dials_domain::{Document, KeyPath};
use jsonschema::error::ValidationErrorKind;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalogue::ObjectShape;
use crate::compiled::{CompiledSchema, into_document};
use crate::violation::{child_path, visit_errors};
use crate::{Violation, defaults};

/// The outcome of migrating a document to a schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Migration {
    /// The repaired document, defaults filled; it satisfies the schema.
    pub document: Document,
    /// Keys removed: not allowed by the schema, or invalid with no default to go back to. For
    /// a removed object, every leaf it held.
    pub dropped: Vec<KeyPath>,
    /// Keys whose invalid value was replaced by the schema's default.
    pub reset: Vec<KeyPath>,
}

impl Migration {
    /// Whether the document needed no change beyond defaults.
    pub fn is_unchanged(&self) -> bool {
        self.dropped.is_empty() && self.reset.is_empty()
    }
}

/// What to do with an offending location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Repair {
    /// The schema does not allow the key at all.
    Drop,
    /// The key is allowed but its value breaks a rule.
    Reset,
}

impl CompiledSchema {
    /// Repairs `doc` so it satisfies this schema: drops keys the schema does not allow, resets
    /// invalid values to their default, drops invalid values that have no default and are not
    /// required. Fails with the remaining violations when that is not enough.
    pub fn migrate(&self, doc: &Document) -> Result<Migration, Vec<Violation>> {
        let mut base = doc.as_map().clone();
        let mut dropped = Vec::new();
        let mut reset = Vec::new();
        // Locations already repaired once: if one still fails, it cannot be repaired.
        let mut repaired: HashSet<String> = HashSet::new();
        loop {
            let filled = {
                let mut map = base.clone();
                defaults::fill(self.shape(), &mut map);
                Value::Object(map)
            };
            let mut repairs = self.repairs(&filled);
            repairs.retain(|(path, _)| !repaired.contains(path));
            repairs.sort();
            repairs.dedup_by(|later, earlier| later.0 == earlier.0);
            let mut done_this_round: Vec<String> = Vec::new();
            for (path, repair) in repairs {
                if done_this_round.iter().any(|done| is_within(&path, done)) {
                    continue;
                }
                let tokens = tokens_of(&path);
                let default = self.default_at(&tokens);
                if repair == Repair::Reset && default.is_none() && self.is_required(&tokens) {
                    continue;
                }
                let Some(removed) = remove_at(&mut base, &tokens) else {
                    // The offending value came from the schema's defaults, which `compile`
                    // has proven valid; nothing in the document to repair.
                    continue;
                };
                if repair == Repair::Reset
                    && let Some(default) = default
                {
                    set_at(&mut base, &tokens, default);
                }
                let mut after = base.clone();
                defaults::fill(self.shape(), &mut after);
                if repair == Repair::Reset && lookup(&after, &tokens).is_some() {
                    reset.push(pointer_of(&tokens));
                } else {
                    dropped.extend(leaf_keys(&tokens, &removed));
                }
                repaired.insert(path.clone());
                done_this_round.push(path);
            }
            if done_this_round.is_empty() {
                let violations = self.validate(&filled);
                return if violations.is_empty() {
                    dropped.sort();
                    reset.sort();
                    Ok(Migration {
                        document: into_document(filled),
                        dropped,
                        reset,
                    })
                } else {
                    Err(violations)
                };
            }
        }
    }

    /// The locations to repair for every error `doc` has, with how.
    fn repairs(&self, doc: &Value) -> Vec<(String, Repair)> {
        let mut out = Vec::new();
        for error in self.validator().iter_errors(doc) {
            visit_errors(&error, &mut |error| {
                let at = error.instance_path().as_str();
                match error.kind() {
                    ValidationErrorKind::AdditionalProperties { unexpected }
                    | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                        out.extend(
                            unexpected
                                .iter()
                                .map(|name| (child_path(at, name), Repair::Drop)),
                        );
                    }
                    ValidationErrorKind::FalseSchema => out.push((at.to_owned(), Repair::Drop)),
                    // A missing key is not repaired by removing anything.
                    ValidationErrorKind::Required { .. } => {}
                    _ => {
                        let leaf = enclosing_leaf(doc, at);
                        // The document as a whole cannot be reset.
                        if !leaf.is_empty() {
                            out.push((leaf, Repair::Reset));
                        }
                    }
                }
            });
        }
        out
    }

    /// The default for the key at `tokens`: its own `default`, else its entry in the nearest
    /// enclosing object's `default`.
    fn default_at(&self, tokens: &[String]) -> Option<Value> {
        let mut shape: Option<&ObjectShape> = Some(self.shape());
        let mut from_parent: Option<&Value> = None;
        let mut found: Option<&Value> = None;
        for token in tokens {
            let property = shape.and_then(|s| s.property(token));
            let inherited = from_parent.and_then(|d| d.get(token));
            found = property.and_then(|p| p.default.as_ref()).or(inherited);
            from_parent = found;
            shape = property.and_then(|p| p.object.as_ref());
        }
        found.cloned()
    }

    /// Whether the object enclosing `tokens` lists its last token in `required`.
    fn is_required(&self, tokens: &[String]) -> bool {
        let Some((last, parents)) = tokens.split_last() else {
            return true;
        };
        let mut shape = self.shape();
        for token in parents {
            match shape.property(token).and_then(|p| p.object.as_ref()) {
                Some(inner) => shape = inner,
                None => return false,
            }
        }
        shape.required.contains(last)
    }
}

/// The pointer of the setting an error at `at` belongs to: `at` itself, or the first array on
/// the way to it, because an array is one setting and its items are not keys.
fn enclosing_leaf(doc: &Value, at: &str) -> String {
    let mut current = doc;
    let mut tokens = Vec::new();
    for token in tokens_of(at) {
        if current.is_array() {
            break;
        }
        current = match current.get(&token) {
            Some(next) => next,
            None => {
                tokens.push(token);
                break;
            }
        };
        tokens.push(token);
    }
    pointer_of(&tokens).as_str().to_owned()
}

fn tokens_of(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn pointer_of(tokens: &[String]) -> KeyPath {
    KeyPath::from_tokens(tokens)
}

fn is_within(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

fn lookup<'a>(map: &'a Map<String, Value>, tokens: &[String]) -> Option<&'a Value> {
    let (first, rest) = tokens.split_first()?;
    rest.iter().try_fold(map.get(first)?, |value, token| {
        value.as_object()?.get(token)
    })
}

/// Removes and returns the value at `tokens`, if present.
fn remove_at(map: &mut Map<String, Value>, tokens: &[String]) -> Option<Value> {
    let (last, parents) = tokens.split_last()?;
    let mut current = map;
    for token in parents {
        current = current.get_mut(token)?.as_object_mut()?;
    }
    current.shift_remove(last)
}

/// Sets the value at `tokens`, whose parents exist (the value was just removed from there).
fn set_at(map: &mut Map<String, Value>, tokens: &[String], value: Value) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut current = map;
    for token in parents {
        match current.get_mut(token).and_then(Value::as_object_mut) {
            Some(inner) => current = inner,
            None => return,
        }
    }
    current.insert(last.clone(), value);
}

/// The keys a removed value held: its leaves when it is a non-empty object, else itself.
fn leaf_keys(tokens: &[String], removed: &Value) -> Vec<KeyPath> {
    match removed {
        Value::Object(map) if !map.is_empty() => Document::from_value(removed.clone()).map_or_else(
            |_| vec![pointer_of(tokens)],
            |doc| {
                let prefix = pointer_of(tokens);
                doc.leaves()
                    .into_keys()
                    .map(|k| KeyPath::parse(&format!("{prefix}{k}")).unwrap_or(k))
                    .collect()
            },
        ),
        _ => vec![pointer_of(tokens)],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compiled(schema: Value) -> CompiledSchema {
        CompiledSchema::compile(&schema).expect("test schema compiles")
    }

    fn doc(value: Value) -> Document {
        Document::from_value(value).expect("test documents are objects")
    }

    fn keys(keys: &[KeyPath]) -> Vec<&str> {
        keys.iter().map(KeyPath::as_str).collect()
    }

    #[test]
    fn drops_unknown_keys_and_resets_invalid_values_to_their_default() {
        let schema = compiled(json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "level": {"enum": ["info", "debug"], "default": "info"},
                "n": {"type": "integer", "maximum": 5},
                "mqtt": {"type": "object", "additionalProperties": false,
                         "properties": {"host": {"type": "string", "default": "pi"}}}
            }
        }));
        let migration = schema
            .migrate(&doc(json!({
                "level": "trace", "n": 9, "gone": {"a": 1, "b": [2]},
                "mqtt": {"host": 3, "old": true}
            })))
            .expect("repairable");
        assert_eq!(
            keys(&migration.dropped),
            ["/gone/a", "/gone/b", "/mqtt/old", "/n"]
        );
        assert_eq!(keys(&migration.reset), ["/level", "/mqtt/host"]);
        assert_eq!(
            migration.document.into_value(),
            json!({"level": "info", "mqtt": {"host": "pi"}})
        );
    }

    #[test]
    fn leaves_a_valid_document_unchanged_apart_from_defaults() {
        let schema =
            compiled(json!({"properties": {"a": {"default": 1}, "b": {"type": "string"}}}));
        let migration = schema.migrate(&doc(json!({"b": "x"}))).expect("valid");
        assert!(migration.is_unchanged());
        assert_eq!(migration.document.into_value(), json!({"b": "x", "a": 1}));
    }

    #[test]
    fn resets_a_whole_array_when_one_item_is_invalid() {
        let schema = compiled(json!({"properties": {
            "ports": {"type": "array", "items": {"type": "integer"}, "default": [1883]}
        }}));
        let migration = schema
            .migrate(&doc(json!({"ports": [1, "two"]})))
            .expect("repairable");
        assert_eq!(keys(&migration.reset), ["/ports"]);
        assert_eq!(migration.document.into_value(), json!({"ports": [1883]}));
    }

    #[test]
    fn refuses_when_a_required_key_has_no_default() {
        let schema = compiled(json!({
            "required": ["host"],
            "properties": {"host": {"type": "string"}, "extra": {"type": "integer"}}
        }));
        let violations = schema
            .migrate(&doc(json!({"host": 7, "extra": "x"})))
            .expect_err("stuck");
        assert_eq!(
            violations,
            [Violation::new("/host", "must be a string (got 7)")]
        );
        let violations = schema.migrate(&doc(json!({}))).expect_err("stuck");
        assert_eq!(violations, [Violation::new("/host", "is required")]);
    }

    #[test]
    fn repairs_inside_an_optional_section_rather_than_dropping_it() {
        let schema = compiled(json!({
            "$defs": {"Backup": {"type": "object", "properties": {
                "dir": {"type": "string", "default": "/b"}, "keep": {"type": "integer"}}}},
            "properties": {"backup": {"anyOf": [{"$ref": "#/$defs/Backup"}, {"type": "null"}]}}
        }));
        let migration = schema
            .migrate(&doc(json!({"backup": {"dir": 5, "keep": 3}})))
            .expect("repairable");
        assert_eq!(keys(&migration.reset), ["/backup/dir"]);
        assert_eq!(
            migration.document.into_value(),
            json!({"backup": {"dir": "/b", "keep": 3}})
        );
    }

    #[test]
    fn resets_to_the_default_an_enclosing_object_gives() {
        let schema = compiled(json!({"properties": {"mqtt": {
            "type": "object", "default": {"port": 1883},
            "properties": {"port": {"type": "integer", "maximum": 65535}}
        }}}));
        let migration = schema
            .migrate(&doc(json!({"mqtt": {"port": 70000}})))
            .expect("repairable");
        assert_eq!(keys(&migration.reset), ["/mqtt/port"]);
        assert_eq!(
            migration.document.into_value(),
            json!({"mqtt": {"port": 1883}})
        );
    }
}
