//! Schema knowledge for dials, as plain functions over plain values: no I/O.
//!
//! A service's JSON Schema (draft 2020-12) is compiled once into a [`CompiledSchema`], which
//! then answers everything the rest of dials asks of a schema:
//!
//! - [`CompiledSchema::check`]: fill defaults, then validate — the document to store, or
//!   [`Violation`]s (`{path, message}`) worded for people and pointing at the key to fix;
//! - [`CompiledSchema::settings`]: the catalogue of leaf [`Setting`]s with their titles, help,
//!   [`Complexity`], secrecy, restart and environment annotations, defaults and bounds;
//! - [`CompiledSchema::migrate`]: repair a stored document for a new schema version;
//! - [`search`]: rank settings across services for `GET /api/v1/search`.
//!
//! Validation itself is the `jsonschema` crate's; this crate adds what it does not do
//! (defaults, the catalogue, migration, messages) by reading the schema through local `$ref`s
//! the way schemars writes them.

#![warn(missing_docs)]

mod catalogue;
mod compiled;
mod defaults;
mod error;
pub mod layers;
mod limits;
mod migrate;
mod resolve;
pub mod search;
mod violation;

pub use catalogue::{Complexity, Setting, UnknownComplexity};
pub use compiled::CompiledSchema;
pub use error::SchemaError;
pub use layers::{Layer, Layers, Merged};
pub use limits::MAX_EXPANDED_VALUES;
pub use migrate::Migration;
pub use search::{SearchIndex, SearchItem, SearchQuery};
pub use violation::Violation;
