//! The manager's REST API, as far as a service needs it: register the schema, read the config,
//! read the signing-key rotation statements.

use std::time::Duration;

use dials_wire::{ConfigResponse, Problem};
use reqwest::StatusCode;
use serde_json::Value;

/// A REST connection to the manager for one service.
#[derive(Clone)]
pub(crate) struct Manager {
    http: reqwest::Client,
    base: String,
    service: String,
    token: String,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("base", &self.base)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Manager {
    pub fn new(http: reqwest::Client, base: &str, service: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            service: service.to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/api/v1/services/{}/{tail}", self.base, self.service)
    }

    /// `PUT …/schema`. The error is a sentence for the log.
    pub async fn register_schema(&self, schema: &Value, timeout: Duration) -> Result<(), String> {
        let response = self
            .http
            .put(self.url("schema"))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .json(schema)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(problem(response).await)
    }

    /// `GET …/config`.
    pub async fn read_config(&self, timeout: Duration) -> Result<ConfigResponse, String> {
        let response = self
            .http
            .get(self.url("config"))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        let config: ConfigResponse = response
            .json()
            .await
            .map_err(|e| format!("the manager's answer is not a config: {e}"))?;
        if config.service != self.service {
            return Err(format!(
                "the manager answered with the config of {:?}",
                config.service
            ));
        }
        Ok(config)
    }
}

impl Manager {
    /// `GET /api/v1/keys`: the signing-key rotation statements, oldest first. Sent with the
    /// token (the route is public; the statements prove themselves by their signatures).
    pub async fn read_rotations(
        &self,
        timeout: Duration,
    ) -> Result<Vec<dials_wire::rotation::RotationStatement>, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/keys", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        let keys: Value = response
            .json()
            .await
            .map_err(|e| format!("the manager's answer is not its keys: {e}"))?;
        Ok(dials_wire::rotation::rotations_of(&keys))
    }
}

/// A transport error as a short sentence (reqwest's Display hides the cause).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "did not answer in time"
    } else if e.is_connect() {
        "is unreachable"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        format!("the request {what}")
    } else {
        format!("the request {what} ({cause})")
    }
}

/// A non-2xx answer as a short sentence, with the problem's detail when there is one.
async fn problem(response: reqwest::Response) -> String {
    let status = response.status();
    let detail = response.json::<Problem>().await.ok().map(|p| {
        let mut detail = p.detail;
        for e in p.errors.iter().take(5) {
            detail.push_str(&format!("; {}: {}", e.path, e.message));
        }
        detail
    });
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (check the token)",
        StatusCode::FORBIDDEN => " (the token may not do this)",
        _ => "",
    };
    match detail {
        Some(d) => format!("the manager answered {status}{hint}: {d}"),
        None => format!("the manager answered {status}{hint}"),
    }
}
