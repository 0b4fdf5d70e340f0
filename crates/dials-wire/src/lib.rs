//! dials wire formats: every JSON body that crosses the REST API, in one place, so the server
//! that writes them and the CLI and client library that read them share the same code.
//!
//! Field names and shapes here are the external contract; change them only with it.

mod api;
pub mod envelope;
mod problem;
pub mod strict;

pub use api::*;
pub use envelope::{Envelope, EnvelopeError, EnvelopeSigner};
pub use problem::{FieldError, Problem};

/// The media type of error bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How a secret value is shown to anyone but its own service.
pub use dials_domain::SECRET_MASK;
