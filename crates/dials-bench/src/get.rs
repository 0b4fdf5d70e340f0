//! Read load: C keep-alive connections, each sending `GET /api/v1/services/{S}/config` back to
//! back for a fixed time, every answer checked to be 200.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use hyper::{StatusCode, Uri};

use crate::api::Api;
use crate::cpu;
use crate::http::Conn;
use crate::stats::{self, Ms, Rate, Summary};

/// No connection sends more than this many requests, whatever the duration.
const MAX_REQUESTS_PER_CONNECTION: u64 = 100_000_000;
/// A connection that fails this many times gives up.
const MAX_RECONNECTS: u32 = 10;
/// Grace beyond the planned duration before a run is called hung.
const GRACE: Duration = Duration::from_secs(30);

/// How a read run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct GetOptions {
    pub connections: u32,
    pub threads: u32,
    pub seconds: Duration,
    pub warmup: Duration,
    /// The server's process id, when known, to report the cores it used.
    pub server_pid: Option<u32>,
}

/// What a read run measured (the warm-up excluded).
#[derive(Debug, Clone)]
pub struct GetReport {
    pub options: GetOptions,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Summary,
    /// Cores busy during the measured window.
    pub cpu: Option<cpu::Usage>,
}

impl GetReport {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for GetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "GET config: {} connection(s), {} client thread(s), {:.1} s\n  \
             requests {}  ({})  errors {}\n  \
             p50 {}  p90 {}  p99 {}  p99.9 {}  max {}{}",
            self.options.connections,
            self.options.threads,
            self.elapsed.as_secs_f64(),
            self.requests,
            Rate(self.per_second()),
            self.errors,
            Ms(l.p50),
            Ms(l.p90),
            Ms(l.p99),
            Ms(l.p999),
            Ms(l.max),
            self.cpu
                .map_or_else(String::new, |c| cores(&c, self.requests)),
        )
    }
}

/// The cores busy, and by whom; `requests` to tell the server's context switches per request.
pub fn cores(c: &cpu::Usage, requests: u64) -> String {
    let mut out = format!("\n  cores busy: this process {:.2}", c.process);
    if let (Some(server), Some(others)) = (c.server, c.others()) {
        out.push_str(&format!(
            ", the server {server:.2}, anything else {others:.2}"
        ));
    }
    out.push_str(&format!(" (the machine {:.2})", c.machine));
    if let Some(switches) = c.server_switches {
        let per = switches as f64 / requests.max(1) as f64;
        out.push_str(&format!(
            "\n  server context switches: {per:.1} per request"
        ));
    }
    out
}

/// Runs the read load on a runtime of its own with `threads` client threads.
pub fn run(api: &Api, service: &str, options: &GetOptions) -> anyhow::Result<GetReport> {
    let runtime = runtime(options.threads)?;
    runtime.block_on(load(api, service, *options))
}

/// A client runtime: one thread runs every connection; more spread them.
pub fn runtime(threads: u32) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads as usize);
        b
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the client runtime")
}

struct Outcome {
    hist: Histogram<u64>,
    errors: u64,
    last_end: Instant,
}

async fn load(api: &Api, service: &str, options: GetOptions) -> anyhow::Result<GetReport> {
    let uri = api.config_uri(service)?;
    preflight(api, &uri, service).await?;

    let start = Instant::now();
    let warm_end = start + options.warmup;
    let end = warm_end + options.seconds;
    let api = Arc::new(api.clone());
    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let (api, uri) = (api.clone(), uri.clone());
        tasks.push(tokio::spawn(async move {
            let limit = end.saturating_duration_since(Instant::now()) + GRACE;
            tokio::time::timeout(limit, connection(&api, &uri, warm_end, end))
                .await
                .context("a connection hung: the run took far longer than planned")?
        }));
    }
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu_from = cpu::sample(options.server_pid);
    let mut hist = stats::histogram()?;
    let mut errors = 0;
    let mut last_end = warm_end;
    for task in tasks {
        let outcome = task.await.context("a connection task failed")??;
        hist.add(&outcome.hist)
            .context("cannot merge latency histograms")?;
        errors += outcome.errors;
        last_end = last_end.max(outcome.last_end);
    }
    let cpu = cpu::between(cpu_from, cpu::sample(options.server_pid));
    Ok(GetReport {
        options,
        requests: hist.len(),
        errors,
        elapsed: last_end.saturating_duration_since(warm_end),
        latency: Summary::of(&hist),
        cpu,
    })
}

/// One request before the clock starts, so a wrong token or service is one clear error rather
/// than a run of failures.
async fn preflight(api: &Api, uri: &Uri, service: &str) -> anyhow::Result<()> {
    let mut conn = Conn::open(api.addr()).await?;
    let answer = conn.send(api.get(uri)?).await?;
    if answer.status != StatusCode::OK {
        bail!(
            "GET {uri} answered {}, not 200 — is the token right and does service {service:?} \
             exist? {}",
            answer.status,
            answer.excerpt()
        );
    }
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .context("GET config answered 200 but not with JSON")?;
    Ok(())
}

/// One connection's loop: requests back to back until `end`, recording those that start after
/// `warm_end`.
async fn connection(
    api: &Api,
    uri: &Uri,
    warm_end: Instant,
    end: Instant,
) -> anyhow::Result<Outcome> {
    let mut conn = Conn::open(api.addr()).await?;
    let mut hist = stats::histogram()?;
    let mut errors = 0;
    let mut reconnects = 0;
    let mut last_end = warm_end;
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let request = api.get(uri)?;
        let result = conn.send(request).await;
        let done = Instant::now();
        match result {
            Ok(answer) if answer.status == StatusCode::OK => {
                if started >= warm_end {
                    stats::record(&mut hist, done - started);
                    last_end = done;
                }
            }
            Ok(_) => errors += 1,
            Err(e) => {
                errors += 1;
                reconnects += 1;
                if reconnects > MAX_RECONNECTS {
                    return Err(e.context(format!("giving up after {MAX_RECONNECTS} reconnects")));
                }
                conn = Conn::open(api.addr()).await?;
            }
        }
    }
    Ok(Outcome {
        hist,
        errors,
        last_end,
    })
}
