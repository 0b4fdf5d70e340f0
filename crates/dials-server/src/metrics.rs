//! Prometheus metrics: the process-wide recorder, what each metric means, the HTTP layer that
//! counts requests by route template, and the gauges read from the state at scrape time.
//!
//! Recording goes through the `metrics` facade, so the crates that record (this one and
//! `dials-mqtt`) need no handle passed around, and a recording is a few atomic operations on a
//! registered handle: label values are static strings (route templates are interned once, as
//! they are few), so nothing is allocated per request. Gauges that describe the state (outbox,
//! database, instances, watchers, broker) are computed when `/metrics` is read, not kept up to
//! date on the write path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::{ApiError, AppState};

/// Bucket bounds (seconds) of every latency histogram: 0.25 ms to 10 s.
const BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Gauges not set for this long disappear (a deleted service's instance gauges); every gauge
/// is set again at each scrape, so a scraped gauge never goes stale.
const GAUGE_IDLE: Duration = Duration::from_secs(300);

/// The route label of requests that matched no API route (the web UI's files, unknown paths).
const FALLBACK_ROUTE: &str = "fallback";

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. `None` when another recorder was
/// installed first (an embedding program's), in which case `/metrics` has nothing to render.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS);
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Drains histogram samples into their buckets and forgets idle gauges, every few seconds, so
/// memory stays flat however rarely `/metrics` is read.
pub async fn upkeep_forever() {
    let Some(handle) = recorder() else { return };
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// The HELP line of each metric (names are the contract with dashboards: see
/// `docs/grafana/dials.json`).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "dials_http_requests_total",
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        "dials_http_request_duration_seconds",
        "Time from request to response head, by route template and method"
    );
    describe_histogram!(
        "dials_store_commit_duration_seconds",
        "Durable write latency: from handing a change to the store until it is committed and fsynced"
    );
    describe_counter!(
        "dials_config_writes_total",
        "Committed config changes (each a new version), by kind"
    );
    describe_counter!(
        "dials_write_conflicts_total",
        "Writes refused because the service changed meanwhile (409 stale expected_version, 412 failed If-Match)"
    );
    describe_counter!(
        "dials_validation_failures_total",
        "Requests refused because a document did not fit its schema (422)"
    );
    describe_counter!(
        "dials_auth_failures_total",
        "Requests denied: no or bad credentials (401) or role too low (403)"
    );
    describe_counter!(
        "dials_rate_limited_total",
        "Requests answered 429 because their address failed authentication too often"
    );
    describe_gauge!(
        "dials_outbox_backlog",
        "Committed changes not yet acknowledged by the MQTT broker"
    );
    describe_gauge!(
        "dials_outbox_oldest_pending_seconds",
        "Age of the oldest change not yet acknowledged by the broker (0 when none)"
    );
    describe_gauge!(
        "dials_mqtt_connected",
        "1 while the manager's broker connections are up and subscribed, else 0"
    );
    describe_counter!(
        "dials_mqtt_publishes_total",
        "MQTT messages written to the broker (envelopes, health, audit, repairs)"
    );
    describe_histogram!(
        "dials_mqtt_puback_duration_seconds",
        "Time from writing a QoS 1 publish to the broker's PUBACK"
    );
    describe_counter!(
        "dials_mqtt_connects_total",
        "Successful connections to the broker (the first one and every reconnect)"
    );
    describe_counter!(
        "dials_mqtt_reconnects_total",
        "Connections to the broker after a lost one"
    );
    describe_counter!("dials_mqtt_disconnects_total", "Broker connections lost");
    describe_counter!(
        "dials_applied_reports_total",
        "Applied reports received from instances, by status (applied, rejected, failed, malformed)"
    );
    describe_gauge!(
        "dials_service_instances",
        "Instances of a service that reported, by service"
    );
    describe_gauge!(
        "dials_service_instances_current",
        "Instances of a service whose last report is `applied` for its current version, by service"
    );
    describe_gauge!(
        "dials_service_version",
        "A service's current version, by service"
    );
    describe_gauge!("dials_services", "Services with a document");
    describe_gauge!(
        "dials_watch_streams",
        "Open Server-Sent Events watch streams"
    );
    describe_gauge!(
        "dials_database_size_bytes",
        "Size of the SQLite database files (database and write-ahead log)"
    );
    describe_gauge!(
        "dials_mode",
        "1 for the mode the manager is in (normal, read-only), 0 for the other"
    );
    describe_gauge!(
        "dials_database_up",
        "1 while the database answers and the last write reached it, else 0"
    );
    describe_gauge!("dials_build_info", "Always 1; the version is a label");
    describe_gauge!("dials_uptime_seconds", "Seconds since the manager started");

    // Counters exist from the start at 0, so `rate()` and `increase()` see their first event.
    for counter in [
        metrics::counter!("dials_write_conflicts_total", "status" => "409"),
        metrics::counter!("dials_write_conflicts_total", "status" => "412"),
        metrics::counter!("dials_validation_failures_total"),
        metrics::counter!("dials_auth_failures_total", "status" => "401"),
        metrics::counter!("dials_auth_failures_total", "status" => "403"),
        metrics::counter!("dials_rate_limited_total"),
        metrics::counter!("dials_mqtt_publishes_total"),
        metrics::counter!("dials_mqtt_connects_total"),
        metrics::counter!("dials_mqtt_reconnects_total"),
        metrics::counter!("dials_mqtt_disconnects_total"),
        metrics::counter!("dials_applied_reports_total", "status" => "applied"),
        metrics::counter!("dials_applied_reports_total", "status" => "rejected"),
        metrics::counter!("dials_applied_reports_total", "status" => "failed"),
        metrics::counter!("dials_applied_reports_total", "status" => "malformed"),
        metrics::counter!("dials_config_writes_total", "kind" => "put"),
        metrics::counter!("dials_config_writes_total", "kind" => "patch"),
    ] {
        counter.increment(0);
    }
}

