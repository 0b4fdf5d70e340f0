//! The floor: a do-nothing HTTP/1.1 server that answers every request with a fixed JSON body.
//! The same read load against it shows what loopback, the kernel's wake-ups and hyper cost on
//! this machine before dials does any work of its own.
//!
//! It runs as a process of its own (this binary, `floor-server`), on a runtime shaped like the
//! one dials runs on, so that it pays what a real server pays: switching between two processes
//! costs more than between two threads of one.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The longest a floor server lives, whatever happens to the process that started it.
const LIFETIME: Duration = Duration::from_secs(3600);
/// How long it may take to start and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A JSON object of exactly `len` bytes (at least 10), as a stand-in for a config answer.
pub fn json_body(len: usize) -> Bytes {
    let pad = len.saturating_sub(r#"{"pad":""}"#.len());
    Bytes::from(format!(r#"{{"pad":"{}"}}"#, "x".repeat(pad)))
}

/// A floor server process; stopped when dropped.
#[derive(Debug)]
pub struct Floor {
    child: Child,
    addr: SocketAddr,
    // Closing it tells the server to exit.
    stdin: Option<ChildStdin>,
}

impl Floor {
    /// Starts `dials-load floor-server` answering a body of `body_bytes`.
    pub fn start(body_bytes: usize) -> anyhow::Result<Self> {
        let me = std::env::current_exe().context("cannot find this program's own path")?;
        let mut child = Command::new(me)
            .args(["floor-server", "--body-bytes", &body_bytes.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the floor server")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("the floor server's stdout was not captured")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut floor = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdin,
        };
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .context("the floor server printed no address")?;
        floor.addr = crate::server::parse_listening(&line)?;
        Ok(floor)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor server itself: serves on 127.0.0.1 and a free port until its stdin closes (or an
/// hour has passed), on a multi-threaded runtime with as many workers as cores, as dials has.
pub fn serve(body_bytes: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the floor server's runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        let body = json_body(body_bytes);
        let (closed, mut stdin_closed) = tokio::sync::oneshot::channel::<()>();
        // A plain thread: waiting for stdin to close is one blocking read.
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = closed.send(());
        });
        let deadline = tokio::time::sleep(LIFETIME);
        tokio::pin!(deadline);
        loop {
            let stream = tokio::select! {
                _ = &mut deadline => bail!("the floor server ran for {LIFETIME:?}; stopping"),
                _ = &mut stdin_closed => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => bail!("the floor server cannot accept: {e}"),
                },
            };
            tokio::spawn(connection(stream, body.clone()));
        }
    })
}

async fn connection(stream: tokio::net::TcpStream, body: Bytes) {
    let answer = service_fn(move |_: Request<hyper::body::Incoming>| {
        let mut response = Response::new(Full::new(body.clone()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), answer)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_asked_size_and_is_json() {
        let body = json_body(198);
        assert_eq!(body.len(), 198);
        serde_json::from_slice::<serde_json::Value>(&body).expect("JSON");
    }
}
