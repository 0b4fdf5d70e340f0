//! A `dials serve` child process on a port of its own: started, waited on until it answers,
//! and stopped with SIGTERM like an operator would.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::StatusCode;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::api::Api;
use crate::http::Conn;

/// How long a server may take to print its address and to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between `/health` attempts that found nobody listening.
const POLL_PAUSE: Duration = Duration::from_millis(1);
/// Most `/health` attempts before giving up.
const MAX_POLLS: u32 = 10_000;

/// A running `dials serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    // Held so the server's stdout stays open for as long as it runs.
    _stdout: Lines<BufReader<ChildStdout>>,
}

/// How long a start took.
#[derive(Debug, Clone, Copy)]
pub struct StartTimes {
    /// Spawn until the `listening on` line was read.
    pub listening: Duration,
    /// Spawn until the first `GET /health` answered 200.
    pub answered: Duration,
}

impl Server {
    /// Starts `binary serve --data-dir data_dir --http 127.0.0.1:0`, its logs (JSON) going to
    /// `log`, and waits until `/health` answers 200.
    pub async fn start(
        launch: &Launch,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<(Self, StartTimes)> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create the log file {}", log.display()))?;
        let mut command = Command::new(&launch.binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0"])
            .args(&launch.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true);
        // Only the settings given here: none from this shell's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DIALS_") {
                command.env_remove(key);
            }
        }
        command.env("DIALS_LOG_FORMAT", "json");

        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout was not captured")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = match tokio::time::timeout(START_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => parse_listening(&line)?,
            Ok(Ok(None)) => {
                let status = child.wait().await?;
                bail!(
                    "the server exited ({status}) before it listened; its log:\n{}",
                    tail(log)
                );
            }
            Ok(Err(e)) => bail!("cannot read the server's stdout: {e}"),
            Err(_) => bail!(
                "the server printed no address within {START_TIMEOUT:?}; its log:\n{}",
                tail(log)
            ),
        };
        let listening = spawned.elapsed();
        let server = Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
            _stdout: lines,
        };
        tokio::time::timeout(START_TIMEOUT, server.wait_healthy())
            .await
            .with_context(|| format!("/health did not answer 200 within {START_TIMEOUT:?}"))??;
        let answered = spawned.elapsed();
        Ok((
            server,
            StartTimes {
                listening,
                answered,
            },
        ))
    }

    /// Polls `GET /health` until it answers 200.
    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let api = Api::at(self.addr, "none")?;
        for _ in 0..MAX_POLLS {
            let attempt = async {
                let mut conn = Conn::open(self.addr).await?;
                conn.send(api.health()?).await
            };
            match attempt.await {
                Ok(answer) if answer.status == StatusCode::OK => return Ok(()),
                Ok(answer) => bail!("/health answered {}: {}", answer.status, answer.excerpt()),
                Err(_) => tokio::time::sleep(POLL_PAUSE).await,
            }
        }
        bail!("/health did not answer after {MAX_POLLS} attempts")
    }

    /// The first log message that mentions `needle`, with its `broker` or `addr` field if it
    /// has one: what the server chose at startup.
    pub fn log_message(&self, needle: &str) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|event| {
                let message = event.get("message")?.as_str()?;
                if !message.contains(needle) {
                    return None;
                }
                let at = ["broker", "addr"]
                    .iter()
                    .find_map(|k| event.get(*k).and_then(|v| v.as_str()));
                Some(match at {
                    Some(at) => format!("{message} ({at})"),
                    None => message.to_owned(),
                })
            })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .context("the server process has already exited")
    }

    /// The admin token it wrote on its first start.
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let path = self.data_dir.join("admin.token");
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the admin token {}", path.display()))?;
        Ok(token.trim().to_owned())
    }

    /// Sends SIGTERM and waits for it to finish; kills it if it does not within 10 s.
    ///
    /// A server that dies of the signal itself (rather than exiting 0 after a graceful
    /// shutdown) is reported as such, not as an error: it means the signal arrived before the
    /// server had installed its handler.
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        let pid = self.pid()?;
        let pid = Pid::from_raw(i32::try_from(pid).context("process id out of range")?);
        let sent = Instant::now();
        kill(pid, Signal::SIGTERM).context("cannot send SIGTERM to the server")?;
        let status = match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.child.kill().await?;
                bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed it");
            }
        };
        let took = sent.elapsed();
        if status.success() {
            return Ok(Stopped {
                graceful: true,
                took,
            });
        }
        if status.signal() == Some(Signal::SIGTERM as i32) {
            return Ok(Stopped {
                graceful: false,
                took,
            });
        }
        bail!(
            "the server exited with {status} after SIGTERM; its log:\n{}",
            tail(&self.log)
        )
    }
}

/// How a server stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// It shut down and exited 0; otherwise SIGTERM killed it outright.
    pub graceful: bool,
    /// SIGTERM to exit.
    pub took: Duration,
}

/// Starts a server in a fresh data directory under `dir`, runs `measure` against it with a
/// one-thread control runtime, and stops the server whatever `measure` did.
pub fn measure_with<T>(
    launch: &Launch,
    dir: Option<&Path>,
    measure: impl FnOnce(&tokio::runtime::Runtime, &Server) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let control = crate::get::runtime(1)?;
    let root = scratch(dir)?;
    let data = root.path().join("data");
    eprintln!("starting {} in {}", launch.binary.display(), data.display());
    let (server, _) = control.block_on(Server::start(
        launch,
        &data,
        &root.path().join("server.log"),
    ))?;
    let measured = measure(&control, &server);
    let stopped = control.block_on(server.stop());
    let measured = measured?;
    stopped?;
    Ok(measured)
}

/// A fresh temporary directory under `dir`, or under the system temp dir.
pub fn scratch(dir: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    let base = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    tempfile::Builder::new()
        .prefix("dials-load-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot make a temporary directory in {}", base.display()))
}

/// How to start a server: the binary, and arguments for `serve` beyond the data directory
/// and the listen address.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub extra: Vec<String>,
}

impl Launch {
    /// Checks that `binary` is a file, so a wrong path is one clear error.
    pub fn new(binary: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let path = binary
            .canonicalize()
            .with_context(|| format!("no dials binary at {}", binary.display()))?;
        if !path.is_file() {
            bail!("{} is not a file: pass the `dials` binary", path.display());
        }
        Ok(Self {
            binary: path,
            extra: extra.to_vec(),
        })
    }
}

/// The address in `listening on http://HOST:PORT`.
pub fn parse_listening(line: &str) -> anyhow::Result<SocketAddr> {
    let rest = line
        .trim()
        .strip_prefix("listening on http://")
        .with_context(|| format!("expected `listening on http://HOST:PORT`, got {line:?}"))?;
    rest.parse()
        .with_context(|| format!("cannot read an address in {line:?}"))
}

/// The last lines of a log file, for error messages.
fn tail(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let addr = parse_listening("listening on http://127.0.0.1:40123\n").expect("parses");
        assert_eq!(addr, "127.0.0.1:40123".parse().expect("addr"));
        assert!(parse_listening("ready").is_err());
    }
}