/// HTTP request counters and histograms, registered once per (route, method, status).
type HttpKey = (&'static str, &'static str, u16);

fn http_handles() -> &'static RwLock<HashMap<HttpKey, (Counter, Histogram)>> {
    static HANDLES: OnceLock<RwLock<HashMap<HttpKey, (Counter, Histogram)>>> = OnceLock::new();
    HANDLES.get_or_init(Default::default)
}

/// A route template as a `&'static str`. Templates come from the router, so there are only
/// as many as there are routes.
fn intern(route: &str) -> &'static str {
    static ROUTES: OnceLock<RwLock<Vec<&'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(found) = routes
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|r| **r == route)
    {
        return found;
    }
    let mut routes = routes
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = routes.iter().find(|r| **r == route) {
        return found;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.push(leaked);
    leaked
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as its three digits, for the label.
fn status_label(status: u16) -> &'static str {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    let labels = LABELS.get_or_init(|| {
        (0..600u16)
            .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
            .collect()
    });
    labels.get(usize::from(status)).copied().unwrap_or("other")
}

fn record_http(route: &'static str, method: &Method, status: u16, elapsed: Duration) {
    let method = method_label(method);
    let key = (route, method, status);
    let seen = http_handles()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        .cloned();
    let (count, latency) = match seen {
        Some(handles) => handles,
        None => {
            let handles = (
                metrics::counter!("dials_http_requests_total",
                    "route" => route, "method" => method, "status" => status_label(status)),
                metrics::histogram!("dials_http_request_duration_seconds",
                    "route" => route, "method" => method),
            );
            http_handles()
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, handles.clone());
            handles
        }
    };
    count.increment(1);
    latency.record(elapsed);
}

