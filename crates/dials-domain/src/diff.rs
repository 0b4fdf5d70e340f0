//! Per-key differences between two documents: what history records and `diff` shows.

use serde::Serialize;
use serde_json::Value;

use crate::{Document, KeyPath};

/// One key whose value differs between two documents. `old` is `None` for an added key, `new`
/// is `None` for a removed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyChange {
    /// The key's JSON Pointer.
    pub key: KeyPath,
    /// The value before, if the key existed.
    pub old: Option<Value>,
    /// The value after, if the key exists.
    pub new: Option<Value>,
}

impl KeyChange {
    /// `"added"`, `"removed"` or `"changed"`.
    pub fn op(&self) -> &'static str {
        match (&self.old, &self.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        }
    }
}

/// The leaves that differ between `old` and `new`, in key order.
///
/// Walks both documents together and descends only into subtrees that differ, so the cost of
/// a write that changes one key of a large document is that of comparing it, not of naming
/// every leaf of both versions.
pub fn diff(old: &Document, new: &Document) -> Vec<KeyChange> {
    let mut out: Vec<KeyChange> = old
        .differing_leaves(new)
        .into_iter()
        .map(|(key, old, new)| KeyChange {
            key,
            old: old.cloned(),
            new: new.cloned(),
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Document {
        Document::from_value(v).unwrap()
    }

    #[test]
    fn reports_added_removed_and_changed_keys_in_key_order() {
        let old = doc(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": "same"}));
        let new = doc(json!({"b": {"c": 20, "x": true}, "e": "same", "z": null}));
        let changes = diff(&old, &new);
        let summary: Vec<_> = changes
            .iter()
            .map(|c| (c.key.as_str().to_owned(), c.op()))
            .collect();
        assert_eq!(
            summary,
            [
                ("/a".to_owned(), "removed"),
                ("/b/c".to_owned(), "changed"),
                ("/b/d".to_owned(), "removed"),
                ("/b/x".to_owned(), "added"),
                ("/z".to_owned(), "added"),
            ]
        );
        assert_eq!(changes[1].old, Some(json!(2)));
        assert_eq!(changes[1].new, Some(json!(20)));
    }

    #[test]
    fn identical_documents_have_no_changes() {
        let d = doc(json!({"a": [1, 2], "b": {"c": 1}}));
        assert!(diff(&d, &d.clone()).is_empty());
    }

    #[test]
    fn a_leaf_turning_into_an_object_is_a_removal_and_additions() {
        let changes = diff(&doc(json!({"a": 1})), &doc(json!({"a": {"b": 2}})));
        let ops: Vec<_> = changes.iter().map(|c| (c.key.as_str(), c.op())).collect();
        assert_eq!(ops, [("/a", "removed"), ("/a/b", "added")]);
    }

    /// The definition: every leaf of both documents by pointer, compared key by key.
    fn by_leaves(old: &Document, new: &Document) -> Vec<KeyChange> {
        let (a, b) = (old.leaves(), new.leaves());
        let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).cloned().collect();
        keys.into_iter()
            .filter_map(|key| {
                let (x, y) = (a.get(&key).copied(), b.get(&key).copied());
                (x != y).then(|| KeyChange {
                    key,
                    old: x.cloned(),
                    new: y.cloned(),
                })
            })
            .collect()
    }

    #[test]
    fn the_walk_finds_what_comparing_every_leaf_finds() {
        let docs = [
            json!({}),
            json!({"a": 1, "a-b": {"c": 1}, "a/b": 2, "a~b": {"d": [1]}}),
            json!({"a": {"x": 1}, "a-b": {"c": 2, "e": {}}, "a/b": 2, "z": {"$secret": 3}}),
            json!({"a": {"x": {"y": {"z": 1}}}, "a-b": {}, "z": {"k": 1}}),
            json!({"a": {"x": {"y": {"z": 2}, "w": null}}, "a~b": {"d": [1, 2]}, "z": 1}),
        ];
        for old in &docs {
            for new in &docs {
                let (old, new) = (doc(old.clone()), doc(new.clone()));
                assert_eq!(
                    diff(&old, &new),
                    by_leaves(&old, &new),
                    "{old:?} -> {new:?}"
                );
            }
        }
    }
}
