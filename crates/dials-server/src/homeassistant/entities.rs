//! Which settings Home Assistant shows, and as what: a service's schema turned into MQTT
//! discovery entities, a document into their states, and a command from Home Assistant into the
//! merge patch that writes it. Pure functions over values: no MQTT, no store.
//!
//! A setting is shown when its schema says `x-home-assistant: true`, or says
//! `x-complexity: simple` and not `x-home-assistant: false`; never when it is `x-secret`. A
//! number becomes a `number` (bounds, `multipleOf` as the step, `x-unit` as the unit), a string
//! or number with an `enum` a `select`, a boolean a `switch`, any other string a `text`;
//! objects, arrays and untyped keys are not shown.

use dials_domain::KeyPath;
use dials_schema::{CompiledSchema, Setting};
use serde_json::{Map, Number, Value, json};

/// Home Assistant's entity platform for a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A number with bounds and a step.
    Number,
    /// One of a fixed list of options.
    Select,
    /// On or off.
    Switch,
    /// Free text.
    Text,
}

impl Component {
    /// The platform's name in discovery topics.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Number => "number",
            Component::Select => "select",
            Component::Switch => "switch",
            Component::Text => "text",
        }
    }
}

/// Where the entities of one manager live on the broker.
#[derive(Debug, Clone)]
pub struct HaTopics {
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
    /// The manager's topic prefix (`--mqtt-prefix`), empty or ending in `/`.
    pub prefix: String,
}

impl HaTopics {
    /// `{prefix}dials/ha/{service}/{object_id}/state`: the setting's current value, retained.
    pub fn state(&self, service: &str, object_id: &str) -> String {
        format!("{}dials/ha/{service}/{object_id}/state", self.prefix)
    }

    /// `{prefix}dials/ha/{service}/{object_id}/set`: where Home Assistant sends a new value.
    pub fn command(&self, service: &str, object_id: &str) -> String {
        format!("{}dials/ha/{service}/{object_id}/set", self.prefix)
    }

    /// The filter matching every command topic.
    pub fn command_filter(&self) -> String {
        format!("{}dials/ha/+/+/set", self.prefix)
    }

    /// `(service, object_id)` of a command topic.
    pub fn parse_command<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("dials/ha/")?
            .strip_suffix("/set")?;
        let (service, object_id) = rest.split_once('/')?;
        (!object_id.contains('/')).then_some((service, object_id))
    }

    /// `{discovery}/{component}/dials_{service}/{object_id}/config`: the retained discovery
    /// config of one entity.
    pub fn discovery(&self, component: Component, service: &str, object_id: &str) -> String {
        format!(
            "{}/{}/dials_{service}/{object_id}/config",
            self.discovery_prefix,
            component.as_str()
        )
    }

    /// Home Assistant's status topic: `online` there means it (re)started and wants every
    /// discovery config again.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// The manager's health topic, which says whether its entities are available.
    pub fn availability(&self) -> String {
        format!("{}system/health/config-manager", self.prefix)
    }
}

/// One setting as a Home Assistant entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The setting's key.
    pub key: KeyPath,
    /// The entity's id within its service: the key's tokens joined by `_`.
    pub object_id: String,
    /// Its platform.
    pub component: Component,
    /// Whether the setting is an integer (commands must be whole numbers).
    pub integer: bool,
    /// For a select: each option as shown, and the value it stands for.
    pub options: Vec<(String, Value)>,
    /// The discovery config, without the topics (added by [`discovery_config`]).
    pub config: Map<String, Value>,
}

/// HA caps text entities at 255 characters.
const TEXT_MAX: u64 = 255;

/// The entities a service's schema asks Home Assistant to show, in the schema's order.
pub fn entities(schema: &CompiledSchema) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    for setting in schema.settings() {
        let raw = raw_property(schema.raw(), &setting.key);
        let flag = raw
            .and_then(|r| r.get("x-home-assistant"))
            .and_then(Value::as_bool);
        let wanted = match flag {
            Some(explicit) => explicit,
            None => setting.complexity == dials_schema::Complexity::Simple,
        };
        if !wanted || setting.secret {
            continue;
        }
        let Some(mut entity) = entity_of(setting, raw) else {
            continue;
        };
        // Two keys may flatten to one id (`/a_b` and `/a/b`): the later one gets a suffix.
        let base = entity.object_id.clone();
        let mut n = 2;
        while out.iter().any(|e| e.object_id == entity.object_id) {
            entity.object_id = format!("{base}_{n}");
            n += 1;
        }
        out.push(entity);
    }
    out
}

