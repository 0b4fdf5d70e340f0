//! Idle memory: the resident set of a server that has created one service and served a few
//! requests, read from `/proc/PID/status` after two idle seconds.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::StatusCode;

use crate::api::Api;
use crate::http::Conn;
use crate::put;
use crate::server::{self, Launch, Server};

/// Reads and writes made before the server is left idle.
const READS: u64 = 100;
const WRITES: u64 = 10;
/// How long it is left idle before its memory is read.
const IDLE: Duration = Duration::from_secs(2);

/// Memory figures of one process, in KiB as the kernel gives them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RssReport {
    /// Resident set: what the target is about.
    pub vm_rss: u64,
    /// Of it, anonymous memory (heap, stacks).
    pub rss_anon: u64,
    /// Of it, file pages (mostly the binary's own code, shared with the page cache).
    pub rss_file: u64,
    /// The resident set's high-water mark.
    pub vm_hwm: u64,
    /// Threads.
    pub threads: u64,
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl RssReport {
    /// Reads `/proc/PID/status`.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let mut report = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let number = || -> u64 {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            match key {
                "VmRSS" => report.vm_rss = number(),
                "RssAnon" => report.rss_anon = number(),
                "RssFile" => report.rss_file = number(),
                "VmHWM" => report.vm_hwm = number(),
                "Threads" => report.threads = number(),
                _ => {}
            }
        }
        if report.vm_rss == 0 {
            bail!("{path} has no VmRSS line");
        }
        Ok(report)
    }
}

impl fmt::Display for RssReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB (anonymous {:.1} MiB, file {:.1} MiB), peak {:.1} MiB, {} threads",
            mib(self.vm_rss),
            mib(self.rss_anon),
            mib(self.rss_file),
            mib(self.vm_hwm),
            self.threads
        )
    }
}

/// Starts a server, creates one service, reads and writes a little, waits, reads its memory.
pub fn run(launch: &Launch, dir: Option<&Path>) -> anyhow::Result<RssReport> {
    let runtime = crate::get::runtime(1)?;
    runtime.block_on(async {
        let root = server::scratch(dir)?;
        let data = root.path().join("data");
        let (server, _) = Server::start(launch, &data, &root.path().join("server.log")).await?;
        let measured = async {
            let api = Api::at(server.addr(), &server.admin_token()?)?;
            exercise(&api, "rss-probe").await?;
            tokio::time::sleep(IDLE).await;
            RssReport::of(server.pid()?)
        }
        .await;
        server.stop().await?;
        measured
    })
}

/// A few reads and writes of one service, on one connection.
async fn exercise(api: &Api, service: &str) -> anyhow::Result<()> {
    let mut conn = Conn::open(api.addr()).await?;
    put::ensure_service(api, &mut conn, service).await?;
    let uri = api.config_uri(service)?;
    for i in 1..=WRITES {
        let answer = conn.send(api.put(&uri, put::body(i)?, false)?).await?;
        if answer.status != StatusCode::OK {
            bail!("PUT answered {}: {}", answer.status, answer.excerpt());
        }
    }
    for _ in 0..READS {
        let answer = conn.send(api.get(&uri)?).await?;
        if answer.status != StatusCode::OK {
            bail!("GET answered {}: {}", answer.status, answer.excerpt());
        }
    }
    Ok(())
}
