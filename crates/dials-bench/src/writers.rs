//! Concurrent write load: N writers, each on a keep-alive connection of its own, PUT for a
//! fixed time — each to a service of its own, or all to one shared service. What the writes
//! per second and the tail look like when writes queue behind each other (group commit, and
//! for a shared service, writes computed on top of the ones queued before them).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::StatusCode;

use crate::api::Api;
use crate::cpu;
use crate::http::Conn;
use crate::put::{body, ensure_service};
use crate::stats::{self, Ms, Rate, Summary};

/// The longest one write may take before the run is called hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a concurrent write run measured.
#[derive(Debug, Clone)]
pub struct WritersReport {
    pub writers: u32,
    pub shared: bool,
    pub writes: u64,
    pub errors: u64,
    pub server_errors: u64,
    pub elapsed: Duration,
    pub latency: Summary,
    pub cpu: Option<cpu::Usage>,
}

impl fmt::Display for WritersReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "PUT config (durable): {} writers, {}, {:.1} s\n  \
             writes {}  ({})  errors {} (5xx {})\n  \
             p50 {}  p90 {}  p99 {}  max {}{}",
            self.writers,
            if self.shared {
                "one shared service"
            } else {
                "a service each"
            },
            self.elapsed.as_secs_f64(),
            self.writes,
            Rate(self.writes as f64 / self.elapsed.as_secs_f64().max(1e-9)),
            self.errors,
            self.server_errors,
            Ms(l.p50),
            Ms(l.p90),
            Ms(l.p99),
            Ms(l.max),
            self.cpu
                .map_or_else(String::new, |c| crate::get::cores(&c, self.writes)),
        )
    }
}

/// Runs the load on a runtime of two threads. Writer `w` writes through `apis[w % len]`
/// (several replicas of one server); the services are made through the first.
pub fn run(
    apis: &[Api],
    writers: u32,
    seconds: u64,
    shared: bool,
    server_pid: Option<u32>,
) -> anyhow::Result<WritersReport> {
    let runtime = crate::get::runtime(2)?;
    runtime.block_on(load(apis, writers, seconds, shared, server_pid))
}

async fn load(
    apis: &[Api],
    writers: u32,
    seconds: u64,
    shared: bool,
    server_pid: Option<u32>,
) -> anyhow::Result<WritersReport> {
    let services: Vec<String> = (0..writers)
        .map(|i| {
            if shared {
                "bench-shared".to_owned()
            } else {
                format!("bench-{i}")
            }
        })
        .collect();
    let first = apis.first().context("no server to write to")?;
    let mut conn = Conn::open(first.addr()).await?;
    for service in &services {
        ensure_service(first, &mut conn, service).await?;
    }
    let offset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    let cpu_from = cpu::sample(server_pid);
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = services
        .into_iter()
        .enumerate()
        .map(|(w, service)| {
            let api = apis[w % apis.len()].clone();
            tokio::spawn(async move {
                let uri = api.config_uri(&service)?;
                let mut conn = Conn::open(api.addr()).await?;
                let mut hist = stats::histogram()?;
                let (mut errors, mut server_errors) = (0u64, 0u64);
                let mut n = offset + (w as u64) * 1_000_000_000;
                while Instant::now() < until {
                    n += 1;
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        conn.send(api.put(&uri, body(n)?, false)?),
                    )
                    .await
                    .context("a write took longer than 30 s")?;
                    match answer {
                        Ok(a) if a.status == StatusCode::OK => {
                            stats::record(&mut hist, sent.elapsed())
                        }
                        Ok(a) => {
                            errors += 1;
                            server_errors += u64::from(a.status.is_server_error());
                        }
                        Err(_) => {
                            errors += 1;
                            conn = Conn::open(api.addr()).await?;
                        }
                    }
                }
                anyhow::Ok((hist, errors, server_errors))
            })
        })
        .collect();
    let mut hist = stats::histogram()?;
    let (mut errors, mut server_errors) = (0, 0);
    for task in tasks {
        let (h, e, s) = task.await??;
        hist.add(&h)?;
        errors += e;
        server_errors += s;
    }
    let elapsed = start.elapsed();
    Ok(WritersReport {
        writers,
        shared,
        writes: hist.len(),
        errors,
        server_errors,
        elapsed,
        latency: Summary::of(&hist),
        cpu: cpu::between(cpu_from, cpu::sample(server_pid)),
    })
}
