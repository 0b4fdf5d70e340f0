//! `POST /api/v1/backups` and `GET /api/v1/backups`: backups of the database over the API, in
//! the backup folder of the server's data directory (`<data-dir>/backups`), as
//! `dials backup create|list` takes them on the data directory.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dials_wire::{BackupEntry, Problem};

use crate::routes::security::audit;
use crate::{ApiError, AppState, Principal, Role};

fn entry(path: &std::path::Path, meta: anyhow::Result<crate::backup::BackupMeta>) -> BackupEntry {
    let path = path.display().to_string();
    match meta {
        Ok(meta) => BackupEntry {
            path,
            metadata: Some(meta),
            error: None,
        },
        Err(e) => BackupEntry {
            path,
            metadata: None,
            error: Some(format!("{e:#}")),
        },
    }
}

fn database(state: &AppState) -> Result<std::path::PathBuf, ApiError> {
    crate::backup::database_path(&state.settings.database_url)
        .map_err(|e| ApiError::Refused(format!("{e:#}")))
}

/// Takes a consistent backup of the database now (a read transaction: writes go on).
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups", security(("bearer" = [])),
    responses(
        (status = 201, description = "The backup and its metadata", body = BackupEntry),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Read-only mode, or the database or its disk cannot take the copy",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_backup(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<(StatusCode, Json<BackupEntry>), ApiError> {
    principal.require(Role::Admin)?;
    let db = database(&state)?;
    let dir = crate::backup::default_dir(&state.settings.data_dir);
    let (file, meta) =
        tokio::task::spawn_blocking(move || crate::backup::create(&db, &dir, &|_, _| {}))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| {
                ApiError::Unavailable(dials_store::StoreError::Unavailable {
                    reason: format!("cannot take a backup: {e:#}"),
                    source: None,
                })
            })?;
    audit(
        &state,
        &principal,
        "backup.create",
        Some(file.display().to_string()),
    )
    .await;
    Ok((StatusCode::CREATED, Json(entry(&file, Ok(meta)))))
}

/// The backups in the server's backup folder, oldest first.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every backup, with its metadata or why it cannot be read",
            body = [BackupEntry]),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_backups(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<BackupEntry>>, ApiError> {
    principal.require(Role::Admin)?;
    let dir = crate::backup::default_dir(&state.settings.data_dir);
    let all = tokio::task::spawn_blocking(move || crate::backup::list(&dir))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)?;
    Ok(Json(
        all.into_iter()
            .map(|(file, meta)| entry(&file, meta))
            .collect(),
    ))
}
