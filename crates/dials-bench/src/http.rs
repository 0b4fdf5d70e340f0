//! One HTTP/1.1 keep-alive connection, driven by the task that uses it.
//!
//! The connection future is polled in the same task as the request (no task of its own), so a
//! round trip costs one wake-up on the client side: what is measured is the server, not the
//! hand-off between two client tasks.

use std::net::SocketAddr;
use std::pin::Pin;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::api::Req;

/// A status and the whole body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, shortened, for error messages.
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut out: String = text.chars().take(300).collect();
        if out.len() < text.len() {
            out.push('…');
        }
        out
    }
}

type Driver = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An open keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Pin<Box<Driver>>,
}

impl Conn {
    /// Connects (with `TCP_NODELAY`, as a real client would) and does the HTTP/1 handshake.
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Self {
            sender,
            driver: Box::pin(driver),
        })
    }

    /// Sends one request and reads the whole answer, so the connection is ready for the next.
    pub async fn send(&mut self, req: Req) -> anyhow::Result<Answer> {
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await?;
            let response = sender.send_request(req).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        };
        tokio::select! {
            biased;
            closed = self.driver.as_mut() => match closed {
                Ok(()) => bail!("the server closed the connection"),
                Err(e) => Err(anyhow::Error::new(e).context("the connection failed")),
            },
            answer = exchange => answer,
        }
    }
}
