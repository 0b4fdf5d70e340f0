//! The manager's REST API, as far as a service needs it: register the schema, read the config
//! (every layer of this instance in one call, `…/instances/{instance}/effective`; a manager
//! from before layers answers the service's document only), read the signing-key rotation
//! statements.

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
    instance: String,
    token: String,
}

/// One layer besides the service's document, as read over REST.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerDoc {
    /// The document's version (0: never written; a removed document keeps its last version).
    pub version: u64,
    /// The document, `None` when there is none (never written, or removed).
    pub config: Option<Value>,
    /// The version of each secret it sets, by key.
    pub secrets: std::collections::BTreeMap<String, u64>,
}

/// Everything a read over REST brings: the service's document as `GET …/config` answers it
/// (without defaults when the manager knows layers), and the other layers.
#[derive(Debug, Clone)]
pub(crate) struct LayerRead {
    pub service: ConfigResponse,
    /// `global`, when the schema takes keys from it (and the manager knows layers).
    pub global: Option<LayerDoc>,
    /// The instance's override (when the manager knows layers).
    pub instance: Option<LayerDoc>,
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
    pub fn new(
        http: reqwest::Client,
        base: &str,
        service: &str,
        instance: &str,
        token: &str,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            service: service.to_owned(),
            instance: instance.to_owned(),
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

    /// Every layer of this instance: `GET …/instances/{instance}/effective` (its `documents`,
    /// secrets in clear for the service's own token), or, from a manager that does not know
    /// layers (404 there, but the service exists), `GET …/config`.
    pub async fn read_config(&self, timeout: Duration) -> Result<LayerRead, String> {
        let instance = utf8_percent_encode(&self.instance);
        let response = self
            .http
            .get(self.url(&format!("instances/{instance}/effective")))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        if response.status() == StatusCode::NOT_FOUND {
            let service = self.read_service(timeout).await?;
            return Ok(LayerRead {
                service,
                global: None,
                instance: None,
            });
        }
        if !response.status().is_success() {
            return Err(problem(response).await);
        }
        let effective: dials_wire::EffectiveResponse = response
            .json()
            .await
            .map_err(|e| format!("the manager's answer is not an effective config: {e}"))?;
        if effective.service != self.service || effective.instance != self.instance {
            return Err(format!(
                "the manager answered with the config of {:?} instance {:?}",
                effective.service, effective.instance
            ));
        }
        let documents = effective.documents;
        let versions = effective.versions;
        Ok(LayerRead {
            service: ConfigResponse {
                service: effective.service,
                version: versions.service,
                revision: 0,
                epoch: effective.epoch,
                updated_at: None,
                updated_by: None,
                config: documents.service,
                secrets: documents.service_secrets,
            },
            global: versions.global.map(|version| LayerDoc {
                version,
                config: documents.global,
                secrets: Default::default(),
            }),
            instance: Some(LayerDoc {
                version: versions.instance,
                config: documents.instance,
                secrets: documents.instance_secrets,
            }),
        })
    }

    /// `GET …/config`.
    async fn read_service(&self, timeout: Duration) -> Result<ConfigResponse, String> {
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

/// An instance name as one URL path segment: every byte outside the unreserved set
/// percent-encoded (instance names may hold spaces, `?`, `%`, non-ASCII letters…).
fn utf8_percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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
