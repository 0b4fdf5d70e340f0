//! Key paths: JSON Pointers (RFC 6901) naming one leaf of a config document.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DomainError;

/// Why a key path with more tokens than [`MAX_DEPTH`](crate::MAX_DEPTH) is refused.
const KEY_TOO_DEEP: &str = "it has more than 64 tokens, deeper than any document may nest";
const _: () = assert!(crate::MAX_DEPTH == 64, "KEY_TOO_DEEP names the limit");

/// A JSON Pointer such as `/vad_threshold` or `/mqtt/host`. The empty pointer names the whole
/// document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyPath(String);

impl KeyPath {
    /// The pointer to the whole document.
    pub fn root() -> Self {
        Self(String::new())
    }

    /// Parses a JSON Pointer: empty, or `/`-separated tokens where `~` is only ever followed by
    /// `0` or `1`. A bare name without the leading slash (`vad_threshold`) is accepted as a
    /// convenience for people typing keys and means `/vad_threshold`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let pointer = if input.is_empty() || input.starts_with('/') {
            input.to_owned()
        } else {
            format!("/{input}")
        };
        if pointer.matches('/').count() > crate::MAX_DEPTH {
            return Err(DomainError::InvalidKeyPath {
                key: input.to_owned(),
                reason: KEY_TOO_DEEP,
            });
        }
        let mut chars = pointer.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.peek(), Some('0' | '1')) {
                return Err(DomainError::InvalidKeyPath {
                    key: input.to_owned(),
                    reason: "'~' must be followed by '0' or '1'",
                });
            }
        }
        Ok(Self(pointer))
    }

    /// Builds a pointer from unescaped tokens.
    pub fn from_tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = String::new();
        for token in tokens {
            out.push('/');
            out.push_str(&token.as_ref().replace('~', "~0").replace('/', "~1"));
        }
        Self(out)
    }

    /// This pointer extended by one unescaped token.
    pub fn child(&self, token: &str) -> Self {
        let mut out = String::with_capacity(self.0.len() + 1 + token.len());
        out.push_str(&self.0);
        out.push('/');
        // Most names need no escaping: copied as they are, without two passes of `replace`.
        if token.contains(['~', '/']) {
            out.push_str(&token.replace('~', "~0").replace('/', "~1"));
        } else {
            out.push_str(token);
        }
        Self(out)
    }

    /// The unescaped tokens of this pointer.
    pub fn tokens(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
    }

    /// The pointer as written, e.g. `/mqtt/host`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` equals `other` or lies below it (`/mqtt/host` is within `/mqtt`).
    pub fn is_within(&self, other: &KeyPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// The value this pointer names inside `value`, if any.
    pub fn lookup<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        value.pointer(&self.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyPath {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for KeyPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refuses_a_key_deeper_than_any_document_may_nest() {
        let deepest = "/a".repeat(crate::MAX_DEPTH);
        assert!(KeyPath::parse(&deepest).is_ok());
        let err = KeyPath::parse(&format!("{deepest}/a")).unwrap_err();
        assert!(err.to_string().contains("more than 64 tokens"), "{err}");
    }

    #[test]
    fn escapes_and_unescapes_tokens() {
        let p = KeyPath::from_tokens(["a/b", "c~d"]);
        assert_eq!(p.as_str(), "/a~1b/c~0d");
        assert_eq!(p.tokens().collect::<Vec<_>>(), ["a/b", "c~d"]);
        assert_eq!(KeyPath::root().child("x").child("y/z").as_str(), "/x/y~1z");
    }

    #[test]
    fn accepts_a_bare_key_as_a_top_level_pointer() {
        assert_eq!(
            KeyPath::parse("vad_threshold").unwrap().as_str(),
            "/vad_threshold"
        );
        assert_eq!(KeyPath::parse("/mqtt/host").unwrap().as_str(), "/mqtt/host");
    }

    #[test]
    fn rejects_a_dangling_tilde() {
        assert!(KeyPath::parse("/a~2").is_err());
        assert!(KeyPath::parse("/a~").is_err());
    }

    #[test]
    fn knows_what_lies_within_what() {
        let host = KeyPath::parse("/mqtt/host").unwrap();
        assert!(host.is_within(&KeyPath::parse("/mqtt").unwrap()));
        assert!(host.is_within(&KeyPath::root()));
        assert!(!host.is_within(&KeyPath::parse("/mq").unwrap()));
    }

    #[test]
    fn looks_up_values() {
        let doc = json!({"mqtt": {"host": "pi"}});
        assert_eq!(
            KeyPath::parse("/mqtt/host").unwrap().lookup(&doc),
            Some(&json!("pi"))
        );
        assert_eq!(KeyPath::parse("/nope").unwrap().lookup(&doc), None);
    }
}
