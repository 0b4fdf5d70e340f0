//! The CLI's side of the REST API: where the manager is, which token to send, and errors as
//! one line each, with the exit code they deserve.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dials_wire::Problem;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::cli::ClientArgs;

/// The default manager URL, where `dials serve` listens by default.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8081";

/// Exit code: the command did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code: any error not listed below (server unreachable, 401, 404…).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the command line itself is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: someone else changed the service meanwhile (409/412).
pub const EXIT_CONFLICT: u8 = 3;
/// Exit code: the document does not fit the service's schema (422).
pub const EXIT_INVALID: u8 = 4;

/// A failure with its own exit code: a first line, then detail lines (one per field).
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    pub details: Vec<String>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A usage error (exit code 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure::new(EXIT_USAGE, message).into()
}

/// The data directory: `--data-dir`, else `DIALS_DATA_DIR`, else `./dials-data`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os("DIALS_DATA_DIR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("./dials-data"))
}

/// `--server`, else `DIALS_SERVER`, if either is given.
pub fn explicit_server(args: &ClientArgs) -> Option<String> {
    args.server
        .clone()
        .or_else(|| std::env::var("DIALS_SERVER").ok().filter(|s| !s.is_empty()))
}

/// A configured API client.
#[derive(Debug)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// Reads `--server`/`DIALS_SERVER` and `--token`/`DIALS_TOKEN` (else `admin.token` in the
    /// data directory).
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = explicit_server(args).unwrap_or_else(|| DEFAULT_SERVER.into());
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(usage(format!(
                "invalid server {base:?}: expected http://HOST:PORT"
            )));
        }
        let token = match args
            .token
            .clone()
            .or_else(|| std::env::var("DIALS_TOKEN").ok().filter(|s| !s.is_empty()))
        {
            Some(token) => token,
            None => {
                let path = data_dir(args.data_dir.as_deref()).join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token: pass --token, set DIALS_TOKEN, or run where {} exists \
                             (--data-dir)",
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

    /// The server's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (under the server URL) with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends a request; a connection failure names the server.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "cannot reach dials at {}: nothing answers there (is `dials serve` running? \
                     see --server, DIALS_SERVER)",
                    self.base
                )
            } else {
                anyhow::Error::new(e).context(format!("cannot reach dials at {}", self.base))
            }
        })
    }

    /// Sends a request and reads a successful answer as `T`; an error answer becomes a
    /// [`Failure`] with the exit code of its status.
    pub async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        self.answer(response).await
    }

    /// A successful answer read as `T`; an error answer becomes a [`Failure`] with the exit
    /// code of its status.
    pub async fn answer<T: DeserializeOwned>(&self, response: Response) -> anyhow::Result<T> {
        if !response.status().is_success() {
            return Err(failure(response).await.into());
        }
        let status = response.status();
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer from {} ({status})", self.base))
    }

    /// `GET path` read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(self.request(Method::GET, path)).await
    }
}

/// An error answer as a [`Failure`]: the problem's detail, each field error on its own line,
/// exit code 3 for a conflict and 4 for a schema violation.
pub async fn failure(response: Response) -> Failure {
    let status = response.status();
    let problem = response.json::<Problem>().await.ok();
    let code = match status {
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => EXIT_CONFLICT,
        StatusCode::UNPROCESSABLE_ENTITY => EXIT_INVALID,
        _ => EXIT_ERROR,
    };
    let Some(p) = problem else {
        return Failure::new(code, format!("the server answered {status}"));
    };
    let mut message = if p.detail.is_empty() {
        p.title.clone()
    } else {
        p.detail.clone()
    };
    if code == EXIT_CONFLICT
        && let Some(current) = p.current_version
        && !message.contains(&format!("version {current}"))
    {
        message.push_str(&format!(" (the service is now at version {current})"));
    }
    message.push_str(&format!(" ({})", status.as_u16()));
    Failure {
        code,
        message,
        details: p
            .errors
            .iter()
            .map(|e| {
                let path = if e.path.is_empty() { "/" } else { &e.path };
                match &e.service {
                    Some(service) => format!("{service} {path}: {}", e.message),
                    None => format!("{path}: {}", e.message),
                }
            })
            .collect(),
    }
}

/// The one-line reason of an error answer.
pub async fn problem_line(response: Response) -> String {
    let f = failure(response).await;
    let mut line = f.message;
    for d in f.details.iter().take(5) {
        line.push_str("; ");
        line.push_str(d);
    }
    line
}

/// A path segment, percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k=v&…`, each part percent-encoded (no query when `params` is empty).
pub fn with_query(path: &str, params: &[(&str, String)]) -> String {
    if params.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", segment(k), segment(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Refuses an empty or obviously malformed service name before asking the server.
pub fn service_path(service: &str) -> anyhow::Result<String> {
    if service.is_empty() {
        bail!("the service name is empty");
    }
    Ok(format!("/api/v1/services/{}", segment(service)))
}
