//! Secrets inside documents: the placeholder a stored document holds where a secret's value
//! would be, the mask people are shown, and the rules that turn what a caller wrote into what
//! is stored and back.
//!
//! Three forms of one service's config meet here:
//!
//! - the **effective** document: what the service runs with, secret values in clear. It exists
//!   only in memory, long enough to validate a write or answer the service's own token;
//! - the **stored** document: the effective one with every set secret replaced by a
//!   placeholder `{"$secret": n}`, where `n` is the secret's version (the service version at
//!   which that value was set). Versions, history, diffs and MQTT envelopes are all computed
//!   from stored documents, so none of them ever holds a secret value;
//! - the **masked** document: what everyone else reads, each secret shown as `"********"`.
//!
//! The secret values themselves are encrypted elsewhere; this module only decides which values
//! are new ([`seal`]) and where the decrypted ones go back ([`unseal`]).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::{Document, KeyPath, Version};

/// What a secret value is shown as to anyone but its own service.
pub const SECRET_MASK: &str = "********";

/// The one member of a placeholder object.
pub const PLACEHOLDER_KEY: &str = "$secret";

/// The placeholder `{"$secret": n}` a stored document holds for the secret set at `version`.
pub fn placeholder(version: Version) -> Value {
    let mut map = Map::new();
    map.insert(PLACEHOLDER_KEY.to_owned(), Value::from(version.0));
    Value::Object(map)
}

/// The secret version a placeholder names, if `value` is one: an object whose only member is
/// `"$secret"` with a whole number.
pub fn placeholder_version(value: &Value) -> Option<Version> {
    match value {
        Value::Object(map) if map.len() == 1 => map
            .get(PLACEHOLDER_KEY)
            .and_then(Value::as_u64)
            .map(Version),
        _ => None,
    }
}

/// Where a value written by a caller uses the reserved `"$secret"` member, if anywhere.
/// Callers write values, never placeholders.
pub fn reserved_member(value: &Value) -> Option<KeyPath> {
    reserved_below(&KeyPath::root(), value)
}

/// [`reserved_member`] of a whole document.
pub fn reserved_member_in(doc: &Document) -> Option<KeyPath> {
    reserved_in_map(&KeyPath::root(), doc.as_map())
}

fn reserved_below(at: &KeyPath, value: &Value) -> Option<KeyPath> {
    let mut tokens = Vec::new();
    find_reserved(value, &mut tokens).then(|| path_below(at, &tokens))
}

fn reserved_in_map(at: &KeyPath, map: &Map<String, Value>) -> Option<KeyPath> {
    // Every write asks, and the answer is almost always "nowhere": the walk allocates nothing
    // until it has found the member, and only then builds its path.
    let mut tokens = Vec::new();
    find_reserved_in_map(map, &mut tokens).then(|| path_below(at, &tokens))
}

/// `at` extended by `tokens`, given innermost first.
fn path_below(at: &KeyPath, tokens: &[String]) -> KeyPath {
    tokens
        .iter()
        .rev()
        .fold(at.clone(), |path, token| path.child(token))
}

/// Whether `value` holds the reserved member; when it does, `tokens` holds the way to it,
/// innermost first.
fn find_reserved(value: &Value, tokens: &mut Vec<String>) -> bool {
    match value {
        Value::Object(map) => find_reserved_in_map(map, tokens),
        Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
            let found = find_reserved(v, tokens);
            if found {
                tokens.push(i.to_string());
            }
            found
        }),
        _ => false,
    }
}

fn find_reserved_in_map(map: &Map<String, Value>, tokens: &mut Vec<String>) -> bool {
    if map.contains_key(PLACEHOLDER_KEY) {
        tokens.push(PLACEHOLDER_KEY.to_owned());
        return true;
    }
    map.iter().any(|(name, v)| {
        let found = find_reserved(v, tokens);
        if found {
            tokens.push(name.clone());
        }
        found
    })
}

/// Whether a stored document holds any placeholder: a walk that allocates nothing, so that
/// documents without secrets (most of them) cost nothing more to read or write.
pub fn has_placeholder(doc: &Document) -> bool {
    fn walk(value: &Value) -> bool {
        match value {
            Value::Object(map) => placeholder_version(value).is_some() || map.values().any(walk),
            _ => false,
        }
    }
    doc.as_map().values().any(walk)
}

