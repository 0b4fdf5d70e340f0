//! Service config documents: list, read, replace, patch, delete.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dials_domain::{Document, ServiceName};
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
    let with_schema: std::collections::HashSet<_> = state
        .store
        .schemas()
        .await?
        .into_iter()
        .map(|r| r.service)
        .collect();
    // Live services, and services that registered a schema but were never written (they read
    // as all defaults).
    let listed: Vec<_> = state
        .store
        .services()
        .await?
        .into_iter()
        // Instance overrides are kept like documents but are no services.
        .filter(|s| !s.name.is_instance_layer())
        .filter(|s| s.document.is_some() || with_schema.contains(&s.name))
        .collect();
    let mut rows: Vec<ServiceInfo> = listed
        .iter()
        .map(|s| ServiceInfo {
            name: s.name.to_string(),
            version: s.version.0,
            updated_at: s.document.as_ref().map(|_| s.updated_at),
            updated_by: s.document.as_ref().map(|_| s.updated_by.clone()),
            has_schema: with_schema.contains(&s.name),
            instances: Default::default(),
        })
        .collect();
    for name in &with_schema {
        if !listed.iter().any(|s| &s.name == name) {
            rows.push(ServiceInfo {
                name: name.to_string(),
                version: 0,
                updated_at: None,
                updated_by: None,
                has_schema: true,
                instances: Default::default(),
            });
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let versions = rows.iter().map(|s| (s.name.clone(), s.version)).collect();
    let mut summaries = super::fleet::summaries(&state, &versions).await?;
    for row in &mut rows {
        row.instances = summaries.remove(&row.name).unwrap_or_default();
    }
    let services = rows;
    Ok(Json(ServiceList { services }))
}

/// A service's current config. Secrets show as `"********"`, except to the service's own
/// token, which reads them in clear. Any service token may read `global` (secrets masked). Answers `ETag: "<version>"`; `If-None-Match` with the
/// current ETag answers 304.
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
    principal.require_config_reader_of(service.as_str())?;
    let (etag, body) = if principal.is_own_service(service.as_str()) {
        // The service's own token reads its secrets in clear (`require_reader_of` let no other
        // service token through); that answer is built for each read and never cached.
        let response = ops::own_config(&state, &service).await?;
        let etag = HeaderValue::from_str(&format!("\"{}\"", response.version))
            .map_err(|e| ApiError::Internal(e.into()))?;
        let body = serde_json::to_vec(&response).map_err(|e| ApiError::Internal(e.into()))?;
        (etag, bytes::Bytes::from(body))
    } else {
        let (entry, body) = ops::current_config(&state, &service).await?;
        (entry.etag.clone(), body)
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
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
    Ok(config_answer(&state, &service, written))
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
    Ok(config_answer(&state, &service, written))
}

/// Removes a service, and the override documents of its instances. Its history stays, and
/// its versions are never reused.
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
    if service.is_global() {
        return Err(ApiError::Refused(
            "the global service holds cross-service settings and cannot be deleted; \
             change its keys instead"
                .into(),
        ));
    }
    let pre = Preconditions::new(None, Conditions::from_headers(&headers)?)?;
    ops::write(&state, &service, &principal, Intent::Delete, pre, None).await?;
    // Its instances' override documents go with it (each a deletion of its own, published).
    ops::delete_overrides(&state, &service, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a write: the new state with its ETag.
pub(super) fn config_answer(
    state: &AppState,
    service: &ServiceName,
    written: Option<ConfigResponse>,
) -> Response {
    let Some(response) = written else {
        return StatusCode::NO_CONTENT.into_response();
    };
    // The write has just cached this very answer, serialized, for reads: send those bytes
    // unless a later write has replaced them already.
    if let Some(entry) = state.configs.get(service)
        && entry.version == response.version
        && let Some(body) = &entry.body
    {
        return (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::ETAG, entry.etag.clone()),
            ],
            Body::from(body.clone()),
        )
            .into_response();
    }
    let etag = HeaderValue::from_str(&format!("\"{}\"", response.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    ([(header::ETAG, etag)], Json(response)).into_response()
}
