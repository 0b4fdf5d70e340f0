//! `/health` and `/api/v1/status`.

use axum::Json;
use axum::extract::State;
use dials_wire::{DatabaseStatus, Health, Mode, Problem, ReplicaStatus, Status};

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
    // Looked at now, so the answer is never a check behind.
    crate::readonly::check(&state).await;
    let read_only = state.modal.read_only();
    let store = &state.store;
    let ping = store.ping().await;
    let (schema_version, revision, outbox_backlog) = if ping.is_ok() || read_only.is_some() {
        (
            store.schema_version().await?,
            store.latest_revision().await?,
            store.outbox_backlog().await?,
        )
    } else {
        (0, 0, 0)
    };
    let write_failure = state
        .write_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // A database that cannot be read (or whose file is gone) takes no writes: the manager
    // serves its snapshot, read-only, until the database is healthy again. A failing write (a
    // full disk) is shown, but writes go on being tried, so they resume by themselves when
    // space returns.
    let error = match (&read_only, &ping) {
        (Some(reason), _) => Some(reason.clone()),
        (None, Err(e)) => Some(e.to_string()),
        (None, Ok(())) => write_failure,
    };
    Ok(Json(Status {
        mode: if read_only.is_some() || ping.is_err() {
            Mode::ReadOnly
        } else {
            Mode::Normal
        },
        database: DatabaseStatus {
            backend: store.backend().to_owned(),
            ok: error.is_none(),
            error,
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
        replica: Some(ReplicaStatus {
            id: state.replica.id.clone(),
            shared: state.replica.shared,
            publishing: state.publisher.is_some() && state.replica.is_leading(),
            followed_revision: if state.replica.shared {
                state.replica.followed()
            } else {
                revision
            },
        }),
    }))
}