/// The secrets a stored document refers to: each placeholder's key and secret version.
pub fn secret_refs(doc: &Document) -> Vec<(KeyPath, Version)> {
    if !has_placeholder(doc) {
        return Vec::new();
    }
    doc.leaves()
        .into_iter()
        .filter_map(|(key, value)| placeholder_version(value).map(|v| (key, v)))
        .collect()
}

/// A placeholder whose value is not at hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret at {key} (version {version}) is missing")]
pub struct MissingSecret {
    /// Where the placeholder is.
    pub key: KeyPath,
    /// The secret version it names.
    pub version: Version,
}

/// The effective document: every placeholder of `stored` replaced by its value from `values`.
pub fn unseal(
    stored: &Document,
    values: &HashMap<(KeyPath, Version), Value>,
) -> Result<Document, MissingSecret> {
    let mut out = stored.clone();
    for (key, version) in secret_refs(stored) {
        let value = values
            .get(&(key.clone(), version))
            .ok_or_else(|| MissingSecret {
                key: key.clone(),
                version,
            })?;
        out.set(&key, value.clone());
    }
    Ok(out)
}

/// What a value is shown as: the mask for a placeholder, or for anything but `null` at a
/// secret key; the value itself otherwise.
pub fn mask_value(key: &KeyPath, value: &Value, secret_keys: &[KeyPath]) -> Value {
    let secret = placeholder_version(value).is_some()
        || (!value.is_null() && secret_keys.iter().any(|s| key.is_within(s)));
    if secret {
        Value::String(SECRET_MASK.to_owned())
    } else {
        value.clone()
    }
}

/// History's copy of a change: a value at a secret key that is not a placeholder (one stored
/// before the key became secret) is kept only as [`SECRET_MASK`].
pub fn redact_changes(changes: &mut [crate::KeyChange], secret_keys: &[KeyPath]) {
    for change in changes {
        for value in [&mut change.old, &mut change.new].into_iter().flatten() {
            if let Some(redacted) = redact_value(&change.key, value, secret_keys) {
                *value = redacted;
            }
        }
    }
}

/// The mask for a value stored in clear at (or within) a secret key; `None` for anything else
/// (a placeholder, `null`, a value at a key that is not secret): what may stay as it is.
pub fn redact_value(key: &KeyPath, value: &Value, secret_keys: &[KeyPath]) -> Option<Value> {
    let secret = secret_keys.iter().any(|s| key.is_within(s));
    (secret && !value.is_null() && placeholder_version(value).is_none())
        .then(|| Value::String(SECRET_MASK.to_owned()))
}

/// A stored document from before its keys were secret, with each value in clear at a secret
/// key replaced by [`SECRET_MASK`]; `None` when nothing is in clear. Restoring such a version
/// keeps the secrets in force ([`keep_masked_secrets`]).
pub fn redact_document(doc: &Document, secret_keys: &[KeyPath]) -> Option<Document> {
    let mut out = doc.clone();
    let mut changed = false;
    for key in secret_keys {
        if let Some(redacted) = doc.get(key).and_then(|v| redact_value(key, v, secret_keys)) {
            out.set(key, redacted);
            changed = true;
        }
    }
    changed.then_some(out)
}

/// The document as everyone but its own service sees it: every placeholder, and every value at
/// a secret key, shown as [`SECRET_MASK`].
pub fn mask(doc: &Document, secret_keys: &[KeyPath]) -> Document {
    masked(doc, secret_keys).into_owned()
}

/// As [`mask`], borrowing `doc` when nothing in it is secret (most documents): no copy.
pub fn masked<'a>(doc: &'a Document, secret_keys: &[KeyPath]) -> Cow<'a, Document> {
    if secret_keys.is_empty() && !has_placeholder(doc) {
        return Cow::Borrowed(doc);
    }
    let mut out = doc.clone();
    for (key, value) in doc.leaves() {
        let shown = mask_value(&key, value, secret_keys);
        if &shown != value {
            out.set(&key, shown);
        }
    }
    // A secret key whose value is an object (a map of secrets) is one setting, not leaves.
    for key in secret_keys {
        if let Some(value) = doc.get(key)
            && value.is_object()
            && placeholder_version(value).is_none()
        {
            out.set(key, Value::String(SECRET_MASK.to_owned()));
        }
    }
    Cow::Owned(out)
}

