//! RFC 9457 problem details: the one shape of every error the API returns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One violation of a service's schema, or of the request's own shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The service the violation is in, when a request wrote several (a profile apply, a
    /// fleet restore, an import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// JSON Pointer of the offending key, e.g. `/vad_threshold`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

/// An error response (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `https://dials.dev/problems/version-conflict`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// Per-key violations (422, and 409 on schema changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The service's current version (409 and 412).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}
