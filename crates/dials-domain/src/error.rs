//! The domain's error type: every way a value can fail to parse or a change fail to apply.

/// What went wrong with a value handed to the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A service name that does not match `^[a-z][a-z0-9-]{0,62}$`.
    #[error("invalid service name {name:?}: {reason}")]
    InvalidServiceName {
        /// The rejected input.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A profile name that does not match `^[a-z0-9][a-z0-9_-]{0,63}$`.
    #[error("invalid profile name {name:?}: {reason}")]
    InvalidProfileName {
        /// The rejected input.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key that is not a JSON Pointer (RFC 6901).
    #[error("invalid key {key:?}: {reason}")]
    InvalidKeyPath {
        /// The rejected input.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A config document must be a JSON object.
    #[error("a config document must be a JSON object, not {found}")]
    NotAnObject {
        /// The JSON type that was found instead.
        found: &'static str,
    },
    /// A document nested deeper than [`MAX_DEPTH`](crate::MAX_DEPTH) levels of objects and
    /// arrays.
    #[error("the document is nested deeper than the limit of {limit} levels")]
    TooDeep {
        /// The limit, [`MAX_DEPTH`](crate::MAX_DEPTH).
        limit: usize,
    },
}
