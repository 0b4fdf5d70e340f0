//! Defaults: filling the keys a document lacks from the schema's `default`s.
//!
//! The rules follow serde's `#[serde(default)]`, which is what the schema describes when
//! schemars derives it: a present value is never touched, only descended into; a missing key
//! takes its own `default` (itself completed from its children's defaults when it is an
//! object); a missing nested object without a `default` of its own is created when any of its
//! children has one, unless the object may be `null`, because an absent optional section means
//! "none", not "all defaults".

use serde_json::{Map, Value};

use crate::catalogue::ObjectShape;

/// Fills the keys `map` lacks from `shape`'s defaults, recursively.
pub(crate) fn fill(shape: &ObjectShape, map: &mut Map<String, Value>) {
    for property in &shape.properties {
        if let Some(present) = map.get_mut(&property.name) {
            if let (Value::Object(inner), Some(object)) = (present, &property.object) {
                fill(object, inner);
            }
            continue;
        }
        if let Some(default) = &property.default {
            let mut value = default.clone();
            if let (Value::Object(inner), Some(object)) = (&mut value, &property.object) {
                fill(object, inner);
            }
            map.insert(property.name.clone(), value);
        } else if let Some(object) = &property.object
            && !property.nullable
        {
            let mut inner = Map::new();
            fill(object, &mut inner);
            if !inner.is_empty() {
                map.insert(property.name.clone(), Value::Object(inner));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::PropertyShape;

    fn leaf(name: &str, default: Option<Value>) -> PropertyShape {
        PropertyShape {
            name: name.to_owned(),
            default,
            nullable: false,
            object: None,
        }
    }

    fn object(name: &str, nullable: bool, properties: Vec<PropertyShape>) -> PropertyShape {
        PropertyShape {
            name: name.to_owned(),
            default: None,
            nullable,
            object: Some(ObjectShape {
                properties,
                required: Vec::new(),
            }),
        }
    }

    fn filled(shape: &ObjectShape, doc: Value) -> Value {
        let Value::Object(mut map) = doc else {
            panic!("test documents are objects")
        };
        fill(shape, &mut map);
        Value::Object(map)
    }

    #[test]
    fn fills_missing_keys_and_keeps_present_ones() {
        let shape = ObjectShape {
            properties: vec![
                leaf("a", Some(json!(1))),
                leaf("b", Some(json!(2))),
                leaf("c", None),
            ],
            required: Vec::new(),
        };
        assert_eq!(filled(&shape, json!({"a": 10})), json!({"a": 10, "b": 2}));
        assert_eq!(
            filled(&shape, json!({"a": null})),
            json!({"a": null, "b": 2})
        );
    }

    #[test]
    fn creates_an_intermediate_object_only_when_a_child_has_a_default() {
        let shape = ObjectShape {
            properties: vec![
                object(
                    "mqtt",
                    false,
                    vec![leaf("host", Some(json!("pi"))), leaf("pass", None)],
                ),
                object("empty", false, vec![leaf("x", None)]),
                object("optional", true, vec![leaf("y", Some(json!(1)))]),
            ],
            required: Vec::new(),
        };
        assert_eq!(filled(&shape, json!({})), json!({"mqtt": {"host": "pi"}}));
        assert_eq!(
            filled(&shape, json!({"mqtt": {"pass": "p"}, "optional": {}})),
            json!({"mqtt": {"pass": "p", "host": "pi"}, "optional": {"y": 1}})
        );
    }

    #[test]
    fn completes_an_object_default_from_its_childrens_defaults() {
        let mut mqtt = object(
            "mqtt",
            false,
            vec![leaf("host", None), leaf("port", Some(json!(1883)))],
        );
        mqtt.default = Some(json!({"host": "pi"}));
        let shape = ObjectShape {
            properties: vec![mqtt],
            required: Vec::new(),
        };
        assert_eq!(
            filled(&shape, json!({})),
            json!({"mqtt": {"host": "pi", "port": 1883}})
        );
    }

    #[test]
    fn leaves_a_value_of_the_wrong_type_alone() {
        let shape = ObjectShape {
            properties: vec![object("mqtt", false, vec![leaf("host", Some(json!("pi")))])],
            required: Vec::new(),
        };
        assert_eq!(
            filled(&shape, json!({"mqtt": "oops"})),
            json!({"mqtt": "oops"})
        );
    }
}
