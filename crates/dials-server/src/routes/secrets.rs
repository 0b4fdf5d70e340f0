//! Secrets: list a service's secret keys, set and remove a value, reveal one (audited), and the
//! key a service signs its last-known-good file with.
//!
//! A secret key is one the service's schema marks `x-secret`. Its value is sealed with the
//! master key (AES-256-GCM) in the same transaction as the config version it makes; reads show
//! `"********"` to everyone but the service's own token. The key in the URL is a JSON Pointer
//! without its leading slash (`…/secrets/mqtt/password` is `/mqtt/password`), so these routes
//! are registered with a wildcard and documented in OpenAPI as `{key}`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dials_domain::{KeyPath, SECRET_MASK, ServiceName, secret};
use dials_store::AuditRecord;
use dials_wire::{
    FieldError, LkgKeyResponse, Problem, PutSecret, RevealRequest, RevealResponse, SecretInfo,
    SecretList, SecretWritten,
};
use serde_json::Value;
use utoipa::OpenApi;

use crate::extract::{Conditions, JsonBody, ServicePath};
use crate::ops::{self, Intent, Preconditions};
use crate::{ApiError, AppState, Principal, Role};

/// The longest justification a reveal accepts, in characters.
const MAX_JUSTIFICATION: usize = 1000;

/// The secret routes' OpenAPI paths (the wildcard routes are added to the router by hand).
#[derive(OpenApi)]
#[openapi(paths(list_secrets, put_secret, delete_secret, reveal_secret, lkg_key))]
pub struct SecretsDoc;

/// Every key the service's schema marks `x-secret`: whether it is set, since when and by whom.
/// Never a value.
#[utoipa::path(get, path = "/api/v1/services/{service}/secrets", tag = "secrets",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    responses(
        (status = 200, body = SecretList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_secrets(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
) -> Result<Json<SecretList>, ApiError> {
    principal.require(Role::Viewer)?;
    let (version, secrets) = secret_infos(&state, &service).await?;
    Ok(Json(SecretList {
        service: service.to_string(),
        version,
        secrets,
    }))
}

/// Sets a secret: a new config version whose document holds the value sealed. Preconditions as
/// for a config write (`expected_version`, `If-Match`).
#[utoipa::path(put, path = "/api/v1/services/{service}/secrets/{key}", tag = "secrets",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("key" = String, Path, description = "The key, a JSON Pointer without its leading slash: `openai_api_key`, `mqtt/password`"),
        ("If-Match" = Option<String>, Header, description = "Write only at this version"),
    ),
    request_body = PutSecret,
    responses(
        (status = 200, body = SecretWritten),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_secret(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<JsonBody<PutSecret>, ApiError>,
) -> Result<Response, ApiError> {
    if let Some(refused) = only_post_reveals(&params.1) {
        return Ok(refused);
    }
    let JsonBody(body) = body?;
    principal.require(Role::Operator)?;
    let key = secret_key(&state, &service, &params.1).await?;
    let refuse = |message: &str| ApiError::Unprocessable {
        detail: format!("the value of the secret {key} {message}"),
        errors: vec![FieldError {
            service: None,
            path: key.to_string(),
            message: message.to_owned(),
        }],
    };
    match &body.value {
        Value::Null => return Err(refuse("cannot be null; DELETE the secret to remove it")),
        Value::String(s) if s == SECRET_MASK => {
            return Err(refuse("cannot be the mask \"********\" that reads show"));
        }
        _ => {}
    }
    let pre = Preconditions::new(body.expected_version, Conditions::from_headers(&headers)?)?;
    let written = ops::write(
        &state,
        &service,
        &principal,
        Intent::SetSecret(key.clone(), body.value),
        pre,
        body.reason,
    )
    .await?
    .ok_or_else(|| ops::not_found(&service))?;
    let secret = match written.secrets.get(key.as_str()) {
        // Set by the version just written (the usual case): the answer says all there is.
        Some(&version) if version == written.version => SecretInfo {
            key: key.to_string(),
            title: crate::schemas::schema_of(&state, &service)
                .await?
                .and_then(|s| s.setting(&key).and_then(|s| s.title.clone())),
            set: true,
            version: Some(version),
            updated_at: written.updated_at,
            updated_by: written.updated_by.clone(),
            key_id: Some(state.keys.master.current().id().to_owned()),
        },
        // The same value again: nothing was written, so it is as it was.
        _ => secret_infos(&state, &service)
            .await?
            .1
            .into_iter()
            .find(|i| i.key == key.as_str())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("{key} vanished after its write")))?,
    };
    Ok(Json(SecretWritten {
        service: service.to_string(),
        version: written.version,
        secret,
    })
    .into_response())
}

