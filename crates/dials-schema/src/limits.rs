//! Limits on what a schema may cost, checked before anything else reads it.
//!
//! A schema is small on the wire but can be large to use: a `$ref` chain thousands of links
//! long, `$defs` that each refer twice to the next (a "billion laughs" of references), or a
//! recursive reference reached twice for one value all make validation and the catalogue walk
//! grow without bound. [`check`] walks the schema once, every local `$ref` expanded in place
//! and a reference back to a schema being expanded (a recursive type) not expanded again, and
//! refuses the schema when:
//!
//! - subschemas nest deeper than [`MAX_DEPTH`] (each `$ref` followed counts as one level);
//! - the expanded schema holds more than [`MAX_EXPANDED_VALUES`] JSON values;
//! - a recursive reference comes back to its schema without descending into the document
//!   (`#/$defs/a` → `#/$defs/b` → `#/$defs/a`), which describes nothing;
//! - one recursive schema refers back to itself along two paths that can reach the same value
//!   (`{"properties": {"a": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}}}`), which doubles the
//!   work at every level of a document.
//!
//! The walk recurses at most [`MAX_DEPTH`] levels and stops once the budget is spent, so the
//! check itself is cheap on any input.

use dials_domain::MAX_DEPTH;
use serde_json::Value;

use crate::SchemaError;
use crate::resolve::lookup_local;

/// The most JSON values a schema may hold with every `$ref` expanded in place.
pub const MAX_EXPANDED_VALUES: usize = 100_000;

/// Refuses a schema that is too deep, too large once expanded, or recursive in a way that
/// makes validation explode.
pub(crate) fn check(root: &Value) -> Result<(), SchemaError> {
    let mut walk = Walk {
        root,
        budget: MAX_EXPANDED_VALUES,
        open: Vec::new(),
        at: Vec::new(),
    };
    walk.visit(root, 0)
}

/// Where a subschema applies, relative to the value its enclosing schema applies to.
#[derive(Debug, Clone, PartialEq)]
enum Step<'s> {
    /// The member of that name.
    Member(&'s str),
    /// The array item at that index.
    Item(usize),
    /// Any member or item (`additionalProperties`, `items`, `patternProperties`…).
    Any,
}

impl Step<'_> {
    /// Whether the two steps can lead to the same value.
    fn overlaps(&self, other: &Step<'_>) -> bool {
        matches!(self, Step::Any) || matches!(other, Step::Any) || self == other
    }
}

/// A reference being expanded.
#[derive(Debug)]
struct Open<'s> {
    reference: &'s str,
    target: &'s Value,
    /// Length of `Walk::at` when the reference was followed.
    at: usize,
    /// Where, relative to `at`, each recursive reference back to `target` applies.
    returns: Vec<Vec<Step<'s>>>,
}

#[derive(Debug)]
struct Walk<'s> {
    root: &'s Value,
    budget: usize,
    open: Vec<Open<'s>>,
    /// The path, in the document, of the value the current subschema applies to.
    at: Vec<Step<'s>>,
}

