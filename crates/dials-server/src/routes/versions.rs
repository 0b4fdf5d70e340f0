//! Versions of one service: read one, diff two, restore one as a new version.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use dials_domain::{Document, ServiceName, Version, diff as diff_documents, secret};
use dials_wire::{ConfigResponse, DiffResponse, KeyDiff, Problem, RestoreRequest, VersionResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::{Conditions, JsonBody, Query, ServicePath, path_version};
use crate::ops::{self, Intent, Preconditions};
use crate::{ApiError, AppState, Principal, Role};

/// The document as of one version.
#[utoipa::path(get, path = "/api/v1/services/{service}/versions/{version}", tag = "history",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("version" = u64, Path, description = "Version number"),
    ),
    responses(
        (status = 200, body = VersionResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
) -> Result<Json<VersionResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let version = path_version(&params.1)?;
    let record = state
        .store
        .version(&service, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service {service} has no version {version}")))?;
    let secret_keys = secret_keys_of(&state, &service).await?;
    Ok(Json(VersionResponse {
        service: service.to_string(),
        version: record.version.0,
        revision: record.revision.0,
        kind: record.kind.as_str().to_owned(),
        at: record.at,
        actor: record.actor,
        reason: record.reason,
        config: record
            .document
            .map(|d| secret::mask(&d, &secret_keys).into_value())
            .unwrap_or(serde_json::Value::Null),
    }))
}

/// The keys the service's schema marks secret now.
async fn secret_keys_of(
    state: &AppState,
    service: &ServiceName,
) -> Result<Vec<dials_domain::KeyPath>, ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    Ok(crate::secrets::keys_of(schema.as_deref()))
}

/// Query of `GET …/diff`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The older version (default: the one before `to`; 0 is the empty document).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    from: Option<u64>,
    /// The newer version (default: the current one).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    to: Option<u64>,
}

/// Per-key changes between two versions.
#[utoipa::path(get, path = "/api/v1/services/{service}/diff", tag = "history",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name"), DiffParams),
    responses(
        (status = 200, body = DiffResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn diff(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Query(params): Query<DiffParams>,
) -> Result<Json<DiffResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let current = state
        .store
        .service(&service)
        .await?
        .ok_or_else(|| ops::not_found(&service))?;
    let to = params.to.unwrap_or(current.version.0);
    let from = params.from.unwrap_or(to.saturating_sub(1));
    let old = document_at(&state, &service, from).await?;
    let new = document_at(&state, &service, to).await?;
    let secret_keys = secret_keys_of(&state, &service).await?;
    // Stored documents hold placeholders where secrets are: a changed secret shows as a change
    // from mask to mask, never as its values.
    let changes = diff_documents(&old, &new)
        .into_iter()
        .map(|c| KeyDiff {
            op: c.op().to_owned(),
            old: crate::secrets::shown(&c.key, c.old, &secret_keys),
            new: crate::secrets::shown(&c.key, c.new, &secret_keys),
            key: c.key.to_string(),
        })
        .collect();
    Ok(Json(DiffResponse {
        service: service.to_string(),
        from,
        to,
        changes,
    }))
}

/// The document as of `version`: empty for version 0 and for a deletion.
async fn document_at(
    state: &AppState,
    service: &ServiceName,
    version: u64,
) -> Result<Document, ApiError> {
    if version == 0 {
        return Ok(Document::new());
    }
    let record = state
        .store
        .version(service, Version(version))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service {service} has no version {version}")))?;
    Ok(record.document.unwrap_or_default())
}

/// Writes an earlier state of a service again, as a new version: by `version`, or as it was
/// `at` an instant.
#[utoipa::path(post, path = "/api/v1/services/{service}/restore", tag = "history",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("If-Match" = Option<String>, Header, description = "Restore only at this version"),
    ),
    request_body = RestoreRequest,
    responses(
        (status = 200, body = ConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn restore(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    let intent = match (body.version, body.at) {
        (Some(v), None) => Intent::RestoreVersion(Version(v)),
        (None, Some(at)) => Intent::RestoreAt(at),
        _ => {
            return Err(ApiError::BadRequest(
                "send exactly one of `version` and `at` (RFC 3339)".into(),
            ));
        }
    };
    let written = ops::write(&state, &service, &principal, intent, pre, body.reason).await?;
    Ok(super::config::config_answer(&state, &service, written))
}
