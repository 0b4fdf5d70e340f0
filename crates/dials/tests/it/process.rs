//! Spawning `dials serve` and waiting for its `listening on` line.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

pub struct Running {
    pub child: Child,
    pub base: String,
    /// Reads stderr as it comes, so a chatty log never fills the pipe and stalls the server.
    stderr: JoinHandle<String>,
}

/// The admin token a first start wrote into `data_dir`.
pub fn admin_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .expect("a first start writes admin.token")
        .trim()
        .to_owned()
}

/// Creates `service` with `config` on the server at `base` (`If-None-Match: *`), asserting 200.
pub async fn create(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    service: &str,
    config: serde_json::Value,
) {
    let r = client
        .put(format!("{base}/api/v1/services/{service}/config"))
        .bearer_auth(token)
        .header("If-None-Match", "*")
        .json(&serde_json::json!({ "config": config }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::OK,
        "create {service}: {}",
        r.text().await.unwrap()
    );
}

/// `dials serve` on a free port in `data_dir`, with extra arguments and environment.
pub fn command(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dials"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("DIALS_HTTP_ADDR")
        .env_remove("DIALS_DATABASE_URL")
        .env_remove("DIALS_DATA_DIR")
        .env("DIALS_LOG_FORMAT", "json")
        // Tests run in parallel: none may take the shared default broker port.
        .env("DIALS_MQTT_URL", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `GET {base}{path}` with the bearer token, as JSON.
pub async fn get_json(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> serde_json::Value {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /api/v1/status` as JSON.
pub async fn status(client: &reqwest::Client, base: &str, token: &str) -> serde_json::Value {
    get_json(client, base, token, "/api/v1/status").await
}

/// Starts `dials serve --http 127.0.0.1:0` and waits for the line announcing its address.
pub async fn start(data_dir: &Path) -> Running {
    start_with(data_dir, &[]).await
}

/// Like [`start`], with more arguments.
pub async fn start_with(data_dir: &Path, args: &[&str]) -> Running {
    start_with_env(data_dir, args, &[]).await
}

/// Like [`start`], with more arguments and environment.
pub async fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut all = vec!["--http", "127.0.0.1:0"];
    all.extend_from_slice(args);
    spawn_and_wait(command(data_dir, &all, env)).await
}

/// Like [`start`], under a file-descriptor limit, as a shell's `ulimit -n` sets it.
pub async fn start_with_file_limit(data_dir: &Path, limit: u32) -> Running {
    let plain = command(data_dir, &["--http", "127.0.0.1:0"], &[]);
    let std = plain.as_std();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(std.get_program())
        .args(std.get_args());
    for (k, v) in std.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    spawn_and_wait(cmd).await
}

pub async fn spawn_and_wait(mut cmd: Command) -> Running {
    let mut child = cmd.spawn().expect("spawn dials");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("dials announced its address in time")
        .expect("read stdout")
        .expect("a line on stdout");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let stderr = tokio::spawn(async move {
        let mut all = String::new();
        let mut stderr = stderr;
        let _ = stderr.read_to_string(&mut all).await;
        all
    });
    Running {
        child,
        base,
        stderr,
    }
}

impl Running {
    /// The server's resident memory now, in bytes (Linux).
    pub fn rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc");
        kib * 1024
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal and waits for the exit status.
    pub async fn signal(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("dials exits after the signal")
            .unwrap();
        let err = self.stderr.await.unwrap();
        (exit, err)
    }
}

/// Runs `dials serve` expecting it to exit by itself; returns exit code and stderr.
pub async fn run_to_exit(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        command(data_dir, args, env).output(),
    )
    .await
    .expect("dials exits")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a `dials` CLI command (not `serve`) to its end: exit code, stdout, stderr.
pub async fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dials"));
    cmd.args(args)
        .env_remove("DIALS_DATA_DIR")
        .env_remove("DIALS_DATABASE_URL")
        .env_remove("DIALS_MASTER_KEY")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command ends")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
