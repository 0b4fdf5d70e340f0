//! Schema views: what one subschema says once its local `$ref`, `allOf` and nullable
//! `anyOf`/`oneOf` wrappers are folded in.
//!
//! Validation is `jsonschema`'s job; this module serves the things `jsonschema` does not do —
//! defaults, the settings catalogue, migration — which need to read a schema the way schemars
//! writes it: `{"$ref": "#/$defs/Mqtt", "default": {…}}` for a nested struct,
//! `{"anyOf": [{"$ref": …}, {"type": "null"}]}` for an `Option` of one.
//!
//! Only references inside the same schema (`#/$defs/…`, `#/definitions/…`, `#`) are followed;
//! `jsonschema` has already refused any other kind when the schema was compiled. A `$ref` that
//! points back at a schema being expanded further up (a recursive type) is not followed again,
//! so every walk over views ends.

use dials_domain::MAX_DEPTH;
use serde_json::{Map, Value};

/// The folded keywords of one subschema.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Keywords, with the subschema's own keywords winning over those reached through `$ref`
    /// or `allOf`, except `properties` and `required`, which are unions.
    pub map: Map<String, Value>,
    /// `null` is allowed besides what `map` describes (`anyOf: [X, {"type": "null"}]`).
    pub nullable: bool,
    /// References expanded to build this view; a walk below this view must not expand them
    /// again.
    pub refs: Vec<String>,
    /// A reference here points back at a schema already being expanded: the view stops there
    /// and must be treated as opaque.
    pub recursive: bool,
}

impl View {
    /// The keyword `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// The keyword `name` as a string.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }

    /// The `properties` object, if any.
    pub fn properties(&self) -> Option<&Map<String, Value>> {
        self.map.get("properties").and_then(Value::as_object)
    }

    /// The names listed in `required`.
    pub fn required(&self) -> Vec<String> {
        match self.map.get("required") {
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `type` allows `name`, or is absent.
    pub fn allows_type(&self, name: &str) -> bool {
        match self.map.get("type") {
            None => true,
            Some(Value::String(t)) => t == name,
            Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some(name)),
            Some(_) => false,
        }
    }

    /// Whether this view is an object with named properties to walk into (rather than a leaf).
    pub fn is_container(&self) -> bool {
        !self.recursive
            && self.properties().is_some_and(|p| !p.is_empty())
            && self.allows_type("object")
    }
}

/// Folds subschemas of one root schema into [`View`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolver<'s> {
    root: &'s Value,
}

impl<'s> Resolver<'s> {
    /// A resolver for references inside `root`.
    pub fn new(root: &'s Value) -> Self {
        Self { root }
    }

    /// The view of `node`, with `open` the references already being expanded by the walk that
    /// reached it. `None` for the `false` schema, which allows nothing.
    pub fn view(&self, node: &'s Value, open: &[String]) -> Option<View> {
        let mut view = View::default();
        let mut chain = Vec::new();
        if self.fold(node, open, &mut view, &mut chain) {
            Some(view)
        } else {
            None
        }
    }

    /// Folds `node` into `view`; false when `node` is the `false` schema. `chain` holds the
    /// references being expanded within this view, so a cycle among them is caught too.
    fn fold(
        &self,
        node: &'s Value,
        open: &[String],
        view: &mut View,
        chain: &mut Vec<&'s str>,
    ) -> bool {
        let map = match node {
            Value::Object(map) => map,
            Value::Bool(allowed) => return *allowed,
            // Not a schema; the meta-schema check has refused it already.
            _ => return true,
        };
        if let Some(Value::String(reference)) = map.get("$ref") {
            // A reference already expanded above is read for its keywords (type, title…) but
            // marked recursive so no walk descends into it again; one already expanded within
            // this view is a cycle of bare references and is not read at all.
            // A chain longer than the depth limit is refused before any view is built
            // (`limits::check`); stopping here too keeps this walk bounded on its own.
            if chain.contains(&reference.as_str()) || chain.len() >= MAX_DEPTH {
                view.recursive = true;
            } else if let Some(target) = self.lookup(reference) {
                view.recursive |= open.contains(reference);
                if !view.refs.contains(reference) {
                    view.refs.push(reference.clone());
                }
                chain.push(reference);
                let allowed = self.fold(target, open, view, chain);
                chain.pop();
                if !allowed {
                    return false;
                }
            }
        }
        if let Some(Value::Array(branches)) = map.get("allOf") {
            for branch in branches {
                if !self.fold(branch, open, view, chain) {
                    return false;
                }
            }
        }
        let mut folded_alternatives = Vec::new();
        for keyword in ["anyOf", "oneOf"] {
            let Some(Value::Array(branches)) = map.get(keyword) else {
                continue;
            };
            let (nulls, others): (Vec<&Value>, Vec<&Value>) =
                branches.iter().partition(|b| only_null(b));
            if let [single] = others.as_slice() {
                view.nullable |= !nulls.is_empty();
                folded_alternatives.push(keyword);
                self.fold(single, open, view, chain);
            }
        }
        for (keyword, value) in map {
            match keyword.as_str() {
                "$ref" | "allOf" | "$defs" | "definitions" => {}
                k if folded_alternatives.contains(&k) => {}
                "properties" => {
                    if let Value::Object(own) = value {
                        let merged = view
                            .map
                            .entry("properties")
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(merged) = merged {
                            for (name, schema) in own {
                                merged.insert(name.clone(), schema.clone());
                            }
                        }
                    }
                }
                "required" => {
                    if let Value::Array(own) = value {
                        let merged = view
                            .map
                            .entry("required")
                            .or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(merged) = merged {
                            for name in own {
                                if !merged.contains(name) {
                                    merged.push(name.clone());
                                }
                            }
                        }
                    }
                }
                _ => {
                    view.map.insert(keyword.clone(), value.clone());
                }
            }
        }
        true
    }

