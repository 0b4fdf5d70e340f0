//! `dials health`: asks a running manager's `/health` (no token needed), for container health
//! checks and scripts: exit 0 when it answers `{"ok": true}`, 1 otherwise.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::client::DEFAULT_SERVER;

/// Checks `server` (else `DIALS_SERVER`, else the default) within `timeout`.
pub async fn run(server: Option<String>, timeout: Duration) -> anyhow::Result<()> {
    let base = server
        .or_else(|| std::env::var("DIALS_SERVER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_SERVER.into());
    let url = format!("{}/health", base.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let response = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() || body["ok"] != serde_json::Value::Bool(true) {
        bail!("{url} answered {status}: not healthy");
    }
    println!("ok");
    Ok(())
}
