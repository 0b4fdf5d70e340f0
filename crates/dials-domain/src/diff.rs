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
pub fn diff(old: &Document, new: &Document) -> Vec<KeyChange> {
    let before = old.leaves();
    let after = new.leaves();
    let mut out = Vec::new();
    let mut a = before.into_iter().peekable();
    let mut b = after.into_iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => {
                let (key, v) = a.next().expect("peeked");
                out.push(KeyChange {
                    key,
                    old: Some(v.clone()),
                    new: None,
                });
            }
            (None, Some(_)) => {
                let (key, v) = b.next().expect("peeked");
                out.push(KeyChange {
                    key,
                    old: None,
                    new: Some(v.clone()),
                });
            }
            (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    let (key, v) = a.next().expect("peeked");
                    out.push(KeyChange {
                        key,
                        old: Some(v.clone()),
                        new: None,
                    });
                }
                std::cmp::Ordering::Greater => {
                    let (key, v) = b.next().expect("peeked");
                    out.push(KeyChange {
                        key,
                        old: None,
                        new: Some(v.clone()),
                    });
                }
                std::cmp::Ordering::Equal => {
                    let (key, va) = a.next().expect("peeked");
                    let (_, vb) = b.next().expect("peeked");
                    if va != vb {
                        out.push(KeyChange {
                            key,
                            old: Some(va.clone()),
                            new: Some(vb.clone()),
                        });
                    }
                }
            },
        }
    }
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
}
