//! dials wire formats: every JSON body that crosses the REST API, in one place, so the server
//! that writes them and the CLI and client library that read them share the same code.
//!
//! - [`envelope`]: the signed envelope of a config update (JCS, checksum, Ed25519).
//! - [`mqtt`]: the rest of the MQTT contract: topics, applied reports, health, audit, the
//!   broker URL, and the rule by which a receiver judges an update.
//! - [`lkg`]: the format of a client's signed last-known-good file.
//! - [`backup`]: the metadata file beside a backup of the database.
//! - [`rotation`]: signing-key rotation statements and the chain a receiver follows.
//!
//! Field names and shapes here are the external contract; change them only with it.

mod api;
pub mod backup;
pub mod envelope;
pub mod jcs;
pub mod lkg;
pub mod mqtt;
mod problem;
mod profiles;
pub mod rotation;
pub mod strict;

pub use api::*;
pub use backup::BackupMeta;
pub use envelope::{Envelope, EnvelopeError, EnvelopeSigner};
pub use problem::{FieldError, Problem};
pub use profiles::*;

/// The media type of error bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How a secret value is shown to anyone but its own service.
pub use dials_domain::SECRET_MASK;
