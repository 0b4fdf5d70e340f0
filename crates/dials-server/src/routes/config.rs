//! Service config documents: list, read, replace, patch, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dials_domain::Document;
use dials_wire::{ConfigResponse, PatchConfig, Problem, PutConfig, ServiceInfo, ServiceList};

use crate::extract::{Conditions, JsonBody, ServicePath};
use crate::ops::{self, Intent, Preconditions};
use crate::{ApiError, AppState, Principal, Role};

/// Every live service.
#[utoipa::path(get, path = "/api/v1/services", tag = "config", security(("bearer" = [])),
    responses(
        (status = 200, body = ServiceList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_services(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ServiceList>, ApiError> {
    principal.require(Role::Viewer)?;
    let live: Vec<_> = state
        .store
        .services()
        .await?
        .into_iter()
        .filter(|s| s.document.is_some())
        .collect();
    let versions = live
        .iter()
        .map(|s| (s.name.to_string(), s.version.0))
        .collect();
    let mut summaries = super::fleet::summaries(&state, &versions).await?;
    let services = live
        .into_iter()
        .map(|s| ServiceInfo {
            instances: summaries.remove(s.name.as_str()).unwrap_or_default(),
            name: s.name.to_string(),
            version: s.version.0,
            updated_at: Some(s.updated_at),
            updated_by: Some(s.updated_by),
            has_schema: false,
        })
        .collect();
    Ok(Json(ServiceList { services }))
}

/// A service's current config. Answers `ETag: "<version>"`; `If-None-Match` with the current
/// ETag answers 304.
#[utoipa::path(get, path = "/api/v1/services/{service}/config", tag = "config",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    responses(
        (status = 200, body = ConfigResponse, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 304, description = "Not modified since the ETag sent in If-None-Match"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_config(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require_reader_of(service.as_str())?;
    let (entry, body) = ops::current_config(&state, &service).await?;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == entry.etag)
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, entry.etag.clone())],
        )
            .into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, entry.etag.clone()),
        ],
        Body::from(body),
    )
        .into_response())
}

/// Replaces a service's document. Preconditions: `expected_version` (409 on mismatch),
/// `If-Match` (412), `If-None-Match: *` to create a service.
#[utoipa::path(put, path = "/api/v1/services/{service}/config", tag = "config",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("If-Match" = Option<String>, Header, description = "Write only at this version, e.g. \"3\""),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create the service"),
    ),
    request_body = PutConfig,
    responses(
        (status = 200, body = ConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_config(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutConfig>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    let document = Document::from_value(body.config)?;
    let written = ops::write(
        &state,
        &service,
        &principal,
        Intent::Put(document),
        pre,
        body.reason,
    )
    .await?;
    Ok(config_answer(written))
}

/// Applies an RFC 7396 merge patch to a service's document, with the same preconditions as PUT.
#[utoipa::path(patch, path = "/api/v1/services/{service}/config", tag = "config",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("If-Match" = Option<String>, Header, description = "Write only at this version, e.g. \"3\""),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create the service"),
    ),
    request_body = PatchConfig,
    responses(
        (status = 200, body = ConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch_config(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PatchConfig>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    if !body.config.is_object() {
        return Err(ApiError::BadRequest(
            "`config` must be a JSON object (a merge patch)".into(),
        ));
    }
    let written = ops::write(
        &state,
        &service,
        &principal,
        Intent::Patch(body.config),
        pre,
        body.reason,
    )
    .await?;
    Ok(config_answer(written))
}

/// Removes a service. Its history stays, and its versions are never reused.
#[utoipa::path(delete, path = "/api/v1/services/{service}", tag = "config",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("If-Match" = Option<String>, Header, description = "Delete only at this version"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_service(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    let pre = Preconditions::new(None, Conditions::from_headers(&headers)?)?;
    ops::write(&state, &service, &principal, Intent::Delete, pre, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a write: the new state with its ETag.
pub(super) fn config_answer(written: Option<ConfigResponse>) -> Response {
    match written {
        Some(response) => {
            let etag = HeaderValue::from_str(&format!("\"{}\"", response.version))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
            ([(header::ETAG, etag)], Json(response)).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