/// What a PUT means for secrets: a secret the caller sent as [`SECRET_MASK`], or left out,
/// keeps the value `current` (the effective document) has. So a masked read can be edited and
/// written back without knowing the secrets.
pub fn keep_secrets(written: Document, current: &Document, secret_keys: &[KeyPath]) -> Document {
    let mut out = keep_masked_secrets(written, current, secret_keys);
    for key in secret_keys {
        if let (None, Some(kept)) = (out.get(key), current.get(key)) {
            out.set(key, kept.clone());
        }
    }
    out
}

/// Each secret given as [`SECRET_MASK`] takes the value `current` has (or is left out when
/// `current` has none); a secret left out stays out.
pub fn keep_masked_secrets(
    written: Document,
    current: &Document,
    secret_keys: &[KeyPath],
) -> Document {
    let mut out = written;
    for key in secret_keys {
        if out.get(key).and_then(Value::as_str) != Some(SECRET_MASK) {
            continue;
        }
        match current.get(key) {
            Some(kept) => out.set(key, kept.clone()),
            None => {
                out.remove(key);
            }
        }
    }
    out
}

/// What a merge patch means for secrets: a secret sent as [`SECRET_MASK`] is left alone, so the
/// member is dropped from the patch.
pub fn keep_secrets_in_patch(patch: &mut Value, secret_keys: &[KeyPath]) {
    for key in secret_keys {
        let tokens: Vec<String> = key.tokens().collect();
        drop_mask_at(patch, &tokens);
    }
}

fn drop_mask_at(value: &mut Value, tokens: &[String]) {
    let Value::Object(map) = value else { return };
    match tokens {
        [] => {}
        [last] => {
            if map.get(last).and_then(Value::as_str) == Some(SECRET_MASK) {
                map.remove(last);
            }
        }
        [first, rest @ ..] => {
            if let Some(inner) = map.get_mut(first) {
                drop_mask_at(inner, rest);
            }
        }
    }
}

/// An effective document made ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    /// The document to store: placeholders where secrets are.
    pub document: Document,
    /// The secret values that are new in it, each to be encrypted and stored under the version
    /// its placeholder names.
    pub new_secrets: Vec<(KeyPath, Value)>,
}

