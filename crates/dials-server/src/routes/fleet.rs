//! What the fleet sees and reports: the envelope signing keys and per-instance applied status.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use dials_wire::{
    InstanceInfo, InstancesResponse, InstancesSummary, KeyInfo, KeysResponse, Problem,
};

use crate::extract::ServicePath;
use crate::{ApiError, AppState, Principal, Role};

/// The Ed25519 key that signs MQTT envelopes, and keys retired within the last 7 days (still
/// trusted while services move over). Public: services pin them.
#[utoipa::path(get, path = "/api/v1/keys", tag = "fleet",
    responses((status = 200, body = KeysResponse)))]
pub async fn keys(State(state): State<AppState>) -> Json<KeysResponse> {
    let key_id = state.keys.signer.key_id().to_owned();
    let public_key = state.keys.signer.public_key_base64();
    let mut keys = vec![KeyInfo {
        key_id: key_id.clone(),
        public_key: public_key.clone(),
        current: true,
    }];
    keys.extend(state.keys.retired_signing.iter().map(|k| KeyInfo {
        key_id: k.key_id.clone(),
        public_key: k.public_key.clone(),
        current: false,
    }));
    Json(KeysResponse {
        keys,
        key_id,
        public_key,
    })
}

/// What each running instance of a service last reported on `config/applied/{service}/{instance}`.
#[utoipa::path(get, path = "/api/v1/services/{service}/instances", tag = "fleet",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name")),
    responses(
        (status = 200, body = InstancesResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn instances(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
) -> Result<Json<InstancesResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let current = state.store.service(&service).await?;
    let reports = state.store.instances(&service).await?;
    if current.is_none() && reports.is_empty() {
        return Err(crate::ops::not_found(&service));
    }
    let version = current
        .filter(|s| s.document.is_some())
        .map_or(0, |s| s.version.0);
    let instances = reports
        .into_iter()
        .map(|r| InstanceInfo {
            current: r.status == "applied" && r.version.0 == version,
            instance: r.instance,
            version: r.version.0,
            status: r.status,
            error: r.error,
            schema_hash: r.schema_hash,
            overrides: r.overrides,
            reported_at: r.reported_at,
            received_at: r.received_at,
        })
        .collect();
    Ok(Json(InstancesResponse {
        service: service.to_string(),
        version,
        instances,
    }))
}

/// Instance counts per service: how many report anything, how many run the current version.
pub async fn summaries(
    state: &AppState,
    versions: &HashMap<String, u64>,
) -> Result<HashMap<String, InstancesSummary>, ApiError> {
    let mut out: HashMap<String, InstancesSummary> = HashMap::new();
    for r in state.store.all_instances().await? {
        let entry = out.entry(r.service.to_string()).or_default();
        entry.total += 1;
        if r.status == "applied" && versions.get(r.service.as_str()) == Some(&r.version.0) {
            entry.current += 1;
        }
    }
    Ok(out)
}
