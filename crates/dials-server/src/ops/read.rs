//! The read half: a service's current config as each reader sees it, through the cache.

use std::sync::Arc;

use axum::http::HeaderValue;
use bytes::Bytes;
use dials_domain::{Document, ServiceName, Version, secret};
use dials_schema::CompiledSchema;
use dials_store::ServiceState;
use dials_wire::ConfigResponse;

use crate::cache::CachedConfig;
use crate::{ApiError, AppState};

/// The 404 for a service that does not exist (or was deleted).
pub fn not_found(service: &ServiceName) -> ApiError {
    ApiError::NotFound(format!("service {service} does not exist"))
}

/// The current config of a live service as everyone but the service itself reads it: secrets
/// masked, schema defaults filled in.
pub fn response_of(
    state: &AppState,
    s: &ServiceState,
    schema: Option<&CompiledSchema>,
) -> Result<ConfigResponse, ApiError> {
    let document = s.document.as_ref().ok_or_else(|| not_found(&s.name))?;
    let masked = secret::masked(document, &crate::secrets::keys_of(schema));
    Ok(response_with(state, s, schema, &masked, document))
}

/// The current config of `service` as its own token reads it: secrets in clear. Never cached.
pub async fn own_config(
    state: &AppState,
    service: &ServiceName,
) -> Result<ConfigResponse, ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    let current = state.store.service(service).await?;
    match (&current, &schema) {
        (Some(s), _) if s.document.is_some() => {
            let stored = s.document.as_ref().ok_or_else(|| not_found(service))?;
            let effective = crate::secrets::unsealed(state, service, stored).await?;
            Ok(response_with(
                state,
                s,
                schema.as_deref(),
                &effective,
                stored,
            ))
        }
        (_, Some(schema)) => {
            let version = current.as_ref().map_or(Version::NONE, |s| s.version);
            Ok(defaults_response(state, service, version, schema))
        }
        _ => Err(not_found(service)),
    }
}

fn response_with(
    state: &AppState,
    s: &ServiceState,
    schema: Option<&CompiledSchema>,
    shown: &Document,
    stored: &Document,
) -> ConfigResponse {
    ConfigResponse {
        service: s.name.to_string(),
        version: s.version.0,
        revision: s.revision.0,
        epoch: state.epoch.0,
        updated_at: Some(s.updated_at),
        updated_by: Some(s.updated_by.clone()),
        config: crate::schemas::with_defaults(schema, shown).into_value(),
        secrets: crate::secrets::versions_of(stored),
    }
}

/// What a service with a schema but no document reads as: all defaults, at the version it is
/// at (0 when never written).
fn defaults_response(
    state: &AppState,
    service: &ServiceName,
    version: Version,
    schema: &CompiledSchema,
) -> ConfigResponse {
    ConfigResponse {
        service: service.to_string(),
        version: version.0,
        revision: 0,
        epoch: state.epoch.0,
        updated_at: None,
        updated_by: None,
        config: schema.service_defaults(&Document::new()).into_value(),
        secrets: Default::default(),
    }
}

/// Rebuilds a service's cached config, e.g. after its schema (and so its defaults) changed.
pub async fn refresh_cache(state: &AppState, service: &ServiceName) -> Result<(), ApiError> {
    if let Some(entry) = build_entry(state, service).await? {
        state.configs.replace(service, Arc::new(entry));
    }
    Ok(())
}

/// What a read of `service` shows now, from the store; `None` for a service never written
/// that has no schema.
async fn build_entry(
    state: &AppState,
    service: &ServiceName,
) -> Result<Option<CachedConfig>, ApiError> {
    let schema = crate::schemas::schema_of(state, service).await?;
    let current = state.store.service(service).await?;
    Ok(Some(match (&current, &schema) {
        (Some(s), _) if s.document.is_some() => {
            cache_entry(&response_of(state, s, schema.as_deref())?)?
        }
        (_, Some(schema)) => {
            let version = current.as_ref().map_or(Version::NONE, |s| s.version);
            cache_entry(&defaults_response(state, service, version, schema))?
        }
        (Some(s), None) => tombstone(s.version),
        (None, None) => return Ok(None),
    }))
}

pub(super) fn cache_entry(response: &ConfigResponse) -> Result<CachedConfig, ApiError> {
    let body = serde_json::to_vec(response).map_err(|e| ApiError::Internal(e.into()))?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", response.version))
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(CachedConfig {
        version: response.version,
        etag,
        body: Some(Bytes::from(body)),
    })
}

pub(super) fn tombstone(version: Version) -> CachedConfig {
    CachedConfig {
        version: version.0,
        etag: HeaderValue::from_static("\"0\""),
        body: None,
    }
}

/// The current config of a service, from the cache or the store, with its serialized body.
pub async fn current_config(
    state: &AppState,
    service: &ServiceName,
) -> Result<(Arc<CachedConfig>, Bytes), ApiError> {
    let entry = match state.configs.get(service) {
        Some(hit) => hit,
        None => {
            // Services never written are not cached: any name may be asked for.
            let stamp = state.configs.stamp();
            let entry = Arc::new(
                build_entry(state, service)
                    .await?
                    .ok_or_else(|| not_found(service))?,
            );
            state.configs.put(service, entry, stamp)
        }
    };
    let body = entry.body.clone().ok_or_else(|| not_found(service))?;
    Ok((entry, body))
}
