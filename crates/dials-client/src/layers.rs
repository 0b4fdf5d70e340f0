//! From documents to the typed config: schema defaults, then `global` (only the keys the schema
//! takes from it, `x-global`), then the service's document, then the instance's override
//! document (merged by `dials_schema::layers`, as the manager's effective view merges them),
//! then the environment (`x-env`), then validation against the derived schema and
//! deserialization into the service's struct. Plain functions over values; no I/O except the
//! injected env lookup.

use std::sync::Arc;

use std::collections::{BTreeMap, HashMap};

use dials_domain::{Document, KeyPath, Version, secret};
use dials_schema::CompiledSchema;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;

/// Looks up an environment variable by name (the real environment unless a test injects one).
pub(crate) type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The service's schema, derived from its struct and compiled once.
#[derive(Debug)]
pub(crate) struct ServiceSchema {
    compiled: CompiledSchema,
    env: Vec<EnvKey>,
    secrets: Vec<KeyPath>,
}

/// A key an environment variable overrides.
#[derive(Debug)]
struct EnvKey {
    key: KeyPath,
    var: String,
    type_: String,
    nullable: bool,
}

/// A document turned into the typed config.
#[derive(Debug)]
pub(crate) struct Resolved<T> {
    pub value: T,
    /// The keys the environment overrode, as JSON Pointers.
    pub overrides: Vec<String>,
    /// Secret keys whose value is the manager's mask: read with a token that is not the
    /// service's own.
    pub masked: Vec<String>,
}

impl ServiceSchema {
    /// Derives the JSON Schema (draft 2020-12) of `T` and compiles it.
    pub fn derive<T: JsonSchema>() -> Result<Self, Error> {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        Self::compile(&schema)
    }

    /// Compiles a schema given as JSON.
    pub fn compile(schema: &Value) -> Result<Self, Error> {
        let compiled = CompiledSchema::compile(schema).map_err(|e| Error::Schema(e.to_string()))?;
        let env = compiled
            .settings()
            .iter()
            .filter_map(|s| {
                Some(EnvKey {
                    key: s.key.clone(),
                    var: s.env.clone()?,
                    type_: s.type_.clone(),
                    nullable: s.nullable,
                })
            })
            .collect();
        let secrets = compiled.secret_keys();
        Ok(Self {
            compiled,
            env,
            secrets,
        })
    }

    /// The schema as JSON, as registered with the manager.
    pub fn json(&self) -> &Value {
        self.compiled.raw()
    }

    /// Hex SHA-256 of the schema (keys sorted), the same hash the manager computes.
    pub fn hash(&self) -> String {
        self.compiled.hash()
    }

    /// Whether the schema takes any key from `global` (`x-global`).
    pub fn takes_global(&self) -> bool {
        !self.compiled.global_keys().is_empty()
    }

    /// Merges the layers: `global` (its keys named by `x-global`; secrets of `global` are never
    /// delivered, so its placeholders and masks count as absent) < `service` < `instance`.
    /// Answers the merged document (defaults not filled) and the layer of every key that
    /// comes from `global` or `instance`, by JSON Pointer.
    pub fn merge(
        &self,
        global: Option<&Value>,
        service: &Value,
        instance: Option<&Value>,
    ) -> Result<(Value, BTreeMap<String, String>), String> {
        let as_doc = |v: &Value| Document::from_value(v.clone()).map_err(|e| e.to_string());
        let global = match global {
            Some(g) => {
                let mut g = g.clone();
                strip_placeholders(&mut g);
                strip_masks(&mut g);
                Some(as_doc(&g)?)
            }
            None => None,
        };
        let service = as_doc(service)?;
        let instance = instance.map(as_doc).transpose()?;
        let merged = self.compiled.merge_layers(dials_schema::Layers {
            global: global.as_ref(),
            service: Some(&service),
            instance: instance.as_ref(),
        });
        let layers = merged
            .sources
            .iter()
            .filter(|(_, l)| {
                matches!(
                    l,
                    dials_schema::Layer::Global | dials_schema::Layer::Instance
                )
            })
            .map(|(k, l)| (k.to_string(), l.as_str().to_owned()))
            .collect();
        Ok((merged.document.into_value(), layers))
    }

