//! The dials domain: the values every other crate talks about, as plain types and plain
//! functions. Nothing here does I/O: no tokio, no SQL, no HTTP, no MQTT, no filesystem.
//!
//! - [`ServiceName`]: a validated service name (`^[a-z][a-z0-9-]{0,62}$`).
//! - [`InstanceName`]: the name one running copy of a service reports under.
//! - [`KeyPath`]: a JSON Pointer naming one leaf of a config document.
//! - [`Document`]: one service's config, a JSON object; [`Document::leaves`] flattens it.
//! - [`Version`], [`Revision`], [`Epoch`]: the counters that order changes.
//! - [`diff`] and [`merge_patch`]: per-key changes and RFC 7396 merge patches.
//! - [`secret`]: placeholders, masking, and sealing documents that hold secrets.
//! - [`limits`]: [`MAX_DEPTH`], how deep documents, key paths and schemas may go.

mod diff;
mod document;
mod error;
pub mod limits;
mod name;
mod patch;
mod pointer;
pub mod secret;
mod version;

pub use diff::{KeyChange, diff};
pub use document::{Document, LeafChange, json_type};
pub use error::DomainError;
pub use limits::MAX_DEPTH;
pub use name::{InstanceName, InstanceNameError, ProfileName, ServiceName};
pub use patch::merge_patch;
pub use pointer::KeyPath;
pub use secret::SECRET_MASK;
pub use version::{ChangeKind, Epoch, Revision, Version};
