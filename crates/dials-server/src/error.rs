//! One error type for every handler, rendered as RFC 9457 problem details by one
//! `IntoResponse`. The table in [`ApiError::parts`] is the only place that maps errors to
//! statuses. Internal causes are logged, never sent to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dials_domain::{DomainError, Version};
use dials_store::StoreError;
use dials_wire::{FieldError, PROBLEM_JSON, Problem};

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, wrong types, bad parameters.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that are not valid.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials whose role is too low.
    #[error("{0}")]
    Forbidden(String),
    /// No such service, version or route.
    #[error("{0}")]
    NotFound(String),
    /// The method is not allowed on this route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `expected_version` did not match.
    #[error("the service is at version {current}, not {expected}")]
    Conflict {
        /// What the request expected.
        expected: Version,
        /// What the service is at.
        current: Version,
    },
    /// An `If-Match` or `If-None-Match` precondition failed.
    #[error("{detail}")]
    PreconditionFailed {
        /// What failed.
        detail: String,
        /// What the service is at.
        current: Version,
    },
    /// A new schema that the stored document does not fit.
    #[error("{detail}")]
    SchemaConflict {
        /// Summary.
        detail: String,
        /// The stored document's violations of the new schema.
        errors: Vec<FieldError>,
    },
    /// A many-service write lost to a change made while it was prepared.
    #[error("{0}")]
    Moved(String),
    /// A named thing (a profile) exists already.
    #[error("{0}")]
    Exists(String),
    /// The request conflicts with the state of things (e.g. deleting `global`).
    #[error("{0}")]
    Refused(String),
    /// The body is over the configured limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request body did not arrive in time.
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    /// The body is declared as something other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The document violates the service's schema, or cannot be a document at all.
    #[error("{detail}")]
    Unprocessable {
        /// Summary.
        detail: String,
        /// One entry per violation.
        errors: Vec<FieldError>,
    },
    /// Too many failed authentications with this credential or from this address.
    #[error("{reason}; try again in {retry_after} s")]
    TooManyRequests {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
        /// Which budget is spent: the credential's or the address's.
        reason: String,
    },
    /// The database cannot do the work now (busy, disk full, gone). Why is logged and shown
    /// in `/api/v1/status`.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    /// The manager is in read-only mode (its database cannot be read): writes are refused.
    #[error("dials is read-only, so writes are refused until the database is back: {0}")]
    ReadOnly(String),
    /// The write could not get a turn in time; trying again later will work.
    #[error("{0}; try again later")]
    Busy(String),
    /// A bug or an unexpected failure; logged, never detailed to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Status, problem type slug and title for each kind of error.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            ),
            Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authenticated",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Conflict { .. } => (StatusCode::CONFLICT, "version-conflict", "Version conflict"),
            SchemaConflict { .. } => (StatusCode::CONFLICT, "schema-conflict", "Schema conflict"),
            Refused(_) => (StatusCode::CONFLICT, "refused", "Refused"),
            Moved(_) => (StatusCode::CONFLICT, "version-conflict", "Version conflict"),
            Exists(_) => (StatusCode::CONFLICT, "name-conflict", "Name conflict"),
            PreconditionFailed { .. } => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Unprocessable { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-failed",
                "Validation failed",
            ),
            TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
            ),
            Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy"),
            ReadOnly(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "read-only",
                "Read-only mode",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal server error",
            ),
        }
    }

    /// The problem body this error renders as.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        let (errors, current_version) =
            match self {
                ApiError::Unprocessable { errors, .. }
                | ApiError::SchemaConflict { errors, .. } => (errors.clone(), None),
                ApiError::Conflict { current, .. }
                | ApiError::PreconditionFailed { current, .. } => (Vec::new(), Some(current.0)),
                _ => (Vec::new(), None),
            };
        Problem {
            type_: format!("urn:dials:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
            current_version,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::metrics::on_error(&self);
        match &self {
            // One line, causes included, never a backtrace: logs are read by people and parsers.
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}").replace('\n', " "), "internal error")
            }
            ApiError::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let problem = self.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, ApiError::Unauthorized(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests {
            retry_after,
            reason,
        } = &self
        {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            // Rate-limited requests are denied requests too: the access log shows them, with
            // which budget was spent.
            response
                .extensions_mut()
                .insert(Denied(format!("rate limited: {reason}")));
        }
        if matches!(self, ApiError::Unauthorized(_) | ApiError::Forbidden(_)) {
            // For the layer that writes denied requests to the audit log.
            response.extensions_mut().insert(Denied(self.to_string()));
        }
        if matches!(
            self,
            ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout(_)
        ) {
            // The rest of the body was never read, so the connection cannot carry another
            // request: say so, or a client reusing it sends into a closed socket.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, ApiError::Unavailable(_) | ApiError::Busy(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ApiError::ReadOnly(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// Why a request was denied (401/403), attached to the response for the audit layer.
#[derive(Debug, Clone)]
pub struct Denied(pub String);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_unavailable() => ApiError::Unavailable(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidServiceName { .. }
            | DomainError::InvalidProfileName { .. }
            | DomainError::InvalidKeyPath { .. } => ApiError::BadRequest(e.to_string()),
            DomainError::NotAnObject { .. } | DomainError::TooDeep { .. } => {
                ApiError::Unprocessable {
                    detail: e.to_string(),
                    errors: vec![FieldError {
                        service: None,
                        path: String::new(),
                        message: e.to_string(),
                    }],
                }
            }
        }
    }
}