    /// The keys the environment overrides right now.
    pub fn active_overrides(&self, env: &EnvLookup) -> Vec<String> {
        self.env
            .iter()
            .filter(|e| env(&e.var).is_some())
            .map(|e| e.key.to_string())
            .collect()
    }

    /// Layers defaults, `doc` and the environment, validates, and deserializes into `T`.
    /// The error is the reason to report with status `rejected`.
    pub fn resolve<T: DeserializeOwned>(
        &self,
        doc: &Value,
        env: &EnvLookup,
    ) -> Result<Resolved<T>, String> {
        let doc = Document::from_value(doc.clone()).map_err(|e| e.to_string())?;
        let Value::Object(mut map) = self.compiled.apply_defaults(&doc).into_value() else {
            return Err("the config is not a JSON object".to_owned());
        };
        let mut overrides = Vec::new();
        let mut from_env = Vec::new();
        for e in &self.env {
            if let Some(raw) = env(&e.var) {
                set_at(&mut map, &e.key, parse_env(&raw, &e.type_, e.nullable));
                overrides.push(e.key.to_string());
                from_env.push(e);
            }
        }
        // Names the variable behind a value that does not fit, since the manager did not set it.
        let blame = |path: &str| {
            let at = KeyPath::parse(path).ok()?;
            from_env
                .iter()
                .find(|e| at.is_within(&e.key))
                .map(|e| format!(" (set by the environment variable {})", e.var))
        };
        let filled = Value::Object(map);
        let masked = self
            .secrets
            .iter()
            .filter(|k| !overrides.iter().any(|o| o == k.as_str()))
            .filter(|k| k.lookup(&filled).and_then(Value::as_str) == Some(dials_wire::SECRET_MASK))
            .map(ToString::to_string)
            .collect();
        let violations = self.compiled.validate(&filled);
        if !violations.is_empty() {
            return Err(violations
                .iter()
                .map(|v| {
                    let by = blame(&v.path).unwrap_or_default();
                    format!("{}: {}{by}", display_path(&v.path), v.message)
                })
                .collect::<Vec<_>>()
                .join("; "));
        }
        let value = serde_path_to_error::deserialize::<_, T>(filled).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                inner.to_string()
            } else {
                let path = format!("/{}", path.replace('.', "/"));
                let by = blame(&path).unwrap_or_default();
                format!("{path}: {inner}{by}")
            }
        })?;
        Ok(Resolved {
            value,
            overrides,
            masked,
        })
    }

    /// `doc` without the values of secret keys, fit to be written to disk.
    pub fn without_secrets(&self, doc: &Value) -> Value {
        let Ok(mut doc) = Document::from_value(doc.clone()) else {
            return Value::Object(Map::new());
        };
        for key in &self.secrets {
            doc.remove(key);
        }
        let mut value = doc.into_value();
        strip_placeholders(&mut value);
        value
    }
}

/// The secret values this client holds, by key and secret version: what its last read over
/// REST (with the service's own token) gave. An envelope names each secret by its version, so
/// one that names only versions held here can be applied from MQTT directly.
#[derive(Default)]
pub(crate) struct HeldSecrets(HashMap<(KeyPath, Version), Value>);

impl std::fmt::Debug for HeldSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|(k, v)| format!("{k}@{v}")))
            .finish()
    }
}

impl HeldSecrets {
    /// The secrets of a config read over REST: each key the manager lists with its version,
    /// valued as the config has it (a masked value is not a value, and is not kept).
    pub fn from_response(response: &dials_wire::ConfigResponse) -> Self {
        Self::from_parts(&response.secrets, &response.config)
    }

    /// The secrets of one document read over REST, given the versions the manager lists.
    pub fn from_parts(secrets: &BTreeMap<String, u64>, config: &Value) -> Self {
        let mut held = HashMap::new();
        for (key, version) in secrets {
            let Ok(key) = KeyPath::parse(key) else {
                continue;
            };
            match key.lookup(config) {
                Some(Value::String(s)) if s == dials_wire::SECRET_MASK => {}
                Some(value) => {
                    held.insert((key, Version(*version)), value.clone());
                }
                None => {}
            }
        }
        Self(held)
    }

