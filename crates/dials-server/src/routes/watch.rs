//! `GET /api/v1/watch`: every change after a revision, as Server-Sent Events.
//!
//! The stream subscribes to this process's change events *before* replaying from the store, so
//! nothing committed in between is missed; a live event that does not follow the last one sent
//! (events can be announced out of order, or dropped when a watcher lags) makes it re-read from
//! the store instead, so the stream is gap-free and in revision order.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use dials_domain::secret;
use dials_wire::{Problem, WatchEvent};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use crate::extract::{Query, service_name};
use crate::{ApiError, AppState, Principal, Role};

const REPLAY_PAGE: u32 = 500;

/// Query of `GET /api/v1/watch`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// Send every change after this revision (default: only changes from now on). A
    /// `Last-Event-ID` header, as browsers send when reconnecting, takes precedence.
    since: Option<u64>,
    /// Only this service's changes.
    service: Option<String>,
}

/// Server-Sent Events: `event: change`, `id: <revision>`, data a `WatchEvent`.
#[utoipa::path(get, path = "/api/v1/watch", tag = "fleet", security(("bearer" = [])),
    params(WatchParams),
    responses(
        (status = 200, description = "text/event-stream of WatchEvent", body = WatchEvent, content_type = "text/event-stream"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn watch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<WatchParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Role::Viewer)?;
    let only = params
        .service
        .as_deref()
        .map(service_name)
        .transpose()?
        .map(|s| s.to_string());
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be a revision number".into())
                })?,
        ),
        None => None,
    };
    // Subscribe first: whatever commits from here on is either replayed or received live.
    let mut live = state.events.subscribe();
    let mut cursor = match last_event_id.or(params.since) {
        Some(rev) => rev,
        None => state.store.latest_revision().await?,
    };
    let store = state.store.clone();
    let shared = state.clone();
    let mut stopping = state.stopping.subscribe();
    let stream = async_stream::stream! {
        let mut replay = true;
        loop {
            if replay {
                match store.changes_since(cursor, REPLAY_PAGE).await {
                    Ok(page) => {
                        let full = page.len() == REPLAY_PAGE as usize;
                        for record in page {
                            cursor = record.revision.0;
                            let secret_keys = match crate::schemas::schema_of(&shared, &record.service).await {
                                Ok(schema) => crate::secrets::keys_of(schema.as_deref()),
                                Err(e) => {
                                    tracing::warn!(error = %e, "watch stream cannot read a schema; closing it");
                                    return;
                                }
                            };
                            let event = WatchEvent {
                                revision: record.revision.0,
                                service: record.service.to_string(),
                                version: record.version.0,
                                kind: record.kind.as_str().to_owned(),
                                actor: record.actor,
                                reason: record.reason,
                                at: record.at,
                                config: record
                                    .document
                                    .map(|d| secret::mask(&d, &secret_keys).into_value())
                                    .unwrap_or_default(),
                            };
                            if only.as_deref().is_none_or(|s| s == event.service) {
                                yield Ok(sse_event(&event));
                            }
                        }
                        if full {
                            continue;
                        }
                        replay = false;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch stream cannot read changes; closing it");
                        break;
                    }
                }
            }
            let received = tokio::select! {
                received = live.recv() => received,
                // A stream never ends by itself: it must end for a graceful stop to finish.
                _ = stopping.wait_for(|stop| *stop) => break,
            };
            match received {
                Ok(event) if event.revision <= cursor => {}
                Ok(event) if event.revision == cursor + 1 => {
                    cursor = event.revision;
                    if only.as_deref().is_none_or(|s| s == event.service) {
                        yield Ok(sse_event(&event));
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => replay = true,
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn sse_event(event: &WatchEvent) -> Event {
    Event::default()
        .event("change")
        .id(event.revision.to_string())
        .json_data(event)
        .unwrap_or_else(|_| Event::default().comment("unserializable event"))
}
