//! Write load: N durable `PUT /api/v1/services/{S}/config` one after the other on one
//! keep-alive connection. Each body differs, so each is a real new version with history.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cpu;
use crate::http::Conn;
use crate::stats::{self, Ms, Rate, Summary};

/// The longest one write may take before the run is called hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed writes in a row after which the run stops.
const MAX_ERRORS_IN_A_ROW: u32 = 10;

/// What a write run measured.
#[derive(Debug, Clone)]
pub struct PutReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Summary,
    /// Cores busy during the run.
    pub cpu: Option<cpu::Usage>,
}

impl PutReport {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for PutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "PUT config (durable): 1 connection, sequential, {:.1} s\n  \
             writes {}  ({})  errors {}\n  \
             p50 {}  p90 {}  p99 {}  max {}{}",
            self.elapsed.as_secs_f64(),
            self.requests,
            Rate(self.per_second()),
            self.errors,
            Ms(l.p50),
            Ms(l.p90),
            Ms(l.p99),
            Ms(l.max),
            self.cpu
                .map_or_else(String::new, |c| crate::get::cores(&c, self.requests)),
        )
    }
}

/// A realistic service document of 20-odd keys (a text-to-speech worker's settings); `n`
/// makes each one different.
pub fn document(n: u64) -> Value {
    json!({
        "n": n,
        "voice": "amy",
        "language": "en-GB",
        "rate": 1.0,
        "volume": 0.8,
        "sample_rate_hz": 22050,
        "model": "piper/en_GB-amy-medium.onnx",
        "device": "cpu",
        "threads": 2,
        "cache_dir": "/var/cache/tts",
        "max_queue": 32,
        "timeout_ms": 1500,
        "retries": 3,
        "backoff_ms": [100, 200, 400],
        "log_level": "info",
        "features": {"ssml": true, "streaming": true, "phonemes": false},
        "mqtt": {
            "host": "127.0.0.1",
            "port": 1883,
            "tls": false,
            "topic": "voice/tts/say",
            "client_id": "tts-worker-1",
            "keepalive_s": 30
        }
    })
}

/// The body of a PUT of `document(n)`.
pub fn body(n: u64) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(
        &json!({"config": document(n), "reason": "dials-load"}),
    )?))
}

/// Runs the write load on a one-thread runtime of its own.
pub fn run(
    api: &Api,
    service: &str,
    requests: u64,
    server_pid: Option<u32>,
) -> anyhow::Result<PutReport> {
    let runtime = crate::get::runtime(1)?;
    runtime.block_on(load(api, service, requests, server_pid))
}

/// Creates `service` with `document(0)` unless it exists. Answers whether it created it.
pub async fn ensure_service(api: &Api, conn: &mut Conn, service: &str) -> anyhow::Result<bool> {
    let uri = api.config_uri(service)?;
    let answer = conn.send(api.put(&uri, body(0)?, true)?).await?;
    match answer.status {
        StatusCode::OK => Ok(true),
        StatusCode::PRECONDITION_FAILED => Ok(false),
        other => bail!(
            "creating service {service:?} answered {other}: {}",
            answer.excerpt()
        ),
    }
}

async fn load(
    api: &Api,
    service: &str,
    requests: u64,
    server_pid: Option<u32>,
) -> anyhow::Result<PutReport> {
    let uri = api.config_uri(service)?;
    let mut conn = Conn::open(api.addr()).await?;
    ensure_service(api, &mut conn, service).await?;
    sequential(api, requests, server_pid, |n| {
        api.put(&uri, body(n)?, false)
    })
    .await
}

/// Sends `requests` writes one after the other on one connection, each made by `request` from
/// a number that differs in every write and every run, and times them.
pub async fn sequential(
    api: &Api,
    requests: u64,
    server_pid: Option<u32>,
    request: impl Fn(u64) -> anyhow::Result<crate::api::Req>,
) -> anyhow::Result<PutReport> {
    let mut conn = Conn::open(api.addr()).await?;
    // Start the numbering past the time, so that a second run still writes new documents.
    let offset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);

    let mut hist = stats::histogram()?;
    let mut errors = 0;
    let mut in_a_row = 0;
    let cpu_from = cpu::sample(server_pid);
    let start = Instant::now();
    for i in 0..requests {
        let request = request(offset + i)?;
        let sent = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, conn.send(request))
            .await
            .context("a write took longer than 30 s")?;
        let done = Instant::now();
        match result {
            Ok(answer) if answer.status == StatusCode::OK => {
                stats::record(&mut hist, done - sent);
                in_a_row = 0;
            }
            other => {
                errors += 1;
                in_a_row += 1;
                if in_a_row >= MAX_ERRORS_IN_A_ROW {
                    let why = match other {
                        Ok(answer) => format!("{}: {}", answer.status, answer.excerpt()),
                        Err(e) => format!("{e:#}"),
                    };
                    bail!("{MAX_ERRORS_IN_A_ROW} writes in a row failed; the last: {why}");
                }
                if other.is_err() {
                    conn = Conn::open(api.addr()).await?;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    Ok(PutReport {
        requests: hist.len(),
        errors,
        elapsed,
        latency: Summary::of(&hist),
        cpu: cpu::between(cpu_from, cpu::sample(server_pid)),
    })
}