fn entity_of(setting: &Setting, raw: Option<&Value>) -> Option<Entity> {
    let mut config = Map::new();
    config.insert(
        "name".into(),
        Value::String(setting.title.clone().unwrap_or_else(|| setting.name())),
    );
    if let Some(d) = &setting.description {
        // Shown nowhere by HA itself, but kept with the entity for people reading the broker.
        config.insert("description".into(), Value::String(d.clone()));
    }
    let mut options = Vec::new();
    let integer = setting.type_ == "integer";
    let component = match (&setting.enum_values, setting.type_.as_str()) {
        (Some(values), "string" | "integer" | "number") => {
            for v in values {
                let shown = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                options.push((shown, v.clone()));
            }
            if options.is_empty() {
                return None;
            }
            config.insert(
                "options".into(),
                Value::Array(options.iter().map(|(s, _)| json!(s)).collect()),
            );
            Component::Select
        }
        (_, "boolean") => Component::Switch,
        (_, "integer" | "number") => {
            let lower = setting
                .minimum
                .as_ref()
                .or(setting.exclusive_minimum.as_ref());
            let upper = setting
                .maximum
                .as_ref()
                .or(setting.exclusive_maximum.as_ref());
            let step = raw
                .and_then(|r| r.get("multipleOf"))
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .unwrap_or_else(|| default_step(integer, lower, upper));
            match (lower, upper) {
                (Some(min), Some(max)) => {
                    config.insert("min".into(), Value::Number(min.clone()));
                    config.insert("max".into(), Value::Number(max.clone()));
                }
                (min, max) => {
                    // Unbounded: HA needs bounds, so wide ones, typed in a box (no slider).
                    let wide = if integer { 2_147_483_647.0 } else { 1e15 };
                    config.insert("min".into(), min.map_or(json!(-wide), |m| json!(m)));
                    config.insert("max".into(), max.map_or(json!(wide), |m| json!(m)));
                    config.insert("mode".into(), json!("box"));
                }
            }
            config.insert("step".into(), json!(step));
            if let Some(unit) = raw.and_then(|r| r.get("x-unit")).and_then(Value::as_str) {
                config.insert("unit_of_measurement".into(), json!(unit));
            }
            Component::Number
        }
        (_, "string") => {
            config.insert(
                "min".into(),
                json!(setting.min_length.unwrap_or(0).min(TEXT_MAX)),
            );
            config.insert(
                "max".into(),
                json!(setting.max_length.unwrap_or(TEXT_MAX).min(TEXT_MAX)),
            );
            Component::Text
        }
        _ => return None,
    };
    Some(Entity {
        object_id: object_id(&setting.key),
        key: setting.key.clone(),
        component,
        integer,
        options,
        config,
    })
}

/// A step when the schema gives no `multipleOf`: 1 for integers; for numbers a power of ten
/// near a hundredth of the range (0.001 at the finest, HA's limit).
fn default_step(integer: bool, lower: Option<&Number>, upper: Option<&Number>) -> f64 {
    if integer {
        return 1.0;
    }
    match (
        lower.and_then(Number::as_f64),
        upper.and_then(Number::as_f64),
    ) {
        (Some(lo), Some(hi)) if hi > lo => {
            let exact = (hi - lo) / 100.0;
            10f64.powf(exact.log10().floor()).max(0.001)
        }
        _ => 0.001,
    }
}

/// The entity id within a service: the key's tokens, lowercase, anything but `[a-z0-9]` as `_`.
pub fn object_id(key: &KeyPath) -> String {
    key.tokens()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The raw schema of a key (following `properties` and local `$ref`s), for the keywords the
/// catalogue does not keep (`multipleOf`, `x-unit`, `x-home-assistant`).
fn raw_property<'a>(root: &'a Value, key: &KeyPath) -> Option<&'a Value> {
    let mut node = resolve(root, root)?;
    for token in key.tokens() {
        node = resolve(root, node.get("properties")?.get(token.as_str())?)?;
    }
    Some(node)
}

/// A schema, or the local definition its `$ref` names when it has nothing else to say.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    let mut node = node;
    for _ in 0..16 {
        let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
            return Some(node);
        };
        if node.get("properties").is_some() {
            return Some(node);
        }
        let target = root.pointer(reference.strip_prefix('#')?)?;
        if target.get("properties").is_none() {
            // A `$ref` to a leaf (an enum): the annotations sit beside the `$ref`.
            return Some(node);
        }
        node = target;
    }
    None
}

