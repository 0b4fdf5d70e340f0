//! Violations: one broken rule at one key, worded for people rather than for schema authors.
//!
//! `jsonschema` reports errors in schema vocabulary ("is not valid under any of the schemas
//! listed in the 'anyOf' keyword") and at the location of the object that holds the rule. This
//! module turns each error into a [`Violation`] whose path is the key a person has to fix and
//! whose message reads as the end of a sentence about that key.

use std::fmt;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule a document breaks, at one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// JSON Pointer of the offending key: the missing property for `required`, the extra
    /// property for `additionalProperties`, the value's own location otherwise. Empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong, e.g. `must be at most 1.0 (got 1.5)` or `is not a known setting`.
    pub message: String,
}

impl Violation {
    /// A violation at `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "the document {}", self.message)
        } else {
            write!(f, "{} {}", self.path, self.message)
        }
    }
}

/// Longest rendering of an offending value quoted back in a message, in characters.
const MAX_QUOTED_CHARS: usize = 60;

/// Turns one `jsonschema` error into violations (several for `additionalProperties`, which
/// reports all extra properties of an object at once).
///
/// `hide_value` says the offending value must not be quoted back: it is, or contains, a secret.
pub(crate) fn violations_from_error(
    error: &ValidationError<'_>,
    hide_value: &dyn Fn(&str) -> bool,
    out: &mut Vec<Violation>,
) {
    visit_errors(error, &mut |error| one_error(error, hide_value, out));
}

/// Calls `visit` with `error`, or, when `error` is an `anyOf`/`oneOf` with one real
/// alternative, with that alternative's errors (recursively).
///
/// Branches that only say "not null" are set aside: `anyOf: [X, {"type": "null"}]` is how
/// schemars writes an `Option`, and a person needs X's errors, at X's own paths, rather than
/// "matches none of the alternatives".
pub(crate) fn visit_errors(
    error: &ValidationError<'_>,
    visit: &mut dyn FnMut(&ValidationError<'_>),
) {
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } =
        error.kind()
    {
        let mut real = context.iter().filter(|branch| !only_rejects_null(branch));
        if let (Some(only), None) = (real.next(), real.next())
            && !only.is_empty()
        {
            for inner in only {
                visit_errors(inner, visit);
            }
            return;
        }
    }
    visit(error);
}

fn one_error(
    error: &ValidationError<'_>,
    hide_value: &dyn Fn(&str) -> bool,
    out: &mut Vec<Violation>,
) {
    let at = error.instance_path().as_str();
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            out.push(Violation::new(
                child_path(at, &property_name(property)),
                "is required",
            ));
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                out.push(Violation::new(
                    child_path(at, name),
                    "is not a known setting",
                ));
            }
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let hide = hide_value(at);
            out.push(Violation::new(at, alternatives(error, context, hide)));
        }
        kind => {
            let hide = hide_value(at);
            out.push(Violation::new(at, describe(kind, error.instance(), hide)));
        }
    }
}