    /// An envelope's config with every placeholder replaced by the value held for it, or
    /// `None` when one is not held (then the config must be read over REST).
    pub fn fill(&self, config: &Value) -> Option<Value> {
        let doc = Document::from_value(config.clone()).ok()?;
        let filled = secret::unseal(&doc, &self.0).ok()?.into_value();
        (!has_secret_placeholder(&filled)).then_some(filled)
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// Whether `value` holds a `{"$secret": …}` placeholder anywhere: the real value must be read
/// over REST.
pub(crate) fn has_secret_placeholder(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.contains_key("$secret") || map.values().any(has_secret_placeholder)
        }
        Value::Array(items) => items.iter().any(has_secret_placeholder),
        _ => false,
    }
}

/// Removes every value that is the manager's mask.
fn strip_masks(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| v.as_str() != Some(dials_wire::SECRET_MASK));
        map.values_mut().for_each(strip_masks);
    }
}

fn strip_placeholders(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !matches!(v, Value::Object(inner) if inner.contains_key("$secret")));
            map.values_mut().for_each(strip_placeholders);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_placeholders),
        _ => {}
    }
}

/// An environment string as a value of the key's type: JSON if it parses as that type, else
/// the string itself.
fn parse_env(raw: &str, type_: &str, nullable: bool) -> Value {
    if let Ok(parsed) = serde_json::from_str::<Value>(raw) {
        let fits = match (&parsed, type_) {
            (Value::Null, _) => nullable || type_ == "null",
            (_, "any") => true,
            (Value::String(_), "string") => true,
            (Value::Bool(_), "boolean") => true,
            (Value::Number(n), "integer") => n.is_i64() || n.is_u64(),
            (Value::Number(_), "number") => true,
            (Value::Array(_), "array") => true,
            (Value::Object(_), "object") => true,
            _ => false,
        };
        if fits {
            return parsed;
        }
    }
    Value::String(raw.to_owned())
}