/// Removes a secret: a new config version without the key (a schema default applies again).
#[utoipa::path(delete, path = "/api/v1/services/{service}/secrets/{key}", tag = "secrets",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("key" = String, Path, description = "The key, a JSON Pointer without its leading slash"),
        ("If-Match" = Option<String>, Header, description = "Remove only at this version"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_secret(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(refused) = only_post_reveals(&params.1) {
        return Ok(refused);
    }
    principal.require(Role::Operator)?;
    let key = secret_key(&state, &service, &params.1).await?;
    let pre = Preconditions::new(None, Conditions::from_headers(&headers)?)?;
    ops::write(
        &state,
        &service,
        &principal,
        Intent::DeleteSecret(key),
        pre,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Shows a secret's value. Needs a justification, which the access log records with who, when
/// and from where, before the value is answered.
#[utoipa::path(post, path = "/api/v1/services/{service}/secrets/{key}/reveal", tag = "secrets",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("key" = String, Path, description = "The key, a JSON Pointer without its leading slash"),
    ),
    request_body = RevealRequest,
    responses(
        (status = 200, body = RevealResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reveal_secret(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
    JsonBody(body): JsonBody<RevealRequest>,
) -> Result<Json<RevealResponse>, ApiError> {
    principal.require(Role::Operator)?;
    let key = secret_key(&state, &service, &params.1).await?;
    let justification = body.justification.trim();
    if justification.is_empty() {
        return Err(ApiError::BadRequest(
            "say why the secret must be revealed: `justification` is empty".into(),
        ));
    }
    if justification.chars().count() > MAX_JUSTIFICATION {
        return Err(ApiError::BadRequest(format!(
            "`justification` is longer than {MAX_JUSTIFICATION} characters"
        )));
    }
    let stored = state
        .store
        .service(&service)
        .await?
        .and_then(|s| s.document)
        .ok_or_else(|| ops::not_found(&service))?;
    let version = stored
        .get(&key)
        .and_then(secret::placeholder_version)
        .ok_or_else(|| not_set(&service, &key))?;
    let record = state
        .store
        .secrets(&service, &[(key.to_string(), version)])
        .await?
        .pop()
        .ok_or_else(|| not_set(&service, &key))?;
    let value = crate::secrets::open(&state, &record)?;
    // Audited before it is answered: no audit entry, no value.
    state
        .store
        .insert_audit(&AuditRecord {
            id: 0,
            at: ops::now(),
            actor: principal.actor().to_owned(),
            action: "secret.reveal".into(),
            target: Some(format!("{service}{key}")),
            address: principal.address.map(|a| a.to_string()),
            outcome: "ok".into(),
            reason: Some(justification.to_owned()),
        })
        .await?;
    Ok(Json(RevealResponse {
        service: service.to_string(),
        key: key.to_string(),
        version: version.0,
        value,
    }))
}

/// The key the service signs its last-known-good file with (the client library's `lkg_key`):
/// derived from the manager's `lkg-hmac.key`, so it stays the same when the service's token is
/// replaced. For admins and the service's own token.
#[utoipa::path(get, path = "/api/v1/services/{service}/lkg-key", tag = "secrets",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    responses(
        (status = 200, body = LkgKeyResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn lkg_key(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
) -> Result<Json<LkgKeyResponse>, ApiError> {
    if principal.role == Role::Service {
        principal.require_reader_of(service.as_str())?;
    } else {
        principal.require(Role::Admin)?;
    }
    let key = crate::keys::lkg_key_for(&state.keys.lkg_root, service.as_str());
    Ok(Json(LkgKeyResponse {
        service: service.to_string(),
        root_key_id: state.keys.lkg_root.id().to_owned(),
        key: base64::engine::general_purpose::STANDARD.encode(&key[..]),
    }))
}

/// `POST …/secrets/{key}/reveal`: the wildcard catches the whole tail, so the verb is its
/// last segment.
pub async fn post_secret(
    state: State<AppState>,
    principal: Principal,
    service: ServicePath,
    Path((name, tail)): Path<(String, String)>,
    body: Result<JsonBody<RevealRequest>, ApiError>,
) -> Response {
    // The route decides before the body is read: a POST anywhere but `…/reveal` is a method
    // the secret itself does not have.
    let Some(key) = tail.strip_suffix("/reveal").filter(|key| !key.is_empty()) else {
        return method_not_allowed("PUT, DELETE");
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    reveal_secret(
        state,
        principal,
        service,
        Path((name, key.to_owned())),
        body,
    )
    .await
    .into_response()
}

/// Any other method on the secret routes: 405, allowing what the URL's form takes.
pub async fn other_method(Path((_, tail)): Path<(String, String)>) -> Response {
    if tail.ends_with("/reveal") {
        method_not_allowed("POST")
    } else {
        method_not_allowed("PUT, DELETE")
    }
}

/// `…/secrets/{key}/reveal` answers only POST: a PUT or DELETE there is 405, not a write to a
/// secret key whose last token is `reveal` (a nested key of that name is set through the
/// config instead).
fn only_post_reveals(tail: &str) -> Option<Response> {
    tail.ends_with("/reveal")
        .then(|| method_not_allowed("POST"))
}

/// 405 with the `Allow` header RFC 9110 asks for.
fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = ApiError::MethodNotAllowed.into_response();
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static(allow),
    );
    response
}

/// The key named in the URL, if the service's schema marks it secret.
async fn secret_key(
    state: &AppState,
    service: &ServiceName,
    raw: &str,
) -> Result<KeyPath, ApiError> {
    let key = KeyPath::parse(raw.trim_end_matches('/'))?;
    let schema = crate::schemas::schema_of(state, service).await?;
    let Some(schema) = schema else {
        return Err(match state.store.service(service).await? {
            Some(s) if s.document.is_some() => ApiError::NotFound(format!(
                "service {service} has no schema, so it has no secret keys; its schema marks \
                 them with \"x-secret\": true"
            )),
            _ => ops::not_found(service),
        });
    };
    if !schema.secret_keys().contains(&key) {
        return Err(ApiError::NotFound(format!(
            "{key} is not a secret key of {service}: its schema does not mark it \"x-secret\""
        )));
    }
    Ok(key)
}

fn not_set(service: &ServiceName, key: &KeyPath) -> ApiError {
    ApiError::NotFound(format!("service {service} has no secret set at {key}"))
}

/// The config version and every secret key of a service, with what is known of its value.
async fn secret_infos(
    state: &AppState,
    service: &ServiceName,
) -> Result<(u64, Vec<SecretInfo>), ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    let current = state.store.service(service).await?;
    if schema.is_none() && current.as_ref().is_none_or(|s| s.document.is_none()) {
        return Err(ops::not_found(service));
    }
    let stored = current
        .as_ref()
        .and_then(|s| s.document.clone())
        .unwrap_or_default();
    let version = current.as_ref().map_or(0, |s| s.version.0);
    let Some(schema) = schema else {
        return Ok((version, Vec::new()));
    };
    let places = crate::secrets::places_of(&stored);
    let records: HashMap<String, dials_store::SecretRecord> = state
        .store
        .secrets(service, &places)
        .await?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    let infos = schema
        .settings()
        .iter()
        .filter(|s| s.secret)
        .map(|s| {
            let record = records.get(s.key.as_str());
            SecretInfo {
                key: s.key.to_string(),
                title: s.title.clone(),
                set: record.is_some(),
                version: record.map(|r| r.version.0),
                updated_at: record.map(|r| r.created_at),
                updated_by: record.map(|r| r.created_by.clone()),
                key_id: record.map(|r| r.key_id.clone()),
            }
        })
        .collect();
    Ok((version, infos))
}
