//! The layers one running instance's config is made of, merged in one order everywhere (the
//! manager's effective view, the client libraries): schema defaults < `global` (only the keys
//! the schema takes from it with `x-global`) < the service's document < the instance's
//! override document. The instance's environment (`x-env`) comes last, in the client.
//!
//! Objects merge key by key; any other value (a string, a list, `null`) replaces what a lower
//! layer had. Each leaf of the result is attributed to the highest layer that set it.

use std::collections::BTreeMap;

use dials_domain::{Document, KeyPath};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CompiledSchema;

/// Where a key's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The schema's default.
    Default,
    /// The `global` document, through the key's `x-global`.
    Global,
    /// The service's own document.
    Service,
    /// The instance's override document.
    Instance,
    /// The instance's environment (`x-env`); only the instance knows it.
    Env,
}

impl Layer {
    /// The layer's name as the API and reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Default => "default",
            Layer::Global => "global",
            Layer::Service => "service",
            Layer::Instance => "instance",
            Layer::Env => "env",
        }
    }

    /// Reads a layer's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "default" => Layer::Default,
            "global" => Layer::Global,
            "service" => Layer::Service,
            "instance" => Layer::Instance,
            "env" => Layer::Env,
            _ => return None,
        })
    }
}

/// The documents above the schema's defaults, each absent when there is none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layers<'a> {
    /// The `global` document (read only where the schema says `x-global`).
    pub global: Option<&'a Document>,
    /// The service's document.
    pub service: Option<&'a Document>,
    /// The instance's override document (partial).
    pub instance: Option<&'a Document>,
}

/// The merged document and where each of its leaves comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The layers merged, defaults not yet filled (a write validates this with
    /// [`CompiledSchema::check`], which fills them).
    pub document: Document,
    /// The layer of every leaf set by a document (`global`, `service`, `instance`); a leaf
    /// missing here comes from the defaults.
    pub sources: BTreeMap<KeyPath, Layer>,
}

impl Merged {
    /// The merged document with the schema's defaults filled, and the layer of each of its
    /// leaves (`default` for those no document set).
    pub fn with_defaults(&self, schema: &CompiledSchema) -> (Document, BTreeMap<KeyPath, Layer>) {
        let filled = schema.apply_defaults(&self.document);
        let sources = filled
            .leaves()
            .into_keys()
            .map(|key| {
                let layer = self.layer_of(&key);
                (key, layer)
            })
            .collect();
        (filled, sources)
    }

    /// The layer that set `key` (or an object above it), else `default`.
    pub fn layer_of(&self, key: &KeyPath) -> Layer {
        if let Some(layer) = self.sources.get(key) {
            return *layer;
        }
        self.sources
            .iter()
            .filter(|(set, _)| key.is_within(set))
            .map(|(_, layer)| *layer)
            .max()
            .unwrap_or(Layer::Default)
    }
}

impl CompiledSchema {
    /// The keys this schema takes from `global`: (key in the service's document, key in the
    /// global document).
    pub fn global_keys(&self) -> Vec<(KeyPath, KeyPath)> {
        self.settings()
            .iter()
            .filter_map(|s| Some((s.key.clone(), s.global.clone()?)))
            .collect()
    }

    /// A service's own document with the schema's defaults filled, except the keys it takes from
    /// `global` and does not set itself: their defaults lie below `global`, so they are not the
    /// service's values. A read shows the document this way, so that writing back what was read
    /// (a form saved whole, an edited file) does not pin a global setting to its default.
    pub fn service_defaults(&self, document: &Document) -> Document {
        let mut filled = self.apply_defaults(document);
        for (key, _) in self.global_keys() {
            if document.get(&key).is_none() {
                filled.remove(&key);
            }
        }
        filled
    }

    /// Merges the layers in order (see the module's documentation).
    pub fn merge_layers(&self, layers: Layers<'_>) -> Merged {
        let mut document = Document::new();
        let mut sources = BTreeMap::new();
        if let Some(global) = layers.global {
            for (key, from) in self.global_keys() {
                if let Some(value) = global.get(&from) {
                    document.set(&key, value.clone());
                    sources.insert(key, Layer::Global);
                }
            }
        }
        for (layer, doc) in [
            (Layer::Service, layers.service),
            (Layer::Instance, layers.instance),
        ] {
            let Some(doc) = doc else { continue };
            for key in doc.leaves().into_keys() {
                // A leaf set here replaces whatever lower layer set it or a key below it.
                sources.retain(|set: &KeyPath, _| !set.is_within(&key));
                sources.insert(key, layer);
            }
            let mut merged = document.into_value();
            deep_merge(&mut merged, &doc.to_value());
            document = Document::from_value(merged).unwrap_or_default();
        }
        Merged { document, sources }
    }
}

/// Merges `over` into `base`: objects key by key, anything else replaces.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(slot) if slot.is_object() && value.is_object() => deep_merge(slot, value),
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Document {
        Document::from_value(v).unwrap()
    }

    fn schema() -> CompiledSchema {
        CompiledSchema::compile(&json!({
            "type": "object",
            "properties": {
                "mqtt": {"type": "object", "properties": {
                    "host": {"type": "string", "default": "localhost", "x-global": true},
                    "port": {"type": "integer", "default": 1883, "x-global": "/broker/port"}
                }},
                "level": {"type": "string", "default": "info", "x-global": "/log/level"},
                "gain": {"type": "number", "default": 1.0}
            }
        }))
        .unwrap()
    }

    #[test]
    fn each_layer_wins_over_the_ones_below_and_each_key_names_its_layer() {
        let schema = schema();
        let global = doc(
            json!({"mqtt": {"host": "broker.lan"}, "broker": {"port": 8883},
                                "log": {"level": "debug"}, "unrelated": 1}),
        );
        let service = doc(json!({"level": "warn", "gain": 2.0}));
        let instance = doc(json!({"gain": 3.5}));
        let merged = schema.merge_layers(Layers {
            global: Some(&global),
            service: Some(&service),
            instance: Some(&instance),
        });
        let (filled, sources) = merged.with_defaults(&schema);
        assert_eq!(
            filled.into_value(),
            json!({"mqtt": {"host": "broker.lan", "port": 8883}, "level": "warn", "gain": 3.5})
        );
        let named: BTreeMap<String, &str> = sources
            .iter()
            .map(|(k, l)| (k.to_string(), l.as_str()))
            .collect();
        assert_eq!(
            named,
            BTreeMap::from([
                ("/gain".to_owned(), "instance"),
                ("/level".to_owned(), "service"),
                ("/mqtt/host".to_owned(), "global"),
                ("/mqtt/port".to_owned(), "global"),
            ])
        );
    }

    #[test]
    fn keys_not_taken_from_global_ignore_it_and_fall_back_to_defaults() {
        let schema = schema();
        let global = doc(json!({"gain": 9.0}));
        let merged = schema.merge_layers(Layers {
            global: Some(&global),
            ..Layers::default()
        });
        let (filled, sources) = merged.with_defaults(&schema);
        assert_eq!(
            filled.get(&KeyPath::parse("/gain").unwrap()),
            Some(&json!(1.0))
        );
        assert!(sources.values().all(|l| *l == Layer::Default));
    }
}
