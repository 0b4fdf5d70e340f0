//! The crate's error type: every way a schema can be refused when it is compiled.

use crate::Violation;

/// Why a JSON Schema could not be accepted as a service's schema.
///
/// Every variant carries a message a person can act on; the server sends it back as the detail
/// of a 422 when an admin uploads a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema breaks the JSON Schema meta-schema (a misspelt `type`, a `minimum` that is not
    /// a number, a `pattern` that is not a regular expression…).
    #[error("the schema is not valid JSON Schema: at {}: {message}", describe_location(.path))]
    Invalid {
        /// JSON Pointer, inside the schema, of the offending keyword's value.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The schema names a `$schema` dialect that is not a JSON Schema draft we know.
    #[error(
        "the schema declares $schema {dialect:?}, which is not a known JSON Schema draft; \
         use \"https://json-schema.org/draft/2020-12/schema\" or leave $schema out"
    )]
    UnknownDialect {
        /// The `$schema` value as written.
        dialect: String,
    },
    /// A `$ref` that cannot be followed: it points outside the schema or at nothing.
    #[error("the schema has a $ref that cannot be followed: {message}")]
    UnresolvableReference {
        /// What could not be resolved, and why.
        message: String,
    },
    /// Subschemas nest, or `$ref`s chain, deeper than the limit.
    #[error(
        "the schema nests subschemas (counting each $ref followed as one level) deeper than the \
         limit of {limit} levels"
    )]
    TooDeep {
        /// The limit, `dials_domain::MAX_DEPTH`.
        limit: usize,
    },
    /// With every `$ref` expanded in place, the schema is larger than the limit.
    #[error(
        "the schema is too large once its $refs are expanded: more than {limit} JSON values; \
         refer to shared definitions less often"
    )]
    TooLarge {
        /// The limit, in JSON values.
        limit: usize,
    },
    /// A recursive `$ref` that would make validation loop or explode.
    #[error("the schema has a recursive $ref that cannot be validated safely: {message}")]
    RecursiveReference {
        /// Which reference, and why.
        message: String,
    },
    /// A config document is a JSON object, so its schema must describe one.
    #[error(
        "the schema must describe a JSON object (\"type\": \"object\" or \"properties\" at the \
         root), but {found}"
    )]
    NotAnObject {
        /// What the root describes instead.
        found: String,
    },
    /// A dials annotation (`x-secret`, `x-restart-required`, `x-complexity`, `x-env`,
    /// `x-help`) has the wrong shape, e.g. `"x-secret": "yes"`.
    #[error("the schema's annotation at {}: {message}", describe_location(.key))]
    InvalidAnnotation {
        /// The key (JSON Pointer into a document) whose schema carries the annotation.
        key: String,
        /// Which annotation, what it must be and what it is.
        message: String,
    },
    /// Some `default` in the schema fails the schema itself, so a document that relies on it
    /// could never be stored.
    #[error("the schema's own defaults fail it: {}", list_violations(.violations))]
    InvalidDefault {
        /// Where each bad default lands in a document, and what is wrong with it.
        violations: Vec<Violation>,
    },
}

fn describe_location(path: &str) -> String {
    if path.is_empty() {
        "the root".to_owned()
    } else {
        path.to_owned()
    }
}

fn list_violations(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
