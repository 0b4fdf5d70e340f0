//! A Mosquitto of this tool's own on a free loopback port: either as a distribution installs
//! it (`stock`: only a listener and anonymous access, so Nagle's algorithm stays on for the
//! broker's sockets) or tuned for throughput (`set_tcp_nodelay`, unbounded queues).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// How the broker is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// `listener PORT 127.0.0.1` and `allow_anonymous true`, nothing else: what a user who
    /// installed Mosquitto gets.
    Stock,
    /// Also `set_tcp_nodelay true`, no inflight limit and deep queues.
    NoDelay,
}

impl Tuning {
    /// The configuration lines after the listener.
    fn lines(self) -> &'static str {
        match self {
            Self::Stock => "allow_anonymous true\n",
            Self::NoDelay => {
                "allow_anonymous true\npersistence false\nmax_inflight_messages 0\n\
                 set_tcp_nodelay true\nmax_queued_messages 1000000\nmax_connections -1\n"
            }
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Stock => "stock Mosquitto (default settings: Nagle on)",
            Self::NoDelay => "Mosquitto with set_tcp_nodelay true",
        }
    }
}

/// A running broker; killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Mosquitto {
    /// Starts `mosquitto -c CONF` and waits until its port answers.
    pub async fn start(tuning: Tuning) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let conf = dir.path().join("mosquitto.conf");
        // Started as root, Mosquitto drops to user `mosquitto`; it writes nothing here (no
        // persistence, no pid file, logs on stderr), so the directory needs no owner change.
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\n{}", tuning.lines()),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto (apt-get install mosquitto)")?;
        wait_port(port).await?;
        Ok(Self {
            port,
            child,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Waits until something accepts connections on `port` (at most 10 s).
pub async fn wait_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("nothing answered on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
