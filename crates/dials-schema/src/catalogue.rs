//! The settings catalogue: one [`Setting`] per leaf key a schema defines, and the object shape
//! (properties, defaults, required names) that defaults and migration walk.
//!
//! Both are built in one walk over the schema's [views](crate::resolve), once, when the schema
//! is compiled. A nested object with named properties is not a setting; its properties are.
//! Annotations a nested object carries apply to everything inside it: `x-secret` and
//! `x-restart-required` on `/mqtt` make every `/mqtt/…` key secret and restart-requiring, and
//! its `x-complexity` is the default for its children.

use std::fmt;
use std::str::FromStr;

use dials_domain::KeyPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::SchemaError;
use crate::resolve::{Resolver, View};

/// How much a person has to know to change a setting safely (`x-complexity`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    /// Everyday settings, shown first.
    Simple,
    /// Everything else; the default when a schema does not say.
    #[default]
    Advanced,
}

impl Complexity {
    /// The lowercase name used in schemas and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Advanced => "advanced",
        }
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A complexity name that is neither `simple` nor `advanced`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown complexity {0:?}: expected \"simple\" or \"advanced\"")]
pub struct UnknownComplexity(pub String);

impl FromStr for Complexity {
    type Err = UnknownComplexity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "simple" => Ok(Self::Simple),
            "advanced" => Ok(Self::Advanced),
            _ => Err(UnknownComplexity(s.to_owned())),
        }
    }
}

/// What a schema says about one leaf key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// JSON Pointer of the key, e.g. `/mqtt/host`.
    pub key: KeyPath,
    /// JSON type: `string`, `integer`, `number`, `boolean`, `array`, `object`, `null`, or
    /// `any` when the schema does not constrain it. The first non-null type of a type list.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether `null` is allowed besides `type`.
    pub nullable: bool,
    /// Short human name (`title`).
    pub title: Option<String>,
    /// One-line explanation (`description`).
    pub description: Option<String>,
    /// Longer help text (`x-help`).
    pub help: Option<String>,
    /// `x-complexity`; advanced unless the schema says simple.
    pub complexity: Complexity,
    /// `x-secret`: the value is masked wherever it is shown.
    pub secret: bool,
    /// `x-restart-required`: the service applies a change only after a restart.
    pub restart_required: bool,
    /// `x-env`: the environment variable that overrides this key in the client.
    pub env: Option<String>,
    /// `x-global`: the key (JSON Pointer) of the `global` document this key takes its value
    /// from when the service's own document does not set it. `x-global: true` names the same
    /// pointer as the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<KeyPath>,
    /// Whether the enclosing object lists the key in `required`.
    pub required: bool,
    /// The value used when a document lacks the key: the key's own `default`, else its entry
    /// in the enclosing object's `default`.
    pub default: Option<Value>,
    /// The allowed values (`enum`, `const`, or a `oneOf`/`anyOf` of constants).
    pub enum_values: Option<Vec<Value>>,
    /// Inclusive lower bound (`minimum`).
    pub minimum: Option<Number>,
    /// Inclusive upper bound (`maximum`).
    pub maximum: Option<Number>,
    /// Exclusive lower bound (`exclusiveMinimum`).
    pub exclusive_minimum: Option<Number>,
    /// Exclusive upper bound (`exclusiveMaximum`).
    pub exclusive_maximum: Option<Number>,
    /// Shortest allowed string, in characters (`minLength`).
    pub min_length: Option<u64>,
    /// Longest allowed string, in characters (`maxLength`).
    pub max_length: Option<u64>,
    /// Regular expression a string must match (`pattern`).
    pub pattern: Option<String>,
    /// Named string format (`format`), e.g. `uri`.
    pub format: Option<String>,
}

impl Setting {
    /// The key's own name: the last token of its pointer (`host` for `/mqtt/host`).
    pub fn name(&self) -> String {
        self.key.tokens().last().unwrap_or_default()
    }
}

/// The object structure defaults and migration walk: properties in schema order, each with its
/// own default and, for nested objects, their shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ObjectShape {
    /// Named properties, in the order the schema lists them.
    pub properties: Vec<PropertyShape>,
    /// Names the object lists in `required`.
    pub required: Vec<String>,
}