/// Turns the effective document a write produced into the one to store.
///
/// Each non-null value at a secret key becomes a placeholder: the one `stored_before` already
/// has when the value is the one `effective_before` has there (an unchanged secret keeps its
/// version), else a new placeholder naming `version`, the version being written, with the value
/// listed in [`Sealed::new_secrets`]. Everything else is stored as it is, so a key that is no
/// longer secret is stored in clear.
pub fn seal(
    effective: &Document,
    stored_before: &Document,
    effective_before: &Document,
    secret_keys: &[KeyPath],
    version: Version,
) -> Sealed {
    let mut document = effective.clone();
    let mut new_secrets = Vec::new();
    for key in secret_keys {
        let Some(value) = effective.get(key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let kept = stored_before
            .get(key)
            .filter(|p| placeholder_version(p).is_some())
            .filter(|_| effective_before.get(key) == Some(value));
        match kept {
            Some(existing) => document.set(key, existing.clone()),
            None => {
                new_secrets.push((key.clone(), value.clone()));
                document.set(key, placeholder(version));
            }
        }
    }
    Sealed {
        document,
        new_secrets,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Document {
        Document::from_value(v).unwrap()
    }

    fn keys(list: &[&str]) -> Vec<KeyPath> {
        list.iter().map(|k| KeyPath::parse(k).unwrap()).collect()
    }

    #[test]
    fn a_placeholder_is_exactly_one_whole_number_member() {
        assert_eq!(placeholder(Version(7)), json!({"$secret": 7}));
        assert_eq!(
            placeholder_version(&json!({"$secret": 7})),
            Some(Version(7))
        );
        assert_eq!(placeholder_version(&json!({"$secret": "7"})), None);
        assert_eq!(placeholder_version(&json!({"$secret": 7, "x": 1})), None);
        assert_eq!(placeholder_version(&json!("********")), None);
    }

    #[test]
    fn a_placeholder_is_one_leaf_of_its_document() {
        let d = doc(json!({"api_key": {"$secret": 3}, "mqtt": {"password": {"$secret": 2}}}));
        let refs: Vec<_> = secret_refs(&d)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.0))
            .collect();
        assert_eq!(
            refs,
            [("/api_key".to_owned(), 3), ("/mqtt/password".to_owned(), 2)]
        );
    }

    #[test]
    fn a_document_without_placeholders_is_told_apart_cheaply() {
        assert!(has_placeholder(&doc(json!({"a": {"b": {"$secret": 1}}}))));
        assert!(!has_placeholder(&doc(
            json!({"a": {"b": {"$secret": "x"}}, "c": [1]})
        )));
        assert!(secret_refs(&doc(json!({"a": 1}))).is_empty());
    }

    #[test]
    fn callers_may_not_write_placeholders() {
        assert_eq!(
            reserved_member(&json!({"a": {"b": [1, {"$secret": 1}]}})).map(|k| k.to_string()),
            Some("/a/b/1/$secret".to_owned())
        );
        assert_eq!(reserved_member(&json!({"a": {"b": "$secret"}})), None);
        assert_eq!(
            reserved_member_in(&doc(json!({"$secret": 1}))).map(|k| k.to_string()),
            Some("/$secret".to_owned())
        );
    }

    #[test]
    fn the_reserved_member_is_named_by_its_escaped_path() {
        assert_eq!(
            reserved_member(&json!({"ok": [1, 2], "a/b": [{"c~d": {"$secret": 1}}]}))
                .map(|k| k.to_string()),
            Some("/a~1b/0/c~0d/$secret".into())
        );
        assert_eq!(
            reserved_member_in(&doc(json!({"x": {"y": [{}]}, "z": {"$secret": 2}})))
                .map(|k| k.to_string()),
            Some("/z/$secret".into())
        );
        assert_eq!(reserved_member_in(&doc(json!({"x": {"y": [{}]}}))), None);
    }

    #[test]
    fn unsealing_puts_each_value_back_and_names_a_missing_one() {
        let stored = doc(json!({"voice": "amy", "mqtt": {"password": {"$secret": 2}}}));
        let mut values = HashMap::new();
        values.insert(
            (KeyPath::parse("/mqtt/password").unwrap(), Version(2)),
            json!("pw"),
        );
        assert_eq!(
            unseal(&stored, &values).unwrap().into_value(),
            json!({"voice": "amy", "mqtt": {"password": "pw"}})
        );
        let err = unseal(&doc(json!({"k": {"$secret": 9}})), &values).unwrap_err();
        assert_eq!((err.key.as_str(), err.version), ("/k", Version(9)));
    }

    #[test]
    fn masking_hides_placeholders_and_values_at_secret_keys_but_not_null() {
        let d = doc(json!({
            "a": {"$secret": 1}, "legacy": "clear", "unset": null, "map": {"x": "1", "y": "2"},
            "plain": "shown"
        }));
        let masked = mask(&d, &keys(&["/legacy", "/unset", "/map"]));
        assert_eq!(
            masked.into_value(),
            json!({"a": "********", "legacy": "********", "unset": null, "map": "********",
                   "plain": "shown"})
        );
    }

    #[test]
    fn a_put_keeps_masked_and_left_out_secrets() {
        let current = doc(json!({"api_key": "sk-1", "mqtt": {"password": "pw", "host": "a"}}));
        let written = doc(json!({"api_key": "********", "mqtt": {"host": "b"}, "x": 1}));
        let kept = keep_secrets(written, &current, &keys(&["/api_key", "/mqtt/password"]));
        assert_eq!(
            kept.into_value(),
            json!({"api_key": "sk-1", "mqtt": {"host": "b", "password": "pw"}, "x": 1})
        );
        // A mask where nothing is stored sets nothing.
        let kept = keep_secrets(
            doc(json!({"api_key": "********"})),
            &Document::new(),
            &keys(&["/api_key"]),
        );
        assert_eq!(kept.into_value(), json!({}));
    }

    #[test]
    fn a_patch_leaves_masked_secrets_alone() {
        let mut patch =
            json!({"api_key": "********", "mqtt": {"password": "********", "host": "x"}});
        keep_secrets_in_patch(&mut patch, &keys(&["/api_key", "/mqtt/password"]));
        assert_eq!(patch, json!({"mqtt": {"host": "x"}}));
    }

    #[test]
    fn sealing_keeps_unchanged_secrets_and_lists_new_ones() {
        let secret_keys = keys(&["/a", "/b", "/c", "/gone"]);
        let stored_before =
            doc(json!({"a": {"$secret": 1}, "b": {"$secret": 1}, "gone": {"$secret": 1}}));
        let effective_before = doc(json!({"a": "same", "b": "old", "gone": "x"}));
        let effective = doc(json!({"a": "same", "b": "new", "c": "added", "n": 1, "d": null}));
        let sealed = seal(
            &effective,
            &stored_before,
            &effective_before,
            &secret_keys,
            Version(4),
        );
        assert_eq!(
            sealed.document.into_value(),
            json!({"a": {"$secret": 1}, "b": {"$secret": 4}, "c": {"$secret": 4}, "n": 1, "d": null})
        );
        let new: Vec<_> = sealed
            .new_secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(
            new,
            [
                ("/b".to_owned(), json!("new")),
                ("/c".to_owned(), json!("added"))
            ]
        );
    }

    #[test]
    fn history_keeps_placeholders_and_masks_clear_values_at_secret_keys() {
        let mut changes = crate::diff(
            &doc(json!({"k": "clear", "p": {"$secret": 1}, "n": 1})),
            &doc(json!({"k": {"$secret": 2}, "p": {"$secret": 2}, "n": 2})),
        );
        redact_changes(&mut changes, &keys(&["/k", "/p"]));
        let shown: Vec<_> = changes
            .iter()
            .map(|c| (c.key.to_string(), c.old.clone(), c.new.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "/k".to_owned(),
                    Some(json!("********")),
                    Some(json!({"$secret": 2}))
                ),
                ("/n".to_owned(), Some(json!(1)), Some(json!(2))),
                (
                    "/p".to_owned(),
                    Some(json!({"$secret": 1})),
                    Some(json!({"$secret": 2}))
                ),
            ]
        );
    }

    #[test]
    fn an_old_document_is_redacted_only_where_a_secret_is_in_clear() {
        let secret_keys = keys(&["/k", "/p", "/n"]);
        let old = doc(json!({"k": "clear", "p": {"$secret": 1}, "n": null, "x": "shown"}));
        assert_eq!(
            redact_document(&old, &secret_keys).map(Document::into_value),
            Some(json!({"k": "********", "p": {"$secret": 1}, "n": null, "x": "shown"}))
        );
        assert_eq!(redact_document(&doc(json!({"x": 1})), &secret_keys), None);
        // Restoring it keeps the secret in force where the mask stands.
        let current = doc(json!({"k": "now"}));
        let restored = keep_masked_secrets(
            redact_document(&old, &secret_keys).unwrap(),
            &current,
            &secret_keys,
        );
        assert_eq!(
            restored.get(&KeyPath::parse("/k").unwrap()),
            Some(&json!("now"))
        );
        let left_out = keep_masked_secrets(doc(json!({"x": 1})), &current, &secret_keys);
        assert_eq!(
            left_out.into_value(),
            json!({"x": 1}),
            "a left-out secret stays out"
        );
    }

    #[test]
    fn a_value_stored_in_clear_at_a_key_now_secret_is_sealed() {
        let secret_keys = keys(&["/k"]);
        let before = doc(json!({"k": "clear"}));
        let sealed = seal(&before, &before, &before, &secret_keys, Version(2));
        assert_eq!(sealed.document.into_value(), json!({"k": {"$secret": 2}}));
        assert_eq!(sealed.new_secrets.len(), 1);
    }
}
