//! [`Secret`]: a value that never shows itself in logs, `Debug` output or serialized JSON, and
//! that marks its key `x-secret` in the derived schema.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a secret prints: the same mask the manager shows.
pub const MASK: &str = dials_wire::SECRET_MASK;

/// A secret config value (an API key, a password).
///
/// - `Debug` and `Display` print `********`, so a config struct can be logged whole;
/// - serializing writes `"********"` too, so printing a config as JSON does not leak it;
/// - deserializing reads the plain value;
/// - its JSON Schema is `T`'s with `"x-secret": true`, so the manager stores the value
///   encrypted, masks it in every listing, and publishes only a placeholder naming its
///   version over MQTT; the client reads the value over REST with the service's token (once
///   per version of the secret), and never writes it to the last-known-good file.
///
/// Read the value with [`expose`](Secret::expose).
///
/// ```
/// use dials_client::SecretString;
///
/// let key = SecretString::new("sk-123".to_owned());
/// assert_eq!(format!("{key:?} {key}"), "******** ********");
/// assert_eq!(key.expose(), "sk-123");
/// assert_eq!(serde_json::to_string(&key).unwrap(), "\"********\"");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret<T>(T);

/// A secret string: the usual kind of secret.
pub type SecretString = Secret<String>;

impl<T> Secret<T> {
    /// Wraps a value.
    ///
    /// ```
    /// let s = dials_client::Secret::new(42);
    /// assert_eq!(*s.expose(), 42);
    /// ```
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself. Take care where it goes.
    ///
    /// ```
    /// let s = dials_client::SecretString::from("hunter2");
    /// assert_eq!(s.expose(), "hunter2");
    /// ```
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value itself, by value.
    ///
    /// ```
    /// let s = dials_client::SecretString::from("hunter2");
    /// assert_eq!(s.into_inner(), "hunter2");
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl Secret<String> {
    /// Whether the secret is the empty string (an unset key, usually).
    ///
    /// ```
    /// assert!(dials_client::SecretString::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the value is the mask the manager shows to tokens other than the service's
    /// own: the service read its config with a viewer or admin token and did not get the
    /// real secret.
    ///
    /// ```
    /// assert!(dials_client::SecretString::from("********").is_masked());
    /// ```
    pub fn is_masked(&self) -> bool {
        self.0 == MASK
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

impl<T: JsonSchema> JsonSchema for Secret<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Secret_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = generator.subschema_for::<T>();
        schema.insert("x-secret".to_owned(), true.into());
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_field_is_marked_in_the_schema_even_when_optional() {
        #[derive(JsonSchema, Deserialize)]
        #[allow(dead_code, reason = "only the schema is looked at")]
        struct Config {
            key: SecretString,
            maybe: Option<SecretString>,
        }
        let schema = schemars::schema_for!(Config).to_value();
        assert_eq!(schema["properties"]["key"]["x-secret"], true, "{schema}");
        assert_eq!(schema["properties"]["key"]["type"], "string");
        assert_eq!(schema["properties"]["maybe"]["x-secret"], true, "{schema}");
    }

    #[test]
    fn deserializing_reads_the_plain_value() {
        let s: SecretString = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(s.expose(), "abc");
        assert!(!s.is_masked());
    }
}