/// One named property of an [`ObjectShape`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PropertyShape {
    /// The property name (unescaped).
    pub name: String,
    /// The property's own `default`.
    pub default: Option<Value>,
    /// `null` is allowed: an absent nullable object is not conjured up from its children's
    /// defaults, because absent means "none" for an optional section.
    pub nullable: bool,
    /// Present when the property is a nested object with named properties.
    pub object: Option<ObjectShape>,
}

impl ObjectShape {
    /// The property called `name`.
    pub fn property(&self, name: &str) -> Option<&PropertyShape> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Annotations a nested object passes down to its children.
#[derive(Debug, Clone, Copy, Default)]
struct Inherited<'a> {
    secret: bool,
    restart_required: bool,
    complexity: Option<Complexity>,
    /// The default in force at this key: its own, else its entry in the enclosing object's
    /// default. For an object, its children look theirs up inside it.
    default: Option<&'a Value>,
}

/// Walks the root view into its object shape, appending its settings to `settings`. Fails on
/// a dials annotation (`x-secret`, `x-complexity`, …) of the wrong shape, because a
/// `"x-secret": "true"` silently read as "not secret" would show a secret to everyone.
pub(crate) fn build(
    resolver: Resolver<'_>,
    root: &View,
    settings: &mut Vec<Setting>,
) -> Result<ObjectShape, SchemaError> {
    let key = KeyPath::root();
    let inherited = annotate(root, &key, Inherited::default(), None)?;
    walk(resolver, root, &key, inherited, &root.refs, settings)
}

fn walk(
    resolver: Resolver<'_>,
    view: &View,
    key: &KeyPath,
    inherited: Inherited<'_>,
    open: &[String],
    settings: &mut Vec<Setting>,
) -> Result<ObjectShape, SchemaError> {
    let required = view.required();
    let mut shape = ObjectShape {
        properties: Vec::new(),
        required: required.clone(),
    };
    let Some(properties) = view.properties() else {
        return Ok(shape);
    };
    for (name, schema) in properties {
        // A property whose schema is `false` may never appear: it is no setting.
        let Some(child) = resolver.view(schema, open) else {
            continue;
        };
        let child_key = key.child(name);
        let own_default = child.get("default").cloned();
        let default = own_default
            .as_ref()
            .or_else(|| inherited.default.and_then(|d| d.get(name)));
        let annotations = annotate(&child, &child_key, inherited, default)?;
        let global = global_source(&child, &child_key)?;
        if global.is_some() && child.is_container() {
            return Err(SchemaError::InvalidAnnotation {
                key: child_key.to_string(),
                message: "x-global belongs on a leaf key, not on an object: annotate each key \
                          the service takes from global"
                    .into(),
            });
        }
        let nullable = child.nullable || (child.get("type").is_some() && child.allows_type("null"));
        let object = if child.is_container() {
            let mut child_open = open.to_vec();
            child_open.extend(child.refs.iter().cloned());
            Some(walk(
                resolver,
                &child,
                &child_key,
                annotations,
                &child_open,
                settings,
            )?)
        } else {
            let mut one = setting(&child, child_key, annotations, required.contains(name));
            one.global = global;
            settings.push(one);
            None
        };
        shape.properties.push(PropertyShape {
            name: name.clone(),
            default: own_default,
            nullable,
            object,
        });
    }
    Ok(shape)
}

/// The key of `global` that `x-global` at `key` names: a JSON Pointer string (not the root),
/// `true` for the key's own pointer, `false` or absent for none.
fn global_source(view: &View, key: &KeyPath) -> Result<Option<KeyPath>, SchemaError> {
    let invalid = |message: String| SchemaError::InvalidAnnotation {
        key: key.to_string(),
        message,
    };
    match view.get("x-global") {
        None | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(key.clone())),
        Some(Value::String(pointer)) if !pointer.is_empty() && !pointer.starts_with('/') => {
            Err(invalid(format!(
                "x-global must be a JSON Pointer into the global document, starting with '/' \
                 (\"/{pointer}\"), or true (got {pointer:?})"
            )))
        }
        Some(Value::String(pointer)) => {
            let parsed = KeyPath::parse(pointer).map_err(|e| {
                invalid(format!(
                    "x-global must be a JSON Pointer into the global document such as \
                     \"/mqtt/host\", or true (got {pointer:?}: {e})"
                ))
            })?;
            if parsed.as_str().is_empty() {
                return Err(invalid(
                    "x-global must name a key of the global document (\"/log/level\"), not \
                     the whole document (\"\")"
                        .into(),
                ));
            }
            Ok(Some(parsed))
        }
        Some(other) => Err(invalid(format!(
            "x-global must be a JSON Pointer string such as \"/mqtt/host\", or true (got {other})"
        ))),
    }
}