/// Sets `key` in `map`, creating the objects on the way.
fn set_at(map: &mut Map<String, Value>, key: &KeyPath, value: Value) {
    let tokens: Vec<String> = key.tokens().collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut current = map;
    for token in parents {
        let entry = current
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(inner) = entry else { return };
        current = inner;
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::SecretString;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(default)]
    struct Mqtt {
        #[schemars(extend("x-env" = "T_MQTT_HOST"))]
        host: String,
        port: u16,
    }

    impl Default for Mqtt {
        fn default() -> Self {
            Self {
                host: "localhost".into(),
                port: 1883,
            }
        }
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(default)]
    struct Config {
        #[schemars(extend("x-env" = "T_VOICE"))]
        voice: String,
        #[schemars(range(min = 0, max = 200), extend("x-env" = "T_VOLUME"))]
        volume: u32,
        #[schemars(extend("x-env" = "T_LABEL"))]
        label: String,
        api_key: Option<SecretString>,
        mqtt: Mqtt,
    }

    impl Default for Config {
        fn default() -> Self {
            Self {
                voice: "amy".into(),
                volume: 100,
                label: "x".into(),
                api_key: None,
                mqtt: Mqtt::default(),
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> EnvLookup {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Arc::new(move |name| map.get(name).cloned())
    }

    fn schema() -> ServiceSchema {
        ServiceSchema::derive::<Config>().unwrap()
    }

    #[test]
    fn defaults_fill_what_the_document_lacks() {
        let r = schema()
            .resolve::<Config>(&json!({"voice": "bob"}), &env(&[]))
            .unwrap();
        assert_eq!(r.value.voice, "bob");
        assert_eq!(r.value.volume, 100);
        assert_eq!(r.value.mqtt, Mqtt::default());
        assert!(r.overrides.is_empty());
    }

    #[test]
    fn the_environment_beats_the_manager_and_is_typed_by_the_schema() {
        let r = schema()
            .resolve::<Config>(
                &json!({"voice": "bob", "volume": 10, "mqtt": {"host": "m"}}),
                &env(&[
                    ("T_VOICE", "carl"),
                    ("T_VOLUME", "20"),
                    ("T_LABEL", "42"),
                    ("T_MQTT_HOST", "broker"),
                ]),
            )
            .unwrap();
        assert_eq!(r.value.voice, "carl");
        assert_eq!(r.value.volume, 20);
        assert_eq!(r.value.label, "42", "a string key keeps digits as text");
        assert_eq!(r.value.mqtt.host, "broker");
        assert_eq!(r.overrides, ["/voice", "/volume", "/label", "/mqtt/host"]);
    }

    #[test]
    fn a_value_that_breaks_the_schema_is_rejected_with_its_path() {
        let err = schema()
            .resolve::<Config>(&json!({"volume": 250}), &env(&[]))
            .unwrap_err();
        assert!(err.starts_with("/volume: "), "{err}");
        let err = schema()
            .resolve::<Config>(&json!({}), &env(&[("T_VOLUME", "loud")]))
            .unwrap_err();
        assert!(err.starts_with("/volume: "), "{err}");
        assert!(
            err.ends_with("(set by the environment variable T_VOLUME)"),
            "{err}"
        );
    }

    #[test]
    fn held_secrets_fill_the_placeholders_they_know_and_only_those() {
        let response = dials_wire::ConfigResponse {
            service: "tts".into(),
            version: 5,
            revision: 9,
            epoch: uuid::Uuid::nil(),
            updated_at: None,
            updated_by: None,
            config: json!({"api_key": "k-5", "mqtt": {"password": "********"}, "voice": "a"}),
            secrets: [("/api_key".to_owned(), 4), ("/mqtt/password".to_owned(), 2)].into(),
        };
        let held = HeldSecrets::from_response(&response);
        assert_eq!(
            format!("{held:?}"),
            "[\"/api_key@4\"]",
            "a masked value is not held"
        );
        assert_eq!(
            held.fill(&json!({"api_key": {"$secret": 4}, "voice": "b"})),
            Some(json!({"api_key": "k-5", "voice": "b"}))
        );
        assert_eq!(
            held.fill(&json!({"api_key": {"$secret": 6}})),
            None,
            "a newer secret"
        );
        assert_eq!(
            held.fill(&json!({"mqtt": {"password": {"$secret": 2}}})),
            None
        );
        assert_eq!(
            held.fill(&json!({"x": {"$secret": 4, "y": 1}})),
            None,
            "not a placeholder"
        );
        assert_eq!(
            held.fill(&json!({"voice": "c"})),
            Some(json!({"voice": "c"}))
        );
    }

    #[test]
    fn secrets_and_placeholders_stay_off_disk() {
        let s = schema();
        let doc = json!({"voice": "bob", "api_key": "k", "mqtt": {"host": {"$secret": 1}}});
        assert!(has_secret_placeholder(&doc));
        assert_eq!(s.without_secrets(&doc), json!({"voice": "bob", "mqtt": {}}));
        assert!(!has_secret_placeholder(&json!({"a": [1, {"b": "c"}]})));
    }

    #[test]
    fn a_masked_secret_is_noticed() {
        let r = schema()
            .resolve::<Config>(&json!({"api_key": "********"}), &env(&[]))
            .unwrap();
        assert_eq!(r.masked, ["/api_key"]);
    }

    #[test]
    fn env_strings_parse_as_the_keys_type_or_stay_strings() {
        assert_eq!(parse_env("5", "integer", false), json!(5));
        assert_eq!(parse_env("5.5", "integer", false), json!("5.5"));
        assert_eq!(parse_env("true", "boolean", false), json!(true));
        assert_eq!(parse_env("true", "string", false), json!("true"));
        assert_eq!(parse_env("\"q\"", "string", false), json!("q"));
        assert_eq!(parse_env("[1,2]", "array", false), json!([1, 2]));
        assert_eq!(parse_env("null", "string", true), json!(null));
        assert_eq!(parse_env("null", "string", false), json!("null"));
        assert_eq!(parse_env("plain", "any", false), json!("plain"));
    }
}
