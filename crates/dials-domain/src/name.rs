//! Service names: the one place the naming rule lives.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A service name: a lowercase ASCII letter, then up to 62 lowercase letters, digits or dashes.
///
/// The rule keeps names safe as MQTT topic levels, URL path segments and file names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    /// The reserved service holding cross-service settings (broker address, log level…).
    pub const GLOBAL: &'static str = "global";

    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 63;

    /// Checks `input` against `^[a-z][a-z0-9-]{0,62}$`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = |reason| DomainError::InvalidServiceName {
            name: input.to_owned(),
            reason,
        };
        let mut bytes = input.bytes();
        match bytes.next() {
            None => return Err(invalid("it is empty")),
            Some(b'a'..=b'z') => {}
            Some(_) => return Err(invalid("it must start with a lowercase letter a-z")),
        }
        if input.len() > Self::MAX_LEN {
            return Err(invalid("it is longer than 63 characters"));
        }
        if !bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) {
            return Err(invalid(
                "only lowercase letters, digits and '-' are allowed",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the reserved `global` service.
    pub fn is_global(&self) -> bool {
        self.0 == Self::GLOBAL
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ServiceName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for ServiceName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_that_fit_the_rule() {
        for ok in ["a", "tts-worker", "stt2", "global", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_names_that_do_not_fit_the_rule() {
        for bad in [
            "",
            "1abc",
            "-x",
            "Tts",
            "tts_worker",
            "tts worker",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(
                ServiceName::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn knows_the_reserved_global_service() {
        assert!(ServiceName::parse("global").unwrap().is_global());
        assert!(!ServiceName::parse("router").unwrap().is_global());
    }
}