/// The full discovery config of `entity` of `service`: its own keys, the topics, the device
/// (one per service) and availability (the manager's health).
pub fn discovery_config(topics: &HaTopics, service: &str, entity: &Entity, version: &str) -> Value {
    let mut config = entity.config.clone();
    let id = &entity.object_id;
    config.insert("unique_id".into(), json!(format!("dials_{service}_{id}")));
    config.insert(
        "default_entity_id".into(),
        json!(format!(
            "{}.dials_{}_{id}",
            entity.component.as_str(),
            service.replace('-', "_")
        )),
    );
    config.insert("state_topic".into(), json!(topics.state(service, id)));
    config.insert("command_topic".into(), json!(topics.command(service, id)));
    config.insert("entity_category".into(), json!("config"));
    config.insert(
        "availability".into(),
        json!([{
            "topic": topics.availability(),
            "value_template": "{{ 'online' if value_json.ok else 'offline' }}",
        }]),
    );
    config.insert(
        "device".into(),
        json!({
            "identifiers": [format!("dials_{service}")],
            "name": service,
            "manufacturer": "dials",
            "model": "service settings",
            "sw_version": version,
        }),
    );
    config.insert(
        "origin".into(),
        json!({"name": "dials", "sw_version": version}),
    );
    Value::Object(config)
}

/// What the state topic of `entity` says for `document` (defaults filled), or `None` when the
/// document has no value there.
pub fn state_payload(entity: &Entity, document: &Value) -> Option<String> {
    let value = document.pointer(&entity.key.to_string())?;
    match (entity.component, value) {
        (Component::Switch, Value::Bool(true)) => Some("ON".into()),
        (Component::Switch, Value::Bool(false)) => Some("OFF".into()),
        (Component::Select, v) => entity
            .options
            .iter()
            .find(|(_, option)| option == v)
            .map(|(shown, _)| shown.clone()),
        (Component::Number, Value::Number(n)) => Some(n.to_string()),
        (Component::Text, Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The value a command from Home Assistant stands for, or why it stands for none.
pub fn command_value(entity: &Entity, payload: &str) -> Result<Value, String> {
    let text = payload.trim();
    match entity.component {
        Component::Switch => match text {
            "ON" => Ok(Value::Bool(true)),
            "OFF" => Ok(Value::Bool(false)),
            other => Err(format!("a switch takes ON or OFF, not {other:?}")),
        },
        Component::Select => entity
            .options
            .iter()
            .find(|(shown, _)| shown == text)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("{text:?} is not one of the options")),
        Component::Number => {
            let n: f64 = text
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| format!("{text:?} is not a number"))?;
            if entity.integer {
                if n.fract() != 0.0 || n.abs() > 9.0e15 {
                    return Err(format!("{text:?} is not a whole number"));
                }
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "checked whole and within i64 above"
                )]
                Ok(json!(n as i64))
            } else {
                Number::from_f64(n)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{text:?} is not a number"))
            }
        }
        Component::Text => Ok(Value::String(payload.to_owned())),
    }
}