/// The message for a value that matches none of several real alternatives (`context` holds
/// each branch's errors): the constants when every branch is one (how schemars writes an enum
/// whose variants carry doc comments), else that no form matched.
fn alternatives(
    error: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    hide: bool,
) -> String {
    let constants: Option<Vec<String>> = context
        .iter()
        .filter(|branch| !only_rejects_null(branch))
        .map(|branch| match branch.as_slice() {
            [single] => match single.kind() {
                ValidationErrorKind::Constant { expected_value } => Some(quote(expected_value)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    match constants {
        Some(listed) if !listed.is_empty() => {
            let got = if hide {
                String::new()
            } else {
                format!(" (got {})", quote(error.instance()))
            };
            format!("must be one of {}{got}", listed.join(", "))
        }
        _ => "does not match any of the allowed forms".to_owned(),
    }
}

/// Whether a branch's errors only say the value is not `null`.
fn only_rejects_null(branch: &[ValidationError<'_>]) -> bool {
    match branch {
        [single] => match single.kind() {
            ValidationErrorKind::Type {
                kind: TypeKind::Single(JsonType::Null),
            } => true,
            ValidationErrorKind::Constant { expected_value } => expected_value.is_null(),
            ValidationErrorKind::Enum { options } => {
                options.as_array().is_some_and(|o| o == &[Value::Null])
            }
            _ => false,
        },
        _ => false,
    }
}

/// The message for a rule broken by `instance` itself.
fn describe(kind: &ValidationErrorKind, instance: &Value, hide: bool) -> String {
    let got = |what: String| {
        if hide {
            String::new()
        } else {
            format!(" (got {what})")
        }
    };
    let got_value = || got(quote(instance));
    match kind {
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_phrase(*t).to_owned(),
                TypeKind::Multiple(set) => {
                    let mut names: Vec<&str> = set
                        .iter()
                        .filter(|t| *t != JsonType::Null)
                        .map(|t| type_phrase(t))
                        .collect();
                    if set.contains(JsonType::Null) {
                        names.push("null");
                    }
                    join_alternatives(&names)
                }
            };
            // A number is never secret-shaped enough to matter, but keep the rule uniform.
            let found = match instance {
                Value::Number(_) if !hide => instance.to_string(),
                other => dials_domain::json_type(other).to_owned(),
            };
            format!("must be {expected} (got {found})")
        }
        ValidationErrorKind::Enum { options } => {
            let listed = match options.as_ref() {
                Value::Array(values) => values.iter().map(quote).collect::<Vec<_>>().join(", "),
                other => quote(other),
            };
            format!("must be one of {listed}{}", got_value())
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("must be {}{}", quote(expected_value), got_value())
        }
        ValidationErrorKind::Minimum { limit } => {
            format!("must be at least {limit}{}", got_value())
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("must be at most {limit}{}", got_value())
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be greater than {limit}{}", got_value())
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be less than {limit}{}", got_value())
        }
        ValidationErrorKind::MultipleOf { multiple_of, .. } => {
            format!("must be a multiple of {multiple_of}{}", got_value())
        }
        ValidationErrorKind::MinLength { limit } => format!(
            "must be at least {limit} {} long{}",
            plural(*limit, "character"),
            got(format!("{} characters", char_count(instance)))
        ),
        ValidationErrorKind::MaxLength { limit } => format!(
            "must be at most {limit} {} long{}",
            plural(*limit, "character"),
            got(format!("{} characters", char_count(instance)))
        ),
        ValidationErrorKind::Pattern { pattern } => {
            format!("must match the pattern {pattern}{}", got_value())
        }
        ValidationErrorKind::Format { format } => {
            format!("must be a valid {format}{}", got_value())
        }
        ValidationErrorKind::MinItems { limit } => format!(
            "must have at least {limit} {}{}",
            plural(*limit, "item"),
            got(count_phrase(instance, "item"))
        ),
        ValidationErrorKind::MaxItems { limit } => format!(
            "must have at most {limit} {}{}",
            plural(*limit, "item"),
            got(count_phrase(instance, "item"))
        ),
        ValidationErrorKind::MinProperties { limit } => format!(
            "must have at least {limit} {}{}",
            plural(*limit, "key"),
            got(count_phrase(instance, "key"))
        ),
        ValidationErrorKind::MaxProperties { limit } => format!(
            "must have at most {limit} {}{}",
            plural(*limit, "key"),
            got(count_phrase(instance, "key"))
        ),
        ValidationErrorKind::UniqueItems => "must not contain the same item twice".to_owned(),
        ValidationErrorKind::Contains => "must contain at least one matching item".to_owned(),
        ValidationErrorKind::AdditionalItems { limit } => {
            format!(
                "must have at most {limit} {}",
                plural(*limit as u64, "item")
            )
        }
        ValidationErrorKind::UnevaluatedItems { unexpected } => {
            format!(
                "has {} unexpected {}",
                unexpected.len(),
                plural(unexpected.len() as u64, "item")
            )
        }
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            "does not match any of the allowed forms".to_owned()
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the allowed forms".to_owned()
        }
        ValidationErrorKind::Not { .. } => "is a value that is not allowed here".to_owned(),
        ValidationErrorKind::FalseSchema => "is not allowed".to_owned(),
        ValidationErrorKind::PropertyNames { error } => {
            format!(
                "has a key whose name {}",
                describe(error.kind(), error.instance(), hide)
            )
        }
        ValidationErrorKind::ContentEncoding { content_encoding } => {
            format!("must be {content_encoding}-encoded")
        }
        ValidationErrorKind::FromUtf8 { .. } => "must decode to valid UTF-8 text".to_owned(),
        ValidationErrorKind::ContentMediaType { content_media_type } => {
            format!("must be a valid {content_media_type} document")
        }
        ValidationErrorKind::Custom { message, .. } => message.clone(),
        ValidationErrorKind::BacktrackLimitExceeded { .. }
        | ValidationErrorKind::RegexEngineFailure { .. } => {
            "could not be checked against its pattern (the pattern is too costly)".to_owned()
        }
        ValidationErrorKind::Referencing(_) => {
            "could not be checked: the schema has a reference that cannot be followed".to_owned()
        }
        ValidationErrorKind::Required { .. }
        | ValidationErrorKind::AdditionalProperties { .. }
        | ValidationErrorKind::UnevaluatedProperties { .. } => {
            // Reported per property by `violations_from_error`; kept total for completeness.
            "is not a valid object".to_owned()
        }
    }
}

/// The message for an error found in a schema by the meta-schema, drilling into `anyOf` so the
/// author sees the concrete rule (`must be one of "array", "boolean", …`) rather than the
/// combinator.
pub(crate) fn describe_schema_error(error: &ValidationError<'_>) -> (String, String) {
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } =
        error.kind()
        && let Some(first) = context.iter().flatten().next()
    {
        return describe_schema_error(first);
    }
    let mut out = Vec::new();
    violations_from_error(error, &|_| false, &mut out);
    match out.into_iter().next() {
        Some(v) => (v.path, v.message),
        None => (error.instance_path().as_str().to_owned(), error.to_string()),
    }
}

/// `parent` extended by the unescaped token `name`, as a JSON Pointer.
pub(crate) fn child_path(parent: &str, name: &str) -> String {
    let mut out = String::with_capacity(parent.len() + name.len() + 1);
    out.push_str(parent);
    out.push('/');
    out.push_str(&name.replace('~', "~0").replace('/', "~1"));
    out
}

fn property_name(property: &Value) -> String {
    match property {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn type_phrase(t: JsonType) -> &'static str {
    match t {
        JsonType::Array => "an array",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Null => "null",
        JsonType::Number => "a number",
        JsonType::Object => "an object",
        JsonType::String => "a string",
    }
}

fn join_alternatives(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A value as JSON, shortened so a message stays one readable line.
fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_QUOTED_CHARS {
        return text;
    }
    let mut short: String = text.chars().take(MAX_QUOTED_CHARS - 1).collect();
    short.push('…');
    short
}

fn char_count(value: &Value) -> usize {
    match value {
        Value::String(s) => s.chars().count(),
        _ => 0,
    }
}

fn count_phrase(value: &Value, noun: &str) -> String {
    let n = match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    };
    format!("{n} {}", plural(n as u64, noun))
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn violations(schema: Value, instance: Value) -> Vec<Violation> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("test schema compiles");
        let mut out = Vec::new();
        for error in validator.iter_errors(&instance) {
            violations_from_error(&error, &|_| false, &mut out);
        }
        out
    }

    #[test]
    fn words_range_errors_with_the_limit_and_the_value() {
        let v = violations(
            json!({"properties": {"t": {"maximum": 1.0}}}),
            json!({"t": 1.5}),
        );
        assert_eq!(v, [Violation::new("/t", "must be at most 1.0 (got 1.5)")]);
        let v = violations(
            json!({"properties": {"t": {"exclusiveMinimum": 0}}}),
            json!({"t": 0}),
        );
        assert_eq!(v, [Violation::new("/t", "must be greater than 0 (got 0)")]);
    }

    #[test]
    fn lists_the_allowed_values_of_an_enum() {
        let v = violations(
            json!({"properties": {"p": {"enum": ["piper", "kokoro"]}}}),
            json!({"p": "espeak"}),
        );
        assert_eq!(
            v,
            [Violation::new(
                "/p",
                r#"must be one of "piper", "kokoro" (got "espeak")"#
            )]
        );
    }

    #[test]
    fn names_expected_and_found_types_with_null_last() {
        let v = violations(
            json!({"properties": {"n": {"type": "number"}}}),
            json!({"n": "x"}),
        );
        assert_eq!(v, [Violation::new("/n", "must be a number (got a string)")]);
        let v = violations(
            json!({"properties": {"n": {"type": ["null", "integer", "string"]}}}),
            json!({"n": 5.5}),
        );
        assert_eq!(
            v,
            [Violation::new(
                "/n",
                "must be an integer, a string or null (got 5.5)"
            )]
        );
    }

    #[test]
    fn points_required_and_unknown_properties_at_the_property_itself() {
        let schema = json!({
            "properties": {"mqtt": {"type": "object", "required": ["host"],
                                    "additionalProperties": false, "properties": {"host": {}}}}
        });
        let mut v = violations(schema, json!({"mqtt": {"a/b": 1, "c": 2}}));
        v.sort();
        assert_eq!(
            v,
            [
                Violation::new("/mqtt/a~1b", "is not a known setting"),
                Violation::new("/mqtt/c", "is not a known setting"),
                Violation::new("/mqtt/host", "is required"),
            ]
        );
    }

    #[test]
    fn says_no_form_matched_when_several_real_alternatives_fail() {
        let v = violations(
            json!({"properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}),
            json!({"n": true}),
        );
        assert_eq!(
            v,
            [Violation::new(
                "/n",
                "does not match any of the allowed forms"
            )]
        );
    }

    #[test]
    fn reports_the_inner_errors_of_an_optional_object_at_their_own_paths() {
        let v = violations(
            json!({
                "$defs": {"B": {"type": "object", "properties": {"dir": {"type": "string"}}}},
                "properties": {"b": {"anyOf": [{"$ref": "#/$defs/B"}, {"type": "null"}]}}
            }),
            json!({"b": {"dir": 5}}),
        );
        assert_eq!(v, [Violation::new("/b/dir", "must be a string (got 5)")]);
    }

    #[test]
    fn leaves_a_hidden_value_out_of_the_message() {
        let validator = jsonschema::validator_for(&json!({"properties": {"k": {"pattern": "^x"}}}))
            .expect("compiles");
        let instance = json!({"k": "hunter2"});
        let mut out = Vec::new();
        for error in validator.iter_errors(&instance) {
            violations_from_error(&error, &|_| true, &mut out);
        }
        assert_eq!(out, [Violation::new("/k", "must match the pattern ^x")]);
    }

    #[test]
    fn shortens_long_values_quoted_back() {
        let long = "x".repeat(200);
        let v = violations(
            json!({"properties": {"s": {"enum": ["a"]}}}),
            json!({"s": long}),
        );
        assert!(v[0].message.ends_with("…)"), "{}", v[0].message);
        assert!(v[0].message.chars().count() < 100, "{}", v[0].message);
    }

    #[test]
    fn words_string_length_errors_in_characters() {
        let v = violations(
            json!({"properties": {"s": {"minLength": 1}}}),
            json!({"s": ""}),
        );
        assert_eq!(
            v,
            [Violation::new(
                "/s",
                "must be at least 1 character long (got 0 characters)"
            )]
        );
    }

    #[test]
    fn reads_as_a_sentence_when_displayed() {
        assert_eq!(
            Violation::new("/a", "is required").to_string(),
            "/a is required"
        );
        assert_eq!(
            Violation::new("", "must be an object (got an array)").to_string(),
            "the document must be an object (got an array)"
        );
    }
}
