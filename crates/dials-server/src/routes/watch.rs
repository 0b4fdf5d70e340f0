//! `GET /api/v1/watch`: every change after a revision, as Server-Sent Events.
//!
//! The stream subscribes to this process's change events *before* replaying from the store, so
//! nothing committed in between is missed; a live event that does not follow the last one sent
//! (events can be announced out of order) makes it re-read from the store instead, so the
//! stream is gap-free and in revision order.
//!
//! Memory is bounded per stream: replay reads small pages, and a client that stops reading is
//! dropped once its queue holds [`crate::events::SUBSCRIBER_BYTES`], with a last `lagged` event
//! naming the revision to resume from (browsers' `EventSource` resumes by itself through
//! `Last-Event-ID`). Every event carries the database's epoch, and a `since` beyond the latest
//! revision is refused, so a client notices a re-created database instead of waiting silently.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use dials_domain::secret;
use dials_wire::{Problem, WatchEvent};
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::events::Note;
use crate::extract::{Query, service_name};
use crate::{ApiError, AppState, Principal, Role};

/// Changes read from the store at a time while replaying: each may carry a document of up to
/// the body limit, so pages stay small.
const REPLAY_PAGE: u32 = 32;

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
        (status = 400, body = Problem, content_type = "application/problem+json",
            description = "A bad parameter, or `since` beyond the latest revision (a future revision: the database may have been re-created; re-read everything)"),
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
    let latest = state.store.latest_revision().await?;
    let mut cursor = match last_event_id.or(params.since) {
        Some(rev) if rev > latest => {
            return Err(ApiError::BadRequest(format!(
                "revision {rev} is a future revision: the latest is {latest} in epoch {}; the \
                 database may have been re-created, so read everything again",
                state.epoch
            )));
        }
        Some(rev) => rev,
        None => latest,
    };
    let epoch = state.epoch.0;
    let store = state.store.clone();
    let shared = state.clone();
    let mut stopping = state.stopping.subscribe();
    let open = crate::metrics::WatchStreamOpen::open();
    let stream = async_stream::stream! {
        let _open = open;
        let mut replay = true;
        loop {
            if replay {
                match store.changes_since(cursor, REPLAY_PAGE).await {
                    Ok(page) => {
                        let full = page.len() == REPLAY_PAGE as usize;
                        for record in page {
                            cursor = record.revision.0;
                            // Instance overrides are no services; the stream shows services.
                            if record.service.is_instance_layer() {
                                continue;
                            }
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
                                epoch,
                                config: record
                                    .document
                                    .map(|d| secret::mask(&d, &secret_keys).into_value())
                                    .unwrap_or_default(),
                            };
                            if only.as_deref().is_none_or(|s| s == event.service) {
                                yield Ok(sse_change(event.revision, &serde_json::to_string(&event).unwrap_or_default()));
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
                Some(Note::Change(change)) if change.revision <= cursor => {}
                Some(Note::Change(change)) if change.revision == cursor + 1 => {
                    cursor = change.revision;
                    if only.as_deref().is_none_or(|s| s == change.service) {
                        yield Ok(sse_change(change.revision, std::str::from_utf8(&change.json).unwrap_or_default()));
                    }
                }
                Some(Note::Change(_)) => replay = true,
                Some(Note::Lagged) => {
                    // Too far behind to keep queueing for: say where to resume, and end.
                    let resume = serde_json::json!({"resume_from": cursor, "epoch": epoch});
                    yield Ok(Event::default().event("lagged").data(resume.to_string()));
                    break;
                }
                None => break,
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn sse_change(revision: u64, json: &str) -> Event {
    Event::default()
        .event("change")
        .id(revision.to_string())
        .data(json)
}
