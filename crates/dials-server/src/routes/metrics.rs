//! `GET /metrics`: the Prometheus text exposition of the manager's metrics.
//!
//! Like the exporters beside it, it asks for no token by default: who can read it follows the
//! address the API listens on (loopback unless `--http` says otherwise). With
//! `--metrics-require-token` it needs a token of any role from viewer up, which Prometheus sends
//! as `authorization: {credentials_file: …}`.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dials_wire::Problem;

use crate::{ApiError, AppState, Principal, Role};

/// The Prometheus text format's content type.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counters, histograms and gauges of the manager, in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 401, description = "With --metrics-require-token: no or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    if state.settings.metrics_require_token {
        let (mut parts, _) = request.into_parts();
        Principal::from_request_parts(&mut parts, &state)
            .await?
            .require(Role::Viewer)?;
    }
    // Per-service gauges: bounded by the number of services, read only when scraped.
    if let Ok(all) = state.store.services().await {
        let versions: HashMap<String, u64> = all
            .iter()
            .filter(|s| s.document.is_some() && !s.name.is_instance_layer())
            .map(|s| (s.name.to_string(), s.version.0))
            .collect();
        let summaries = super::fleet::summaries(&state, &versions)
            .await
            .unwrap_or_default();
        let gauges: Vec<_> = versions
            .iter()
            .map(|(service, version)| {
                let summary = summaries.get(service).cloned().unwrap_or_default();
                crate::metrics::ServiceGauges {
                    service,
                    version: *version,
                    instances: summary.total,
                    current: summary.current,
                }
            })
            .collect();
        crate::metrics::services(&gauges);
    }
    let text = crate::metrics::scrape(&state).await.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "no metrics recorder: another one was installed in this process"
        ))
    })?;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPOSITION));
    Ok(response)
}