/// The annotations in force at `key`: the view's own, combined with its parent's.
fn annotate<'a>(
    view: &View,
    key: &KeyPath,
    parent: Inherited<'a>,
    default: Option<&'a Value>,
) -> Result<Inherited<'a>, SchemaError> {
    let invalid =
        |annotation: &str, expected: &str, found: &Value| SchemaError::InvalidAnnotation {
            key: key.to_string(),
            message: format!("{annotation} must be {expected} (got {found})"),
        };
    let flag = |annotation: &str| match view.get(annotation) {
        None => Ok(false),
        Some(Value::Bool(set)) => Ok(*set),
        Some(other) => Err(invalid(annotation, "true or false", other)),
    };
    for annotation in ["x-env", "x-help"] {
        if let Some(found) = view.get(annotation)
            && !found.is_string()
        {
            return Err(invalid(annotation, "a string", found));
        }
    }
    let complexity = match view.get("x-complexity") {
        None => parent.complexity,
        Some(found) => Some(
            found
                .as_str()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| invalid("x-complexity", "\"simple\" or \"advanced\"", found))?,
        ),
    };
    Ok(Inherited {
        // Once secret, always secret: a child cannot opt out of its parent's `x-secret`.
        secret: parent.secret || flag("x-secret")?,
        restart_required: parent.restart_required || flag("x-restart-required")?,
        complexity,
        default,
    })
}

fn setting(view: &View, key: KeyPath, annotations: Inherited<'_>, required: bool) -> Setting {
    let text = |name: &str| view.str(name).map(str::to_owned);
    let number = |name: &str| match view.get(name) {
        Some(Value::Number(n)) => Some(n.clone()),
        _ => None,
    };
    let count = |name: &str| view.get(name).and_then(Value::as_u64);
    let enum_values = allowed_values(view);
    let type_list = match view.get("type") {
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(t)) => vec![t.as_str()],
        _ => Vec::new(),
    };
    let nullable = view.nullable
        || type_list.contains(&"null")
        || enum_values
            .as_ref()
            .is_some_and(|e| e.contains(&Value::Null));
    Setting {
        key,
        type_: type_name(view, &type_list, enum_values.as_deref()),
        nullable,
        title: text("title"),
        description: text("description"),
        help: text("x-help"),
        complexity: annotations.complexity.unwrap_or_default(),
        secret: annotations.secret,
        restart_required: annotations.restart_required,
        env: text("x-env"),
        global: None,
        required,
        default: annotations.default.cloned(),
        enum_values,
        minimum: number("minimum"),
        maximum: number("maximum"),
        exclusive_minimum: number("exclusiveMinimum"),
        exclusive_maximum: number("exclusiveMaximum"),
        min_length: count("minLength"),
        max_length: count("maxLength"),
        pattern: text("pattern"),
        format: text("format"),
    }
}

/// The values an `enum`, a `const`, or a `oneOf`/`anyOf` made only of constants allows (the
/// last is how schemars writes an enum whose variants carry doc comments).
fn allowed_values(view: &View) -> Option<Vec<Value>> {
    if let Some(Value::Array(values)) = view.get("enum") {
        return Some(values.clone());
    }
    if let Some(value) = view.get("const") {
        return Some(vec![value.clone()]);
    }
    for keyword in ["oneOf", "anyOf"] {
        let Some(Value::Array(branches)) = view.get(keyword) else {
            continue;
        };
        let constants: Option<Vec<Vec<Value>>> = branches.iter().map(branch_constants).collect();
        if let Some(constants) = constants {
            return Some(constants.into_iter().flatten().collect());
        }
    }
    None
}

