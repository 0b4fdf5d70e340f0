//! The HTTP transport: accepts connections (plain or TLS) and serves the router on each, with
//! the limits that keep one misbehaving peer from taking the server down.
//!
//! - **Connections are bounded** by what the process may open: the soft `RLIMIT_NOFILE` less a
//!   reserve for the database, the broker connection and the in-process broker's clients. At
//!   the bound the server stops accepting (new connections wait in the kernel's backlog, which
//!   costs no descriptor) instead of failing to open its database.
//! - **Slow or silent peers are cut off**: request headers must arrive within
//!   [`HEADER_TIMEOUT`], which also closes a keep-alive connection idle that long; a TLS
//!   handshake within [`HANDSHAKE_TIMEOUT`]. Request bodies have their own bound (see
//!   `extract::JsonBody`).
//! - **Stopping is graceful**: the listener closes, requests in flight finish (at most
//!   [`DRAIN_TIMEOUT`]), idle connections close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Time a client has to send a request's headers, and that a keep-alive connection may idle.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time requests in flight get to finish once a stop begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors kept free for everything but HTTP connections.
const RESERVED_FILES: u64 = 256;
/// Bounds on the connection limit, whatever the file limit says.
const MIN_CONNECTIONS: u64 = 32;
const MAX_CONNECTIONS: u64 = 16_384;

/// How many HTTP connections the server holds open at most, from the process's file limit.
pub fn connection_limit() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _hard)| soft)
        .unwrap_or(1024);
    soft.saturating_sub(RESERVED_FILES)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS) as usize
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limit = connection_limit();
    let permits = Arc::new(Semaphore::new(limit));
    let acceptor = tls.map(|config| {
        // HTTP/1.1 is what is served: offering h2 in ALPN would make clients speak it.
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_headers(100);
    let http = Arc::new(http);
    tracing::debug!(limit, "accepting HTTP connections");
    tokio::pin!(shutdown);
    let mut warned_full = false;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        if permits.available_permits() == 0 && !warned_full {
            warned_full = true;
            tracing::warn!(limit, "at the HTTP connection limit: new connections wait");
        } else if permits.available_permits() > limit / 10 {
            warned_full = false;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a peer that reset before accept: not fatal.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let http = http.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_one(&http, watcher, TokioIo::new(stream), app, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_one(&http, watcher, TokioIo::new(tls), app, peer).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain timeout; stopping anyway");
    }
    Ok(())
}

async fn serve_one<I>(
    http: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: TokioIo<I>,
    app: Router,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let connection = http.serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