/// Middleware for matched routes: counts each request under its route template
/// (`/api/v1/services/{service}/config`), never its path, so service names stay out of labels.
pub async fn track_route(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let route = matched.map_or(FALLBACK_ROUTE, |m| intern(m.as_str()));
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    record_http(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Middleware for requests no route matched (the web UI's files, unknown paths).
pub async fn track_fallback(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    record_http(
        FALLBACK_ROUTE,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Open watch streams.
static WATCH_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// Held by a watch stream while it is open, for `dials_watch_streams`.
#[derive(Debug)]
pub struct WatchStreamOpen(());

impl WatchStreamOpen {
    /// Counts one more open stream until the value is dropped.
    pub fn open() -> Self {
        WATCH_STREAMS.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for WatchStreamOpen {
    fn drop(&mut self) {
        WATCH_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts the refusals dashboards watch, as an error is turned into its answer.
pub fn on_error(error: &ApiError) {
    match error {
        ApiError::Conflict { .. } | ApiError::Moved(_) => {
            metrics::counter!("dials_write_conflicts_total", "status" => "409").increment(1);
        }
        ApiError::PreconditionFailed { .. } => {
            metrics::counter!("dials_write_conflicts_total", "status" => "412").increment(1);
        }
        ApiError::Unprocessable { .. } => {
            metrics::counter!("dials_validation_failures_total").increment(1);
        }
        ApiError::Unauthorized(_) => {
            metrics::counter!("dials_auth_failures_total", "status" => "401").increment(1);
        }
        ApiError::Forbidden(_) => {
            metrics::counter!("dials_auth_failures_total", "status" => "403").increment(1);
        }
        ApiError::TooManyRequests { .. } => {
            metrics::counter!("dials_rate_limited_total").increment(1);
        }
        _ => {}
    }
}

/// Records one durable write: the time the store took to commit it (queue, transaction, fsync).
pub fn store_commit(elapsed: Duration) {
    metrics::histogram!("dials_store_commit_duration_seconds").record(elapsed);
}

/// Counts one committed change.
pub fn committed(kind: dials_domain::ChangeKind) {
    use dials_domain::ChangeKind;
    let counter = match kind {
        ChangeKind::Put => metrics::counter!("dials_config_writes_total", "kind" => "put"),
        ChangeKind::Patch => metrics::counter!("dials_config_writes_total", "kind" => "patch"),
        ChangeKind::Restore => metrics::counter!("dials_config_writes_total", "kind" => "restore"),
        ChangeKind::Delete => metrics::counter!("dials_config_writes_total", "kind" => "delete"),
        ChangeKind::Migrate => metrics::counter!("dials_config_writes_total", "kind" => "migrate"),
        ChangeKind::Secret => metrics::counter!("dials_config_writes_total", "kind" => "secret"),
    };
    counter.increment(1);
}

/// Sets every state gauge from what the manager holds now, then renders the exposition text.
pub async fn scrape(state: &AppState) -> Option<String> {
    let handle = recorder()?;
    refresh(state).await;
    Some(handle.render())
}

async fn refresh(state: &AppState) {
    use metrics::gauge;
    let store = &state.store;
    let ping = store.ping().await;
    let write_failed = state
        .write_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some();
    let read_only = ping.is_err();
    gauge!("dials_mode", "mode" => "normal").set(if read_only { 0.0 } else { 1.0 });
    gauge!("dials_mode", "mode" => "read-only").set(if read_only { 1.0 } else { 0.0 });
    gauge!("dials_database_up").set(if read_only || write_failed { 0.0 } else { 1.0 });
    gauge!("dials_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!("dials_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    gauge!("dials_watch_streams").set(WATCH_STREAMS.load(Ordering::Relaxed) as f64);
    if let Some(size) = database_size(&state.settings.database_url) {
        gauge!("dials_database_size_bytes").set(size as f64);
    }
    let connected = state
        .publisher
        .as_ref()
        .is_some_and(|p| p.state().connected);
    gauge!("dials_mqtt_connected").set(if connected { 1.0 } else { 0.0 });
    if read_only {
        return;
    }
    if let Ok(backlog) = store.outbox_backlog().await {
        gauge!("dials_outbox_backlog").set(backlog as f64);
    }
    if let Ok(oldest) = store.pending_outbox(0, 1).await {
        let age = oldest.first().map_or(0.0, |item| {
            (time::OffsetDateTime::now_utc() - item.at)
                .as_seconds_f64()
                .max(0.0)
        });
        gauge!("dials_outbox_oldest_pending_seconds").set(age);
    }
}

/// What `/metrics` shows of one service: its version and its instances.
#[derive(Debug)]
pub struct ServiceGauges<'a> {
    /// The service.
    pub service: &'a str,
    /// Its current version.
    pub version: u64,
    /// Instances that reported.
    pub instances: u64,
    /// Instances whose last report is `applied` for the current version.
    pub current: u64,
}

/// Sets the per-service gauges (one series per live service).
pub fn services(all: &[ServiceGauges<'_>]) {
    use metrics::gauge;
    gauge!("dials_services").set(all.len() as f64);
    for s in all {
        let name = s.service.to_owned();
        gauge!("dials_service_version", "service" => name.clone()).set(s.version as f64);
        gauge!("dials_service_instances", "service" => name.clone()).set(s.instances as f64);
        gauge!("dials_service_instances_current", "service" => name).set(s.current as f64);
    }
}

/// The size of a SQLite database and its write-ahead log, when the URL names a file.
fn database_size(url: &str) -> Option<u64> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let main = std::fs::metadata(path).ok()?.len();
    let wal = std::fs::metadata(PathBuf::from(format!("{path}-wal")))
        .map(|m| m.len())
        .unwrap_or(0);
    Some(main + wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_are_interned_once() {
        let a = intern("/api/v1/services/{service}/config");
        let b = intern(&String::from("/api/v1/services/{service}/config"));
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn statuses_are_their_digits() {
        assert_eq!(status_label(409), "409");
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(999), "other");
    }

    #[test]
    fn database_size_reads_only_sqlite_files() {
        assert_eq!(database_size("sqlite::memory:"), None);
        assert_eq!(database_size("postgres://x"), None);
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dials.db");
        std::fs::write(&db, [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("dials.db-wal"), [0u8; 20]).unwrap();
        assert_eq!(
            database_size(&format!("sqlite://{}", db.display())),
            Some(120)
        );
    }
}