fn branch_constants(branch: &Value) -> Option<Vec<Value>> {
    let map: &Map<String, Value> = branch.as_object()?;
    if let Some(value) = map.get("const") {
        return Some(vec![value.clone()]);
    }
    map.get("enum").and_then(Value::as_array).cloned()
}

fn type_name(view: &View, type_list: &[&str], enum_values: Option<&[Value]>) -> String {
    if let Some(first) = type_list.iter().find(|t| **t != "null") {
        return (*first).to_owned();
    }
    if let Some(values) = enum_values {
        let non_null: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
        let all =
            |test: fn(&Value) -> bool| !non_null.is_empty() && non_null.iter().all(|v| test(v));
        let inferred = if all(Value::is_string) {
            Some("string")
        } else if all(Value::is_boolean) {
            Some("boolean")
        } else if all(|v| v.is_i64() || v.is_u64()) {
            Some("integer")
        } else if all(Value::is_number) {
            Some("number")
        } else {
            None
        };
        if let Some(t) = inferred {
            return t.to_owned();
        }
    }
    if !type_list.is_empty() {
        return "null".to_owned();
    }
    if view.get("properties").is_some() || view.get("additionalProperties").is_some() {
        return "object".to_owned();
    }
    if view.get("items").is_some() || view.get("prefixItems").is_some() {
        return "array".to_owned();
    }
    "any".to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn catalogue(schema: &Value) -> (ObjectShape, Vec<Setting>) {
        let resolver = Resolver::new(schema);
        let root = resolver.view(schema, &[]).expect("not false");
        let mut settings = Vec::new();
        let shape = build(resolver, &root, &mut settings).expect("annotations are well formed");
        (shape, settings)
    }

    fn keys(settings: &[Setting]) -> Vec<&str> {
        settings.iter().map(|s| s.key.as_str()).collect()
    }

    #[test]
    fn lists_leaves_in_schema_order_and_walks_into_nested_objects() {
        let schema = json!({"type": "object", "properties": {
            "z": {"type": "string"},
            "mqtt": {"type": "object", "properties": {"port": {"type": "integer"}, "host": {}}},
            "a": {"type": "boolean"}
        }});
        let (_, settings) = catalogue(&schema);
        assert_eq!(keys(&settings), ["/z", "/mqtt/port", "/mqtt/host", "/a"]);
    }

    #[test]
    fn reads_annotations_and_bounds() {
        let schema = json!({"properties": {"t": {
            "type": ["number", "null"], "title": "T", "description": "D", "x-help": "H",
            "x-complexity": "simple", "x-secret": true, "x-restart-required": true, "x-env": "T",
            "default": 0.5, "minimum": 0, "maximum": 1.0
        }}, "required": ["t"]});
        let (_, settings) = catalogue(&schema);
        let t = &settings[0];
        assert_eq!((t.type_.as_str(), t.nullable), ("number", true));
        assert_eq!(t.title.as_deref(), Some("T"));
        assert_eq!(t.description.as_deref(), Some("D"));
        assert_eq!(t.help.as_deref(), Some("H"));
        assert_eq!(t.env.as_deref(), Some("T"));
        assert_eq!(t.complexity, Complexity::Simple);
        assert!(t.secret && t.restart_required && t.required);
        assert_eq!(t.default, Some(json!(0.5)));
        assert_eq!(t.minimum, Some(Number::from(0)));
        assert_eq!(t.maximum.as_ref().and_then(Number::as_f64), Some(1.0));
        assert_eq!(t.name(), "t");
    }

    #[test]
    fn infers_the_type_of_an_enum_and_defaults_to_advanced() {
        let schema = json!({"properties": {
            "voice": {"enum": ["piper", "kokoro"]},
            "level": {"oneOf": [{"const": 1, "description": "low"}, {"const": 2}]},
            "free": {}
        }});
        let (_, settings) = catalogue(&schema);
        assert_eq!(settings[0].type_, "string");
        assert_eq!(
            settings[0].enum_values,
            Some(vec![json!("piper"), json!("kokoro")])
        );
        assert_eq!(settings[1].type_, "integer");
        assert_eq!(settings[1].enum_values, Some(vec![json!(1), json!(2)]));
        assert_eq!(settings[2].type_, "any");
        assert!(
            settings
                .iter()
                .all(|s| s.complexity == Complexity::Advanced)
        );
    }

    #[test]
    fn follows_refs_the_way_schemars_writes_them() {
        let schema = json!({
            "type": "object",
            "properties": {
                "mqtt": {"$ref": "#/$defs/Mqtt", "default": {"host": "pi", "port": 1883}},
                "backup": {"anyOf": [{"$ref": "#/$defs/Backup"}, {"type": "null"}]}
            },
            "$defs": {
                "Mqtt": {"type": "object", "required": ["host", "port"], "x-secret": true,
                         "properties": {"host": {"type": "string"},
                                        "port": {"type": "integer", "x-complexity": "simple"}}},
                "Backup": {"type": "object", "x-complexity": "simple",
                           "properties": {"dir": {"type": "string", "default": "/b"}}}
            }
        });
        let (shape, settings) = catalogue(&schema);
        assert_eq!(keys(&settings), ["/mqtt/host", "/mqtt/port", "/backup/dir"]);
        assert_eq!(
            settings[0].default,
            Some(json!("pi")),
            "inherited from the parent default"
        );
        assert!(
            settings[0].secret && settings[1].secret,
            "x-secret on the object covers its keys"
        );
        assert!(settings[0].required);
        assert_eq!(settings[1].complexity, Complexity::Simple);
        assert_eq!(
            settings[2].complexity,
            Complexity::Simple,
            "inherited from the object"
        );
        assert!(shape.property("backup").expect("backup").nullable);
        assert!(!shape.property("mqtt").expect("mqtt").nullable);
    }

    #[test]
    fn treats_a_recursive_type_as_one_object_setting() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {
                "name": {"type": "string"}, "next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        let (_, settings) = catalogue(&schema);
        assert_eq!(keys(&settings), ["/name", "/next"]);
        assert_eq!(settings[1].type_, "object");
    }

    #[test]
    fn treats_maps_arrays_and_empty_objects_as_leaves() {
        let schema = json!({"properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "hosts": {"type": "array", "items": {"type": "object", "properties": {"h": {}}}},
            "empty": {"type": "object", "properties": {}},
            "never": false
        }});
        let (_, settings) = catalogue(&schema);
        assert_eq!(keys(&settings), ["/labels", "/hosts", "/empty"]);
        assert_eq!(settings[0].type_, "object");
        assert_eq!(settings[1].type_, "array");
    }

    #[test]
    fn root_annotations_apply_to_every_setting() {
        let schema = json!({"x-complexity": "simple", "x-restart-required": true,
                            "properties": {"a": {}, "b": {"x-complexity": "advanced"}}});
        let (_, settings) = catalogue(&schema);
        assert_eq!(settings[0].complexity, Complexity::Simple);
        assert_eq!(settings[1].complexity, Complexity::Advanced);
        assert!(settings.iter().all(|s| s.restart_required));
    }

    #[test]
    fn refuses_annotations_of_the_wrong_shape() {
        for (annotation, value) in [
            ("x-secret", json!("true")),
            ("x-restart-required", json!(1)),
            ("x-complexity", json!("expert")),
            ("x-env", json!(["A"])),
            ("x-help", json!(false)),
            ("x-global", json!("mqtt/host")),
            ("x-global", json!("")),
            ("x-global", json!("/a~2")),
            ("x-global", json!(3)),
        ] {
            let schema =
                json!({"properties": {"mqtt": {"properties": {"k": {annotation: value}}}}});
            let resolver = Resolver::new(&schema);
            let root = resolver.view(&schema, &[]).expect("not false");
            let error = build(resolver, &root, &mut Vec::new()).expect_err(annotation);
            let SchemaError::InvalidAnnotation { key, message } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(key, "/mqtt/k");
            assert!(message.starts_with(annotation), "{message}");
        }
    }

    #[test]
    fn parses_and_prints_complexity_names() {
        assert_eq!("Simple".parse::<Complexity>(), Ok(Complexity::Simple));
        assert_eq!("advanced".parse::<Complexity>(), Ok(Complexity::Advanced));
        assert!("expert".parse::<Complexity>().is_err());
        assert_eq!(
            serde_json::to_value(Complexity::Simple).ok(),
            Some(json!("simple"))
        );
        assert_eq!(Complexity::Advanced.to_string(), "advanced");
    }
}
