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

    /// The internal id under which the store keeps the override document of one instance of
    /// `service`: `{service}/{instance}`. No service name can take it (`/` is not allowed in
    /// one, nor in an instance name, so the split is unambiguous), and [`ServiceName::parse`]
    /// refuses it, so no request path or body can name it as a service.
    pub fn instance_layer(service: &ServiceName, instance: &InstanceName) -> Self {
        Self(format!("{}/{}", service.0, instance.as_str()))
    }

    /// Reads a name as the store keeps it: a service name, or the id of an instance override
    /// ([`ServiceName::instance_layer`]).
    pub fn parse_stored(input: &str) -> Result<Self, DomainError> {
        match input.split_once('/') {
            None => Self::parse(input),
            Some((service, instance)) => {
                let service = Self::parse(service)?;
                let instance =
                    InstanceName::parse(instance).map_err(|e| DomainError::InvalidServiceName {
                        name: input.to_owned(),
                        reason: e.reason,
                    })?;
                Ok(Self::instance_layer(&service, &instance))
            }
        }
    }

    /// Service and instance of an instance override's id; `None` for a service.
    pub fn instance_layer_parts(&self) -> Option<(&str, &str)> {
        self.0.split_once('/')
    }

    /// Whether this is the id of an instance override rather than a service.
    pub fn is_instance_layer(&self) -> bool {
        self.0.contains('/')
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
    fn an_instance_layer_id_is_no_service_name_and_reads_back_from_the_store() {
        let service = ServiceName::parse("echo").unwrap();
        let instance = InstanceName::parse("Kitchen.Pi_2").unwrap();
        let id = ServiceName::instance_layer(&service, &instance);
        assert_eq!(id.as_str(), "echo/Kitchen.Pi_2");
        assert!(id.is_instance_layer() && !service.is_instance_layer());
        assert_eq!(id.instance_layer_parts(), Some(("echo", "Kitchen.Pi_2")));
        assert!(ServiceName::parse(id.as_str()).is_err());
        assert_eq!(ServiceName::parse_stored(id.as_str()).unwrap(), id);
        assert_eq!(ServiceName::parse_stored("echo").unwrap(), service);
        for bad in ["Echo/a", "echo/", "echo/a/b", "echo/a+b"] {
            assert!(ServiceName::parse_stored(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn knows_the_reserved_global_service() {
        assert!(ServiceName::parse("global").unwrap().is_global());
        assert!(!ServiceName::parse("router").unwrap().is_global());
    }
}

/// The name one running copy of a service reports under, the last level of
/// `config/applied/{service}/{instance}`: 1 to 128 bytes of UTF-8, no `/`, `+` or `#`, and no
/// control characters.
///
/// The rule is what keeps the name a single, publishable MQTT topic level (`/` would add a
/// level, `+` and `#` are wildcards) that prints on one line in logs and the UI. It is looser
/// than [`ServiceName`] on purpose: by default an instance is named after its host, and host
/// names carry capitals, dots and underscores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceName(String);

/// An instance name that breaks the rule of [`InstanceName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance name {name:?}: {reason}")]
pub struct InstanceNameError {
    /// The rejected input.
    pub name: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl InstanceName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Checks `input` against the rule.
    pub fn parse(input: &str) -> Result<Self, InstanceNameError> {
        let invalid = |reason| InstanceNameError {
            name: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("it is empty"));
        }
        if input.len() > Self::MAX_LEN {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if input.contains(['/', '+', '#']) {
            return Err(invalid("'/', '+' and '#' are not allowed"));
        }
        if input.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InstanceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstanceName {
    type Err = InstanceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for InstanceName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod instance_tests {
    use super::*;

    #[test]
    fn accepts_host_names_and_other_single_topic_levels() {
        for ok in [
            "pi-1",
            "Kitchen.Pi_2",
            "pid-1234",
            "küche",
            &"x".repeat(128),
        ] {
            assert!(InstanceName::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn rejects_names_that_are_not_one_publishable_topic_level() {
        for bad in [
            "",
            "a/b",
            "pi+1",
            "pi#",
            "line\nbreak",
            "nul\0",
            "tab\t",
            &"x".repeat(129),
        ] {
            assert!(
                InstanceName::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}

/// A profile's name: 1–64 lowercase letters, digits, `-` or `_`, starting with a letter or a
/// digit, so it is safe as a URL path segment and a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProfileName(String);

impl ProfileName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks `input` against `^[a-z0-9][a-z0-9_-]{0,63}$`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = |reason| DomainError::InvalidProfileName {
            name: input.to_owned(),
            reason,
        };
        let mut bytes = input.bytes();
        match bytes.next() {
            None => return Err(invalid("it is empty")),
            Some(b'a'..=b'z' | b'0'..=b'9') => {}
            Some(_) => return Err(invalid("it must start with a lowercase letter or a digit")),
        }
        if input.len() > Self::MAX_LEN {
            return Err(invalid("it is longer than 64 characters"));
        }
        if !bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')) {
            return Err(invalid(
                "only lowercase letters, digits, '-' and '_' are allowed",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProfileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod profile_name_tests {
    use super::*;

    #[test]
    fn profile_names_follow_their_rule() {
        for ok in ["night", "0-day", "a_b", &"x".repeat(64)] {
            assert!(ProfileName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "_x", "Night", "a b", "a/b", &"x".repeat(65)] {
            assert!(ProfileName::parse(bad).is_err(), "{bad}");
        }
    }
}
