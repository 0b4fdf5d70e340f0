//! Layers over the HTTP API: one instance's override document (read, replace, patch, delete,
//! its versions, diff and restore) and the instance's effective config with each key's layer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dials_domain::{Document, InstanceName, ServiceName, Version, diff as diff_documents, secret};
use dials_wire::{
    DiffResponse, EffectiveResponse, InstanceConfigResponse, KeyDiff, PatchConfig, Problem,
    PutConfig, RestoreRequest, VersionResponse,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::{Conditions, JsonBody, Query, ServicePath, path_version};
use crate::ops::{self, OverrideIntent, Preconditions};
use crate::{ApiError, AppState, Principal, Role};

fn instance_of(params: &(String, String)) -> Result<InstanceName, ApiError> {
    ops::instance_name(&params.1)
}

fn answer(written: Option<InstanceConfigResponse>) -> Response {
    let Some(response) = written else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let etag = HeaderValue::from_str(&format!("\"{}\"", response.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    ([(header::ETAG, etag)], Json(response)).into_response()
}

/// One instance's override document: a partial document merged over the service's (see
/// `…/effective`). Secrets show as `"********"`, except to the service's own token. 404 when
/// the service does not exist or the instance has no override.
#[utoipa::path(get, path = "/api/v1/services/{service}/instances/{instance}/config",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
    ),
    responses(
        (status = 200, body = InstanceConfigResponse, headers(("ETag" = String, description = "\"<version>\""))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
) -> Result<Response, ApiError> {
    principal.require_reader_of(service.as_str())?;
    let instance = instance_of(&params)?;
    let own = principal.is_own_service(service.as_str());
    let response = ops::read_override(&state, &service, &instance, own).await?;
    Ok(answer(Some(response)))
}

/// Replaces one instance's override document (operator). The override is partial; the
/// document it merges to (schema defaults < global < service < override) must fit the
/// service's schema, else 422 and nothing changes. Preconditions as for a service's PUT
/// (`expected_version`, `If-Match`, `If-None-Match: *`), on the override's own versions.
#[utoipa::path(put, path = "/api/v1/services/{service}/instances/{instance}/config",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        ("If-Match" = Option<String>, Header, description = "Write only at this version, e.g. \"3\""),
        ("If-None-Match" = Option<String>, Header, description = "`*`: only if the instance has no override yet"),
    ),
    request_body = PutConfig,
    responses(
        (status = 200, body = InstanceConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PutConfig>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let instance = instance_of(&params)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    let document = Document::from_value(body.config)?;
    let written = ops::write_override(
        &state,
        &service,
        &instance,
        &principal,
        OverrideIntent::Put(document),
        pre,
        body.reason,
    )
    .await?;
    Ok(answer(written))
}

/// Applies an RFC 7396 merge patch to one instance's override document (operator), checked
/// as PUT is.
#[utoipa::path(patch, path = "/api/v1/services/{service}/instances/{instance}/config",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        ("If-Match" = Option<String>, Header, description = "Write only at this version, e.g. \"3\""),
    ),
    request_body = PatchConfig,
    responses(
        (status = 200, body = InstanceConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PatchConfig>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let instance = instance_of(&params)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    if !body.config.is_object() {
        return Err(ApiError::BadRequest(
            "`config` must be a JSON object (a merge patch)".into(),
        ));
    }
    let written = ops::write_override(
        &state,
        &service,
        &instance,
        &principal,
        OverrideIntent::Patch(body.config),
        pre,
        body.reason,
    )
    .await?;
    Ok(answer(written))
}

/// Removes one instance's override document (operator): the instance runs with the service's
/// document again. Its history stays and its versions are never reused; the removal is
/// published (an empty retained message on `config/override/{service}/{instance}`).
#[utoipa::path(delete, path = "/api/v1/services/{service}/instances/{instance}/config",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        ("If-Match" = Option<String>, Header, description = "Delete only at this version"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Operator)?;
    let instance = instance_of(&params)?;
    let pre = Preconditions::new(None, Conditions::from_headers(&headers)?)?;
    ops::write_override(
        &state,
        &service,
        &instance,
        &principal,
        OverrideIntent::Delete,
        pre,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One version of an instance's override document.
#[utoipa::path(get,
    path = "/api/v1/services/{service}/instances/{instance}/config/versions/{version}",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        ("version" = u64, Path, description = "Version of the override"),
    ),
    responses(
        (status = 200, body = VersionResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_override_version(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String, String)>,
) -> Result<Json<VersionResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let instance = ops::instance_name(&params.1)?;
    let version = path_version(&params.2)?;
    let (_, schema) = ops::existing_service(&state, &service).await?;
    let id = ops::override_id(&service, &instance);
    let record = state
        .store
        .version(&id, version)
        .await?
        .ok_or_else(|| missing_version(&service, &instance, version.0))?;
    let secret_keys = crate::secrets::keys_of(schema.as_deref());
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

fn missing_version(service: &ServiceName, instance: &InstanceName, version: u64) -> ApiError {
    ApiError::NotFound(format!(
        "the override of instance {instance} of {service} has no version {version}"
    ))
}

/// Query of `GET …/instances/{instance}/config/diff`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverrideDiffParams {
    /// The older version (default: the one before `to`; 0 is the empty document).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    from: Option<u64>,
    /// The newer version (default: the current one).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    to: Option<u64>,
}

/// Per-key changes between two versions of an instance's override document.
#[utoipa::path(get, path = "/api/v1/services/{service}/instances/{instance}/config/diff",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        OverrideDiffParams,
    ),
    responses(
        (status = 200, body = DiffResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn diff_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    Query(query): Query<OverrideDiffParams>,
) -> Result<Json<DiffResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let instance = instance_of(&params)?;
    let (_, schema) = ops::existing_service(&state, &service).await?;
    let id = ops::override_id(&service, &instance);
    let current = state
        .store
        .service(&id)
        .await?
        .ok_or_else(|| ops::no_override(&service, &instance))?;
    let to = query.to.unwrap_or(current.version.0);
    let from = query.from.unwrap_or(to.saturating_sub(1));
    let document_at = |version: u64| {
        let (state, id, service, instance) = (&state, &id, &service, &instance);
        async move {
            if version == 0 {
                return Ok::<_, ApiError>(Document::new());
            }
            let record = state
                .store
                .version(id, Version(version))
                .await?
                .ok_or_else(|| missing_version(service, instance, version))?;
            Ok(record.document.unwrap_or_default())
        }
    };
    let old = document_at(from).await?;
    let new = document_at(to).await?;
    let secret_keys = crate::secrets::keys_of(schema.as_deref());
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

/// Writes an earlier state of an instance's override document again, as a new version
/// (operator), checked against the service's schema as a PUT is.
#[utoipa::path(post, path = "/api/v1/services/{service}/instances/{instance}/config/restore",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
        ("If-Match" = Option<String>, Header, description = "Restore only at this version"),
    ),
    request_body = RestoreRequest,
    responses(
        (status = 200, body = InstanceConfigResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn restore_override(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let instance = instance_of(&params)?;
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    let intent = match (body.version, body.at) {
        (Some(v), None) => OverrideIntent::RestoreVersion(Version(v)),
        (None, Some(at)) => OverrideIntent::RestoreAt(at),
        _ => {
            return Err(ApiError::BadRequest(
                "send exactly one of `version` and `at` (RFC 3339)".into(),
            ));
        }
    };
    let written = ops::write_override(
        &state,
        &service,
        &instance,
        &principal,
        intent,
        pre,
        body.reason,
    )
    .await?;
    Ok(answer(written))
}

/// What one instance runs with: schema defaults < `global` (the keys the schema takes from
/// it, `x-global`) < the service's document < the instance's override, with the layer of
/// every key (`default`, `global`, `service`, `instance`, and `env` for the keys the
/// instance's last report says its environment overrides), the version of each layer, and
/// the instance's last report, and each layer's document as stored (what a client merges).
/// Secrets are masked in `config` for every reader, and in `documents` except the service's
/// and the instance's to the service's own token (`global`'s stay masked). Any instance
/// name may be asked for: one that never reported shows what it would start with.
#[utoipa::path(get, path = "/api/v1/services/{service}/instances/{instance}/effective",
    tag = "layers", security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
    ),
    responses(
        (status = 200, body = EffectiveResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn effective(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
) -> Result<Json<EffectiveResponse>, ApiError> {
    principal.require_reader_of(service.as_str())?;
    let instance = instance_of(&params)?;
    let own = principal.is_own_service(service.as_str());
    Ok(Json(
        ops::effective(&state, &service, &instance, own).await?,
    ))
}