    /// The subschema a local reference names.
    fn lookup(&self, reference: &str) -> Option<&'s Value> {
        lookup_local(self.root, reference)
    }
}

/// The subschema a local reference names inside `root`: `#`, `#/json/pointer`, or either
/// behind the root's own `$id`.
pub(crate) fn lookup_local<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let fragment = match reference.split_once('#') {
        Some(("", fragment)) => fragment,
        Some((base, fragment)) if Some(base) == root.get("$id").and_then(Value::as_str) => fragment,
        _ => return None,
    };
    let pointer = percent_decode(fragment);
    if pointer.is_empty() {
        Some(root)
    } else if pointer.starts_with('/') {
        root.pointer(&pointer)
    } else {
        None
    }
}

/// Whether a subschema allows only `null` (`{"type": "null"}`, `{"const": null}`,
/// `{"enum": [null]}`).
fn only_null(schema: &Value) -> bool {
    let Value::Object(map) = schema else {
        return false;
    };
    map.get("type").and_then(Value::as_str) == Some("null")
        || map.get("const") == Some(&Value::Null)
        || map
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| e == &[Value::Null])
}

/// Decodes `%XX` escapes in a URI fragment; anything malformed is kept as written.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = input.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn follows_a_ref_and_lets_sibling_keywords_win() {
        let root = json!({
            "$defs": {"Port": {"type": "integer", "description": "from the def", "maximum": 9}},
            "properties": {"port": {"$ref": "#/$defs/Port", "description": "own"}}
        });
        let resolver = Resolver::new(&root);
        let view = resolver
            .view(&root["properties"]["port"], &[])
            .expect("not false");
        assert_eq!(view.str("type"), Some("integer"));
        assert_eq!(view.str("description"), Some("own"));
        assert_eq!(view.get("maximum"), Some(&json!(9)));
        assert_eq!(view.refs, ["#/$defs/Port"]);
    }

    #[test]
    fn unwraps_a_nullable_any_of_and_remembers_null() {
        let root = json!({
            "definitions": {"Mqtt": {"type": "object", "properties": {"host": {}}}},
            "properties": {"m": {"anyOf": [{"$ref": "#/definitions/Mqtt"}, {"type": "null"}]}}
        });
        let view = Resolver::new(&root)
            .view(&root["properties"]["m"], &[])
            .expect("not false");
        assert!(view.nullable);
        assert!(view.is_container());
    }

    #[test]
    fn merges_properties_and_required_across_all_of() {
        let root = json!({
            "allOf": [
                {"properties": {"a": {}}, "required": ["a"]},
                {"properties": {"b": {}}, "required": ["b", "a"]}
            ],
            "properties": {"c": {}}
        });
        let view = Resolver::new(&root).view(&root, &[]).expect("not false");
        let names: Vec<_> = view
            .properties()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(view.required(), ["a", "b"]);
    }

    #[test]
    fn stops_at_a_recursive_reference() {
        let root = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node"
        });
        let resolver = Resolver::new(&root);
        let top = resolver.view(&root, &[]).expect("not false");
        let next = resolver.view(&top.properties().expect("props")["next"], &top.refs);
        assert!(next.expect("not false").recursive);
    }

    #[test]
    fn decodes_percent_escapes_in_references() {
        let root = json!({"$defs": {"a b": {"title": "spaced"}}, "$ref": "#/$defs/a%20b"});
        let view = Resolver::new(&root).view(&root, &[]).expect("not false");
        assert_eq!(view.str("title"), Some("spaced"));
    }

    #[test]
    fn reports_the_false_schema_as_allowing_nothing() {
        let root = json!({"properties": {"gone": false}});
        assert!(
            Resolver::new(&root)
                .view(&root["properties"]["gone"], &[])
                .is_none()
        );
    }
}