impl<'s> Walk<'s> {
    fn spend(&mut self, values: usize) -> Result<(), SchemaError> {
        match self.budget.checked_sub(values) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(SchemaError::TooLarge {
                limit: MAX_EXPANDED_VALUES,
            }),
        }
    }

    /// Counts the JSON values in `value` (a keyword's value that is not a subschema).
    fn spend_on(&mut self, value: &Value) -> Result<(), SchemaError> {
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            self.spend(1)?;
            match value {
                Value::Object(map) => stack.extend(map.values()),
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        Ok(())
    }

    fn visit(&mut self, node: &'s Value, depth: usize) -> Result<(), SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep { limit: MAX_DEPTH });
        }
        self.spend(1)?;
        let Value::Object(map) = node else {
            return Ok(());
        };
        for (keyword, value) in map {
            match (keyword.as_str(), value) {
                ("$ref" | "$dynamicRef" | "$recursiveRef", Value::String(reference)) => {
                    self.follow(reference, depth)?;
                }
                ("allOf" | "anyOf" | "oneOf", Value::Array(branches)) => {
                    for branch in branches {
                        self.visit(branch, depth + 1)?;
                    }
                }
                ("not" | "if" | "then" | "else", _) => self.visit(value, depth + 1)?,
                ("dependentSchemas" | "dependencies", Value::Object(schemas)) => {
                    for schema in schemas.values() {
                        // `dependencies` may also list names; those are no subschemas.
                        if schema.is_object() || schema.is_boolean() {
                            self.visit(schema, depth + 1)?;
                        } else {
                            self.spend_on(schema)?;
                        }
                    }
                }
                ("properties", Value::Object(schemas)) => {
                    for (name, schema) in schemas {
                        self.below(Step::Member(name), schema, depth)?;
                    }
                }
                ("patternProperties", Value::Object(schemas)) => {
                    for schema in schemas.values() {
                        self.below(Step::Any, schema, depth)?;
                    }
                }
                ("prefixItems" | "items", Value::Array(schemas)) => {
                    for (index, schema) in schemas.iter().enumerate() {
                        self.below(Step::Item(index), schema, depth)?;
                    }
                }
                (
                    "additionalProperties"
                    | "unevaluatedProperties"
                    | "propertyNames"
                    | "items"
                    | "additionalItems"
                    | "unevaluatedItems"
                    | "contains",
                    _,
                ) => self.below(Step::Any, value, depth)?,
                // Reached only through a `$ref`, and then counted there.
                ("$defs" | "definitions", _) => {}
                _ => self.spend_on(value)?,
            }
        }
        Ok(())
    }

    /// Visits a subschema that applies to a member or item of the current value.
    fn below(
        &mut self,
        step: Step<'s>,
        schema: &'s Value,
        depth: usize,
    ) -> Result<(), SchemaError> {
        self.at.push(step);
        let result = self.visit(schema, depth + 1);
        self.at.pop();
        result
    }

    fn follow(&mut self, reference: &'s str, depth: usize) -> Result<(), SchemaError> {
        // A reference that cannot be followed is reported by the validator's compiler.
        let Some(target) = lookup_local(self.root, reference) else {
            return Ok(());
        };
        let Some(index) = self
            .open
            .iter()
            .position(|open| std::ptr::eq(open.target, target))
        else {
            self.open.push(Open {
                reference,
                target,
                at: self.at.len(),
                returns: Vec::new(),
            });
            let result = self.visit(target, depth + 1);
            self.open.pop();
            return result;
        };
        let open = &mut self.open[index];
        let path = self.at[open.at..].to_vec();
        if path.is_empty() {
            return Err(SchemaError::RecursiveReference {
                message: format!(
                    "{reference} leads back to {} without descending into the document, so it \
                     describes nothing",
                    open.reference
                ),
            });
        }
        // Two ways back where one is a prefix of the other (step by step, `Any` matching
        // every step) could apply the schema twice to one value, then four times to its
        // children, and so on.
        if open
            .returns
            .iter()
            .any(|earlier| earlier.iter().zip(&path).all(|(a, b)| a.overlaps(b)))
        {
            return Err(SchemaError::RecursiveReference {
                message: format!(
                    "{} refers back to itself more than once for the same value (again through \
                     {reference}), so checking a document would take time exponential in its \
                     depth",
                    open.reference
                ),
            });
        }
        open.returns.push(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    /// `$defs` `d0` … `dN`, each `d(i)` made from a reference to `d(i+1)` by `link`.
    fn chain(links: usize, link: impl Fn(Value) -> Value) -> Value {
        let mut defs = Map::new();
        for i in 0..links {
            defs.insert(
                format!("d{i}"),
                link(json!({"$ref": format!("#/$defs/d{}", i + 1)})),
            );
        }
        defs.insert(format!("d{links}"), json!({"type": "integer"}));
        json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/d0"}}, "$defs": defs})
    }

    #[test]
    fn accepts_ordinary_schemas_including_recursive_types() {
        let tree = json!({
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {
                "left": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                "right": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
            }}}
        });
        assert_eq!(check(&tree), Ok(()));
        assert_eq!(check(&chain(MAX_DEPTH - 4, |r| r)), Ok(()));
    }

    #[test]
    fn refuses_a_ref_chain_deeper_than_the_limit() {
        assert_eq!(
            check(&chain(5_000, |r| r)),
            Err(SchemaError::TooDeep { limit: MAX_DEPTH })
        );
    }

    #[test]
    fn refuses_refs_that_fan_out_exponentially() {
        let doubled = chain(25, |r| json!({"allOf": [r.clone(), r]}));
        assert_eq!(
            check(&doubled),
            Err(SchemaError::TooLarge {
                limit: MAX_EXPANDED_VALUES
            })
        );
        let wide = chain(
            25,
            |r| json!({"type": "object", "properties": {"a": r.clone(), "b": r}}),
        );
        assert_eq!(
            check(&wide),
            Err(SchemaError::TooLarge {
                limit: MAX_EXPANDED_VALUES
            })
        );
    }

    #[test]
    fn refuses_a_cycle_of_refs_that_never_reaches_into_the_document() {
        let cycle = json!({
            "type": "object",
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            "properties": {"x": {"$ref": "#/$defs/a"}}
        });
        let err = check(&cycle).unwrap_err();
        assert!(err.to_string().contains("without descending"), "{err}");
    }

    #[test]
    fn refuses_a_recursive_ref_reached_twice_for_one_value() {
        let doubled = json!({"type": "object", "properties": {
            "a": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}
        }});
        let err = check(&doubled).unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        let overlapping = json!({"type": "object",
            "properties": {"a": {"$ref": "#"}},
            "additionalProperties": {"$ref": "#"},
            "patternProperties": {"^a": {"$ref": "#"}}
        });
        assert!(check(&overlapping).is_err());
    }
}
