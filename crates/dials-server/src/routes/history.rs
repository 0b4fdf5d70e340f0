//! `GET /api/v1/history`: per-key change records, newest first, with filters and paging.

use axum::Json;
use axum::extract::State;
use std::collections::HashMap;

use dials_domain::{KeyPath, ServiceName};
use dials_store::HistoryQuery;
use dials_wire::{HistoryEntry, HistoryPage, Problem};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::extract::{Page, Query, service_name};
use crate::ops;
use crate::{ApiError, AppState, Principal, Role};

/// Filters of `GET /api/v1/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only this service.
    service: Option<String>,
    /// With `service`: only the override document of this instance of it.
    instance: Option<String>,
    /// Only this key (a JSON Pointer) and the keys below it.
    key: Option<String>,
    /// Only changes at or after this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    since: Option<OffsetDateTime>,
    /// Only changes before this instant (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    until: Option<OffsetDateTime>,
    /// Only changes by this actor (token name).
    actor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Per-key change records, newest first.
#[utoipa::path(get, path = "/api/v1/history", tag = "history", security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, body = HistoryPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<HistoryParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    principal.require(Role::Viewer)?;
    let service = params.service.as_deref().map(service_name).transpose()?;
    let service = match (service, params.instance.as_deref()) {
        (Some(service), Some(instance)) => {
            Some(ops::override_id(&service, &ops::instance_name(instance)?))
        }
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "`instance` names an instance of a service: send `service` too".into(),
            ));
        }
        (service, None) => service,
    };
    if let Some(service) = &service
        && state.store.service(service).await?.is_none()
    {
        return Err(ops::not_found(service));
    }
    let key = params.key.as_deref().map(KeyPath::parse).transpose()?;
    let page = Page::parse(params.limit, params.cursor.as_deref())?;
    let query = HistoryQuery {
        service,
        key: key.map(|k| k.to_string()),
        since: params.since,
        until: params.until,
        actor: params.actor,
        before_id: page.before_id,
        limit: page.fetch(),
    };
    let mut records = state.store.history(&query).await?;
    let next_cursor = page.finish(&mut records, |r| r.id);
    // Secrets are redacted by what each service's schema marks secret now, on top of the
    // placeholders history holds.
    let mut secret_keys: HashMap<ServiceName, Vec<KeyPath>> = HashMap::new();
    let mut items = Vec::with_capacity(records.len());
    for r in records {
        if !secret_keys.contains_key(&r.service) {
            // An instance override's secrets are its service's.
            let owner = ops::owner_of(&r.service);
            let schema = crate::schemas::schema_of(&state, &owner).await?;
            secret_keys.insert(
                r.service.clone(),
                crate::secrets::keys_of(schema.as_deref()),
            );
        }
        let keys = &secret_keys[&r.service];
        let key = KeyPath::parse(&r.key)?;
        items.push(HistoryEntry {
            revision: r.revision.0,
            service: r.service.to_string(),
            version: r.version.0,
            old: crate::secrets::shown(&key, r.old, keys),
            new: crate::secrets::shown(&key, r.new, keys),
            key: r.key,
            kind: r.kind.as_str().to_owned(),
            actor: r.actor,
            reason: r.reason,
            at: r.at,
        });
    }
    Ok(Json(HistoryPage { items, next_cursor }))
}
