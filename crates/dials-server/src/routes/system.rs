//! `/health` and `/api/v1/status`.

use axum::Json;
use axum::extract::State;
use dials_wire::{DatabaseStatus, Health, Mode, Problem, Status};

use crate::{ApiError, AppState, Principal, Role};

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { ok: true })
}

/// Mode, database, epoch, backlog and uptime.
#[utoipa::path(get, path = "/api/v1/status", tag = "system", security(("bearer" = [])),
    responses(
        (status = 200, body = Status),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn status(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Status>, ApiError> {
    principal.require(Role::Viewer)?;
    let store = &state.store;
    let ok = store.ping().await.is_ok();
    let (schema_version, revision, outbox_backlog) = if ok {
        (
            store.schema_version().await?,
            store.latest_revision().await?,
            store.outbox_backlog().await?,
        )
    } else {
        (0, 0, 0)
    };
    Ok(Json(Status {
        mode: Mode::Normal,
        database: DatabaseStatus {
            backend: store.backend().to_owned(),
            ok,
            schema_version,
        },
        broker: match &state.publisher {
            Some(publisher) => serde_json::to_value(publisher.state()).unwrap_or_default(),
            None => serde_json::json!({"mode": "none", "connected": false}),
        },
        epoch: state.epoch.0,
        revision,
        outbox_backlog,
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}
