//! A compiled schema: the validator, the settings catalogue and the object shape, built once
//! per schema and shared (it is `Send + Sync`; hold it in an `Arc`).

use std::collections::HashMap;

use dials_domain::{Document, KeyPath};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Validator};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalogue::{self, ObjectShape, Setting};
use crate::resolve::Resolver;
use crate::violation::{describe_schema_error, violations_from_error};
use crate::{SchemaError, Violation, defaults};

/// One service's JSON Schema, compiled: validates documents, fills defaults, lists settings.
///
/// Building it does all the work a schema needs (meta-schema check, validator compilation,
/// catalogue walk, hash); every method after that only reads.
#[derive(Debug)]
pub struct CompiledSchema {
    raw: Value,
    validator: Validator,
    shape: ObjectShape,
    settings: Vec<Setting>,
    by_key: HashMap<KeyPath, usize>,
    secret_keys: Vec<KeyPath>,
    hash: String,
}

impl CompiledSchema {
    /// Compiles a JSON Schema for one service's config documents.
    ///
    /// The schema is draft 2020-12 unless its `$schema` names another draft `jsonschema` knows
    /// (schemars can be asked for draft-07). It must describe an object, may use `$ref` only
    /// within itself, and its own defaults must satisfy it. Formats (`uri`, `email`, …) are
    /// checked, not just annotated.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        let Value::Object(root) = schema else {
            return Err(SchemaError::NotAnObject {
                found: format!("it is {}", kind_of(schema)),
            });
        };
        crate::limits::check(schema)?;
        let mut options = jsonschema::options().should_validate_formats(true);
        if !root.contains_key("$schema") {
            options = options.with_draft(Draft::Draft202012);
        }
        let validator = options
            .build(schema)
            .map_err(|error| compile_error(&error))?;

        let resolver = Resolver::new(schema);
        let Some(view) = resolver.view(schema, &[]) else {
            return Err(SchemaError::NotAnObject {
                found: "it allows nothing".to_owned(),
            });
        };
        let declares_object = view.properties().is_some() || view.get("type").is_some();
        if !(declares_object && view.allows_type("object")) {
            let found = match view.get("type") {
                Some(t) => format!("its \"type\" is {t}"),
                None => "it has neither \"type\": \"object\" nor \"properties\"".to_owned(),
            };
            return Err(SchemaError::NotAnObject { found });
        }

        let mut settings = Vec::new();
        let shape = catalogue::build(resolver, &view, &mut settings)?;
        let by_key = settings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key.clone(), i))
            .collect();
        let secret_keys = settings
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.key.clone())
            .collect();
        let compiled = Self {
            raw: schema.clone(),
            validator,
            shape,
            settings,
            by_key,
            secret_keys,
            hash: hash_of(schema),
        };

        let mut all_defaults = Map::new();
        defaults::fill(&compiled.shape, &mut all_defaults);
        let broken = compiled.violations(&Value::Object(all_defaults), false);
        if !broken.is_empty() {
            return Err(SchemaError::InvalidDefault { violations: broken });
        }
        Ok(compiled)
    }

    /// The schema as it was given.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Lowercase hex SHA-256 of the schema with object keys sorted, so the same schema written
    /// with its keys in another order hashes the same.
    pub fn hash(&self) -> String {
        self.hash.clone()
    }

    /// Every rule `doc` breaks, sorted by path (then message), one entry per violation.
    ///
    /// `doc` is checked as given; use [`check`](Self::check) to fill defaults first. Offending
    /// values are quoted back in messages, except at or around a secret key.
    pub fn validate(&self, doc: &Value) -> Vec<Violation> {
        self.violations(doc, true)
    }

    /// Fills defaults into `doc`, then validates it: the document to store, or why not.
    pub fn check(&self, doc: &Document) -> Result<Document, Vec<Violation>> {
        let filled = self.fill(doc);
        let violations = self.validate(&filled);
        if violations.is_empty() {
            Ok(into_document(filled))
        } else {
            Err(violations)
        }
    }

    /// `doc` with every key it lacks filled from the schema's defaults, recursively through
    /// nested objects. A present value is never replaced.
    pub fn apply_defaults(&self, doc: &Document) -> Document {
        into_document(self.fill(doc))
    }

    /// The violations a stored document has under this schema (after defaults), e.g. to show
    /// what a new schema version would break.
    pub fn conflicts(&self, doc: &Document) -> Vec<Violation> {
        self.validate(&self.fill(doc))
    }

    /// Every leaf setting the schema defines, in schema order.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// The setting at exactly `key`.
    pub fn setting(&self, key: &KeyPath) -> Option<&Setting> {
        self.by_key.get(key).map(|&i| &self.settings[i])
    }

    /// The keys marked `x-secret` (directly or through an enclosing object).
    pub fn secret_keys(&self) -> Vec<KeyPath> {
        self.secret_keys.clone()
    }

    /// Whether `key` is a secret key or lies within one (a map-valued secret covers its
    /// entries).
    pub fn is_secret(&self, key: &KeyPath) -> bool {
        self.secret_keys.iter().any(|secret| key.is_within(secret))
    }

    /// The object shape defaults and migration walk.
    pub(crate) fn shape(&self) -> &ObjectShape {
        &self.shape
    }

    /// The compiled validator.
    pub(crate) fn validator(&self) -> &Validator {
        &self.validator
    }

    /// `doc` as a JSON object with defaults filled.
    pub(crate) fn fill(&self, doc: &Document) -> Value {
        let mut map = doc.as_map().clone();
        defaults::fill(&self.shape, &mut map);
        Value::Object(map)
    }

    /// Whether the offending value at `path` must stay out of messages: it is a secret, lies
    /// within one, or contains one.
    pub(crate) fn hides_value_at(&self, path: &str) -> bool {
        match KeyPath::parse(path) {
            Ok(at) => self
                .secret_keys
                .iter()
                .any(|s| at.is_within(s) || s.is_within(&at)),
            // Paths come from the validator and are well formed; if one is not, say less.
            Err(_) => true,
        }
    }

    fn violations(&self, doc: &Value, include_required: bool) -> Vec<Violation> {
        if self.validator.is_valid(doc) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for error in self.validator.iter_errors(doc) {
            if !include_required && matches!(error.kind(), ValidationErrorKind::Required { .. }) {
                continue;
            }
            violations_from_error(&error, &|path| self.hides_value_at(path), &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Wraps a JSON object as a document.
pub(crate) fn into_document(value: Value) -> Document {
    // Callers pass the object they built from a document plus schema defaults.
    match value {
        Value::Object(map) => Document::from_map(map),
        // Unreachable: every caller builds an object; an empty document is the safe answer.
        _ => Document::new(),
    }
}

fn compile_error(error: &jsonschema::ValidationError<'_>) -> SchemaError {
    match error.kind() {
        ValidationErrorKind::Referencing(jsonschema::ReferencingError::UnknownSpecification {
            specification,
        }) => SchemaError::UnknownDialect {
            dialect: specification.clone(),
        },
        ValidationErrorKind::Referencing(inner) => {
            let message = match inner {
                jsonschema::ReferencingError::Unretrievable { uri, .. } => format!(
                    "{uri} lies outside this schema; only references within it (\"#/$defs/…\") \
                     are supported"
                ),
                jsonschema::ReferencingError::PointerToNowhere { pointer } => {
                    format!("#{pointer} does not exist in this schema")
                }
                other => other.to_string(),
            };
            SchemaError::UnresolvableReference { message }
        }
        _ => {
            let (path, message) = describe_schema_error(error);
            SchemaError::Invalid { path, message }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(true) => "the schema `true`, which allows anything",
        Value::Bool(false) => "the schema `false`, which allows nothing",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Hex SHA-256 of `value` serialized with every object's keys sorted.
fn hash_of(value: &Value) -> String {
    let mut canonical = Vec::new();
    write_sorted(value, &mut canonical);
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_sorted(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, inner)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                out.push(b':');
                write_sorted(inner, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}
