//! What the fleet sees and reports: the envelope signing keys and per-instance applied status.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use dials_domain::InstanceName;
use dials_mqtt::Topics;
use dials_wire::{InstancesResponse, InstancesSummary, KeyInfo, KeysResponse, Problem};

use dials_mqtt::MAX_INSTANCES_PER_SERVICE;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::{Query, ServicePath, decode_instance_cursor, encode_instance_cursor};
use crate::{ApiError, AppState, Principal, Role};

/// The Ed25519 key that signs MQTT envelopes, keys retired within the last 7 days (still
/// trusted while services move over), and every rotation statement, each signed by the key it
/// replaced, so a service that pinned an earlier key can follow them. Public: services pin them.
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
        rotations: state.keys.rotations.clone(),
    })
}

/// Paging of `GET /api/v1/services/{service}/instances`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstancesParams {
    /// Page size, 1 to 1000 (default 1000: a service keeps at most 1000 instances, so a request
    /// without paging gets them all).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What each running instance of a service last reported on `config/applied/{service}/{instance}`,
/// by instance name. `status` is `offline` for an instance that left (its last will or a clean
/// stop) or has been silent for longer than `--instance-timeout` (it keeps the version it last
/// reported). A service keeps at most 1000 instances: a new instance of a full service
/// takes the place of one silent for a day, or is not recorded.
#[utoipa::path(get, path = "/api/v1/services/{service}/instances", tag = "fleet",
    security(("bearer" = [])),
    params(("service" = String, Path, description = "Service name"), InstancesParams),
    responses(
        (status = 200, body = InstancesResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn instances(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Query(params): Query<InstancesParams>,
) -> Result<Json<InstancesResponse>, ApiError> {
    principal.require(Role::Viewer)?;
    let limit = params.limit.unwrap_or(MAX_INSTANCES_PER_SERVICE);
    if !(1..=MAX_INSTANCES_PER_SERVICE).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_INSTANCES_PER_SERVICE}, not {limit}"
        )));
    }
    let after = params
        .cursor
        .as_deref()
        .map(decode_instance_cursor)
        .transpose()?;
    let current = state.store.service(&service).await?;
    let mut reports = state
        .store
        .instances(&service, after.as_deref(), limit + 1)
        .await?;
    if current.is_none() && reports.is_empty() && after.is_none() {
        return Err(crate::ops::not_found(&service));
    }
    let next_cursor = if reports.len() > limit as usize {
        reports.truncate(limit as usize);
        reports.last().map(|r| encode_instance_cursor(&r.instance))
    } else {
        None
    };
    let version = current
        .filter(|s| s.document.is_some())
        .map_or(0, |s| s.version.0);
    // Connected clients report at least once a minute: one silent for longer is gone without
    // a last will (the broker restarted meanwhile, say).
    let silent_before = time::OffsetDateTime::now_utc()
        - time::Duration::try_from(state.settings.instance_timeout).unwrap_or(time::Duration::MAX);
    let instances = reports
        .into_iter()
        .map(|r| {
            let status = if r.received_at < silent_before {
                OFFLINE.to_owned()
            } else {
                r.status.clone()
            };
            (r, status)
        })
        .map(|(r, status)| crate::ops::instance_info(r, status, version))
        .collect();
    Ok(Json(InstancesResponse {
        service: service.to_string(),
        version,
        instances,
        next_cursor,
    }))
}

/// The status of an instance that is gone: its last will, or silence beyond the timeout.
const OFFLINE: &str = "offline";

/// Forgets one instance of a service (admin): what it reported is removed, and so is its
/// retained report on the broker, so it is not recorded again. An instance that is still
/// running reappears with its next report. The instance's override document, if it has one,
/// is kept (a report is what an instance says; an override is what an operator decided):
/// remove it with `DELETE …/instances/{instance}/config`.
#[utoipa::path(delete, path = "/api/v1/services/{service}/instances/{instance}", tag = "fleet",
    security(("bearer" = [])),
    params(
        ("service" = String, Path, description = "Service name"),
        ("instance" = String, Path, description = "Instance name"),
    ),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn forget_instance(
    State(state): State<AppState>,
    principal: Principal,
    ServicePath(service): ServicePath,
    Path(params): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    let instance = InstanceName::parse(&params.1)
        .map_err(|e| ApiError::BadRequest(format!("bad instance name: {e}")))?;
    if !state
        .store
        .forget_instance(&service, instance.as_str())
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "service {service} has no instance {instance}"
        )));
    }
    if let Some(publisher) = &state.publisher {
        let topics = Topics::new(state.settings.mqtt_prefix.clone());
        publisher.clear_retained(topics.applied(service.as_str(), instance.as_str()));
    }
    super::security::audit(
        &state,
        &principal,
        "instance.forget",
        Some(format!("{service}/{instance}")),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
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