/// The merge patch that sets `key` to `value` and changes nothing else.
pub fn merge_patch(key: &KeyPath, value: Value) -> Value {
    let tokens: Vec<String> = key.tokens().collect();
    tokens.iter().rev().fold(value, |inner, token| {
        let mut object = Map::new();
        object.insert(token.clone(), inner);
        Value::Object(object)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> CompiledSchema {
        CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {
                "volume_percent": {"type": "integer", "minimum": 0, "maximum": 200,
                    "title": "Volume", "x-complexity": "simple", "x-unit": "%"},
                "vad_threshold": {"type": "number", "minimum": 0, "maximum": 1,
                    "x-complexity": "simple"},
                "rate": {"type": "number", "multipleOf": 0.05, "x-home-assistant": true},
                "provider": {"$ref": "#/$defs/Provider", "x-complexity": "simple"},
                "streaming": {"type": "boolean", "x-complexity": "simple"},
                "voice": {"type": "string", "maxLength": 1000, "x-complexity": "simple"},
                "api_key": {"type": "string", "x-complexity": "simple", "x-secret": true,
                    "x-home-assistant": true},
                "hidden": {"type": "boolean", "x-complexity": "simple", "x-home-assistant": false},
                "advanced": {"type": "integer"},
                "tags": {"type": "array", "x-complexity": "simple"},
                "mqtt": {"type": "object", "properties": {
                    "port": {"type": "integer", "x-complexity": "simple"}
                }}
            },
            "$defs": {"Provider": {"type": "string", "enum": ["piper", "elevenlabs"]}}
        }))
        .unwrap()
    }

    fn find<'a>(all: &'a [Entity], id: &str) -> &'a Entity {
        all.iter().find(|e| e.object_id == id).unwrap()
    }

    #[test]
    fn simple_settings_become_entities_and_the_rest_stay_hidden() {
        let all = entities(&schema());
        let ids: Vec<_> = all.iter().map(|e| e.object_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "volume_percent",
                "vad_threshold",
                "rate",
                "provider",
                "streaming",
                "voice",
                "mqtt_port"
            ]
        );
    }

    #[test]
    fn a_secret_is_never_an_entity_even_when_asked_for() {
        assert!(
            !entities(&schema())
                .iter()
                .any(|e| e.key.to_string() == "/api_key")
        );
    }

    #[test]
    fn numbers_carry_bounds_step_and_unit() {
        let all = entities(&schema());
        let volume = find(&all, "volume_percent");
        assert_eq!(volume.component, Component::Number);
        assert_eq!(volume.config["min"], json!(0));
        assert_eq!(volume.config["max"], json!(200));
        assert_eq!(volume.config["step"], json!(1.0));
        assert_eq!(volume.config["unit_of_measurement"], json!("%"));
        assert_eq!(volume.config["name"], json!("Volume"));
        assert_eq!(find(&all, "vad_threshold").config["step"], json!(0.01));
        let rate = find(&all, "rate");
        assert_eq!(rate.config["step"], json!(0.05));
        assert_eq!(
            rate.config["mode"],
            json!("box"),
            "unbounded: typed, not slid"
        );
    }

    #[test]
    fn enums_are_selects_booleans_switches_and_strings_text() {
        let all = entities(&schema());
        let provider = find(&all, "provider");
        assert_eq!(provider.component, Component::Select);
        assert_eq!(provider.config["options"], json!(["piper", "elevenlabs"]));
        assert_eq!(find(&all, "streaming").component, Component::Switch);
        let voice = find(&all, "voice");
        assert_eq!(voice.component, Component::Text);
        assert_eq!(voice.config["max"], json!(255), "HA's own limit");
    }

    #[test]
    fn states_follow_the_document() {
        let all = entities(&schema());
        let doc = json!({"volume_percent": 60, "streaming": false, "provider": "piper",
            "voice": "amy", "mqtt": {"port": 1883}});
        assert_eq!(
            state_payload(find(&all, "volume_percent"), &doc).as_deref(),
            Some("60")
        );
        assert_eq!(
            state_payload(find(&all, "streaming"), &doc).as_deref(),
            Some("OFF")
        );
        assert_eq!(
            state_payload(find(&all, "provider"), &doc).as_deref(),
            Some("piper")
        );
        assert_eq!(
            state_payload(find(&all, "mqtt_port"), &doc).as_deref(),
            Some("1883")
        );
        assert_eq!(state_payload(find(&all, "rate"), &doc), None);
    }

    #[test]
    fn commands_become_typed_values_or_a_reason() {
        let all = entities(&schema());
        let volume = find(&all, "volume_percent");
        assert_eq!(command_value(volume, "75"), Ok(json!(75)));
        assert_eq!(command_value(volume, "75.0"), Ok(json!(75)));
        assert!(command_value(volume, "7.5").is_err());
        assert!(command_value(volume, "loud").is_err());
        assert!(command_value(volume, "NaN").is_err());
        assert_eq!(
            command_value(find(&all, "vad_threshold"), "0.35"),
            Ok(json!(0.35))
        );
        assert_eq!(
            command_value(find(&all, "streaming"), "ON"),
            Ok(json!(true))
        );
        assert!(command_value(find(&all, "streaming"), "maybe").is_err());
        assert_eq!(
            command_value(find(&all, "provider"), "elevenlabs"),
            Ok(json!("elevenlabs"))
        );
        assert!(command_value(find(&all, "provider"), "espeak").is_err());
    }

    #[test]
    fn a_command_is_a_merge_patch_of_its_one_key() {
        let key = KeyPath::parse("/mqtt/port").unwrap();
        assert_eq!(
            merge_patch(&key, json!(1884)),
            json!({"mqtt": {"port": 1884}})
        );
    }

    #[test]
    fn topics_round_trip_and_the_discovery_config_names_them() {
        let topics = HaTopics {
            discovery_prefix: "homeassistant".into(),
            prefix: "home/".into(),
        };
        let cmd = topics.command("tts-worker", "volume_percent");
        assert_eq!(cmd, "home/dials/ha/tts-worker/volume_percent/set");
        assert_eq!(
            topics.parse_command(&cmd),
            Some(("tts-worker", "volume_percent"))
        );
        assert_eq!(topics.parse_command("home/dials/ha/a/b/c/set"), None);
        assert_eq!(topics.parse_command("dials/ha/a/b/set"), None);
        let all = entities(&schema());
        let config = discovery_config(&topics, "tts-worker", find(&all, "volume_percent"), "1");
        assert_eq!(config["command_topic"], json!(cmd));
        assert_eq!(
            config["unique_id"],
            json!("dials_tts-worker_volume_percent")
        );
        assert_eq!(config["device"]["identifiers"], json!(["dials_tts-worker"]));
        assert_eq!(
            config["availability"][0]["topic"],
            json!("home/system/health/config-manager")
        );
        assert_eq!(
            topics.discovery(Component::Number, "tts-worker", "volume_percent"),
            "homeassistant/number/dials_tts-worker/volume_percent/config"
        );
    }
}
