//! The CLI's side of the REST API: where the manager is, which token to send, and errors as
//! one line each.

use std::path::Path;

use anyhow::{Context, bail};
use dials_wire::Problem;
use reqwest::{Method, RequestBuilder, Response};

use crate::cli::ClientArgs;

/// A configured API client.
#[derive(Debug)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// Reads `--server`/`DIALS_SERVER` and `--token`/`DIALS_TOKEN` (else `./dials-data/admin.token`).
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = args
            .server
            .clone()
            .or_else(|| std::env::var("DIALS_SERVER").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "http://127.0.0.1:8081".into());
        if !base.starts_with("http://") {
            bail!("invalid server {base:?}: expected http://HOST:PORT");
        }
        let token = match args
            .token
            .clone()
            .or_else(|| std::env::var("DIALS_TOKEN").ok().filter(|s| !s.is_empty()))
        {
            Some(token) => token,
            None => {
                let data_dir =
                    std::env::var("DIALS_DATA_DIR").unwrap_or_else(|_| "./dials-data".into());
                let path = Path::new(&data_dir).join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: pass --token, set DIALS_TOKEN, or run where {} exists",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// A request to `path` (under the server URL) with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request; a connection failure names the server.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach dials at {}", self.base))
    }
}

/// The one-line reason of an error answer.
pub async fn problem_line(response: Response) -> String {
    let status = response.status();
    match response.json::<Problem>().await {
        Ok(p) => {
            let mut line = format!("{} ({})", p.detail, status.as_u16());
            for e in p.errors.iter().take(5) {
                line.push_str(&format!(
                    "; {}: {}",
                    if e.path.is_empty() { "/" } else { &e.path },
                    e.message
                ));
            }
            line
        }
        Err(_) => format!("the server answered {status}"),
    }
}
