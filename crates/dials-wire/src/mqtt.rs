//! The MQTT contract in one place: topic names under the prefix, the applied report, the health
//! and audit payloads, and the broker URL. Pure: the manager (`dials-mqtt`) and the client
//! library (`dials-client`) both build and read MQTT traffic through these types, so the two
//! sides cannot disagree.
//!
//! | topic (after the prefix) | from | payload |
//! |---|---|---|
//! | `config/updated/{service}` | manager | [`crate::Envelope`], retained |
//! | `config/override/{service}/{instance}` | manager | [`crate::Envelope`] of the instance's override (`service`: `{service}/{instance}`), retained |
//! | `config/applied/{service}/{instance}` | client | [`AppliedReport`], retained |
//! | `system/health/config-manager` | manager | [`Health`], retained, also the last will |
//! | `config/keys` | manager | [`crate::rotation::RotationChain`], retained |
//! | `audit/config/{action}` | manager | [`AuditEvent`] |

use std::fmt;

use dials_domain::{InstanceName, ServiceName};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::envelope::{Envelope, EnvelopeError};

/// The topics dials uses, all under one prefix.
///
/// The prefix is used exactly as given and is usually empty or ends in `/` (`home/`): it is
/// prepended, never joined with a separator of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (empty, or e.g. `home/`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix, as given.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `config/updated/{service}`: the retained signed envelope of a service.
    pub fn updated(&self, service: &str) -> String {
        format!("{}config/updated/{service}", self.prefix)
    }

    /// `config/override/{service}/{instance}`: the retained signed envelope of one instance's
    /// override document. Its `service` member is `{service}/{instance}`, so the signature
    /// binds the instance too.
    pub fn instance_override(&self, service: &str, instance: &str) -> String {
        format!("{}config/override/{service}/{instance}", self.prefix)
    }

    /// The topic of the envelope the manager publishes for a stored document: a service's
    /// `config/updated/{service}`, or for an instance override's id (`{service}/{instance}`)
    /// `config/override/{service}/{instance}`.
    pub fn envelope(&self, name: &str) -> String {
        match name.split_once('/') {
            Some((service, instance)) => self.instance_override(service, instance),
            None => self.updated(name),
        }
    }

    /// `config/applied/{service}/{instance}`: the retained report of one instance.
    pub fn applied(&self, service: &str, instance: &str) -> String {
        format!("{}config/applied/{service}/{instance}", self.prefix)
    }

    /// `system/health/config-manager`: the manager's retained health, and its last will.
    pub fn health(&self) -> String {
        format!("{}system/health/config-manager", self.prefix)
    }

    /// `config/keys`: the retained chain of signing-key rotation statements.
    pub fn keys(&self) -> String {
        format!("{}config/keys", self.prefix)
    }

    /// `audit/config/{action}`: one event per change, not retained.
    pub fn audit(&self, action: &str) -> String {
        format!("{}audit/config/{action}", self.prefix)
    }

    /// The filter for every service's envelope: `config/updated/+`.
    pub fn updated_filter(&self) -> String {
        format!("{}config/updated/+", self.prefix)
    }

    /// The filter for every applied report: `config/applied/+/+`.
    pub fn applied_filter(&self) -> String {
        format!("{}config/applied/+/+", self.prefix)
    }

    /// The service an updated topic names, if `topic` is one (one non-empty level).
    pub fn parse_updated<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let service = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("config/updated/")?;
        (!service.is_empty() && !service.contains('/')).then_some(service)
    }

    /// Service and instance of an applied topic, if `topic` is one (two non-empty levels).
    /// The names are not checked here: [`AppliedReport::parse`] does.
    pub fn parse_applied<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("config/applied/")?;
        let (service, instance) = rest.split_once('/')?;
        (!service.is_empty() && !instance.is_empty() && !instance.contains('/'))
            .then_some((service, instance))
    }
}

/// Largest applied-report payload a receiver reads; larger ones are refused unread.
pub const MAX_REPORT_BYTES: usize = 8 * 1024;

/// Longest `schema_hash` a report may carry, in bytes.
pub const MAX_SCHEMA_HASH_LEN: usize = 128;

/// A report's `error` is cut to this many characters when read.
pub const MAX_ERROR_CHARS: usize = 2000;

/// How a version ended on an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppliedStatus {
    /// The version is in force.
    Applied,
    /// The version does not fit the instance's schema; the previous config stays.
    Rejected,
    /// A change callback refused the version or panicked; the previous config stays.
    Failed,
    /// The instance is gone: its last will (a broken connection), or its clean stop. The
    /// `version` of such a report means nothing; the manager keeps the one last reported.
    Offline,
}

impl AppliedStatus {
    /// `applied`, `rejected` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedStatus::Applied => "applied",
            AppliedStatus::Rejected => "rejected",
            AppliedStatus::Failed => "failed",
            AppliedStatus::Offline => "offline",
        }
    }

    /// The status a string names, if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(AppliedStatus::Applied),
            "rejected" => Some(AppliedStatus::Rejected),
            "failed" => Some(AppliedStatus::Failed),
            "offline" => Some(AppliedStatus::Offline),
            _ => None,
        }
    }
}

impl fmt::Display for AppliedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an instance publishes on `config/applied/{service}/{instance}` about one version:
/// `{service, instance, version, status, error?, at, schema_hash?, overrides?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedReport {
    /// The service (the topic's; a body's own claim is not trusted).
    pub service: ServiceName,
    /// The instance (the topic's).
    pub instance: InstanceName,
    /// The version reported on.
    pub version: u64,
    /// How it ended.
    pub status: AppliedStatus,
    /// Why, when not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the instance reported, RFC 3339 UTC.
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<OffsetDateTime>,
    /// A hash of the schema the instance runs with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    /// The keys the instance's environment overrides (JSON Pointers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Vec<String>>,
    /// The keys whose value comes from a layer other than the service's own document or the
    /// schema's defaults: `{"/mqtt/host": "global", "/mic/gain": "instance"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<std::collections::BTreeMap<String, String>>,
    /// The version of `global` the instance applied (when its schema takes keys from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_version: Option<u64>,
    /// The version of its override document the instance applied (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_version: Option<u64>,
}

/// Why a received applied report was refused. [`ReportError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The payload is larger than [`MAX_REPORT_BYTES`].
    #[error("a report is at most {MAX_REPORT_BYTES} bytes")]
    TooLarge,
    /// The topic's service level is not a service name.
    #[error("bad service name: {0}")]
    BadService(String),
    /// The topic's instance level is not an instance name.
    #[error("bad instance name: {0}")]
    BadInstance(String),
    /// Not JSON, or not the report's shape.
    #[error("not a report: {0}")]
    NotAReport(String),
    /// A status other than `applied`, `rejected`, `failed` or `offline`.
    #[error("status must be applied, rejected, failed or offline, not {0:?}")]
    UnknownStatus(String),
    /// A `schema_hash` longer than [`MAX_SCHEMA_HASH_LEN`].
    #[error("schema_hash must be at most {MAX_SCHEMA_HASH_LEN} characters")]
    SchemaHashTooLong,
    /// `overrides` that is not a list of strings.
    #[error("overrides must be a list of keys")]
    BadOverrides,
    /// `layers` that is not an object of strings.
    #[error("layers must be an object of key to layer name")]
    BadLayers,
}

impl ReportError {
    /// A short stable name for the reason, as the test vectors give it.
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::TooLarge => "too_large",
            ReportError::BadService(_) => "bad_service",
            ReportError::BadInstance(_) => "bad_instance",
            ReportError::NotAReport(_) => "not_a_report",
            ReportError::UnknownStatus(_) => "unknown_status",
            ReportError::SchemaHashTooLong => "schema_hash_too_long",
            ReportError::BadOverrides => "bad_overrides",
            ReportError::BadLayers => "bad_layers",
        }
    }
}

impl AppliedReport {
    /// Reads a report received on `config/applied/{service}/{instance}`. The topic names the
    /// service and instance and wins over the body's `service` and `instance`, which are not
    /// required. `at` may be missing (the receiver uses its own clock); `error` is cut to
    /// [`MAX_ERROR_CHARS`] characters; unknown fields are ignored.
    pub fn parse(service: &str, instance: &str, payload: &[u8]) -> Result<Self, ReportError> {
        #[derive(Deserialize)]
        struct Body {
            version: u64,
            status: String,
            #[serde(default)]
            error: Option<String>,
            #[serde(default, with = "time::serde::rfc3339::option")]
            at: Option<OffsetDateTime>,
            #[serde(default)]
            schema_hash: Option<String>,
            #[serde(default)]
            overrides: Option<serde_json::Value>,
            #[serde(default)]
            layers: Option<serde_json::Value>,
            #[serde(default)]
            global_version: Option<u64>,
            #[serde(default)]
            override_version: Option<u64>,
        }
        if payload.len() > MAX_REPORT_BYTES {
            return Err(ReportError::TooLarge);
        }
        let service =
            ServiceName::parse(service).map_err(|e| ReportError::BadService(e.to_string()))?;
        let instance =
            InstanceName::parse(instance).map_err(|e| ReportError::BadInstance(e.to_string()))?;
        let body: Body =
            serde_json::from_slice(payload).map_err(|e| ReportError::NotAReport(e.to_string()))?;
        let status =
            AppliedStatus::parse(&body.status).ok_or(ReportError::UnknownStatus(body.status))?;
        if body
            .schema_hash
            .as_ref()
            .is_some_and(|h| h.len() > MAX_SCHEMA_HASH_LEN)
        {
            return Err(ReportError::SchemaHashTooLong);
        }
        let overrides = match body.overrides {
            None => None,
            Some(value) => {
                Some(serde_json::from_value(value).map_err(|_| ReportError::BadOverrides)?)
            }
        };
        let layers = match body.layers {
            None => None,
            Some(value) => Some(serde_json::from_value(value).map_err(|_| ReportError::BadLayers)?),
        };
        Ok(Self {
            service,
            instance,
            version: body.version,
            status,
            error: body
                .error
                .map(|e| e.chars().take(MAX_ERROR_CHARS).collect()),
            at: body.at,
            schema_hash: body.schema_hash,
            overrides,
            layers,
            global_version: body.global_version,
            override_version: body.override_version,
        })
    }

    /// The report as bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What the manager's health says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthMode {
    /// Running and connected.
    Normal,
    /// Running, but its database cannot be read: it serves what it holds, and refuses writes.
    #[serde(rename = "read-only")]
    ReadOnly,
    /// The last will: the broker lost the manager's connection.
    Unreachable,
    /// The manager stopped cleanly.
    Stopped,
}

/// The database part of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDatabase {
    /// The store's backend, e.g. `sqlite`.
    pub backend: String,
    /// Whether the database answered.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The manager's retained health on `system/health/config-manager`:
/// `{ok, mode, database?, epoch, schema_version?, outbox_backlog?, at?}`. The last will and the
/// message of a clean stop carry only `ok:false`, the mode, the epoch (and `at` for a stop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Whether the manager and its database are fine.
    pub ok: bool,
    /// What the manager is doing.
    pub mode: HealthMode,
    /// The database's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<HealthDatabase>,
    /// The epoch of the manager's database.
    pub epoch: Uuid,
    /// The database schema's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// Outbox rows not yet acknowledged by the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_backlog: Option<u64>,
    /// When it was published, RFC 3339 UTC.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub at: Option<OffsetDateTime>,
}

impl Health {
    /// The last will the broker publishes when it loses the manager.
    pub fn last_will(epoch: Uuid) -> Self {
        Self {
            ok: false,
            mode: HealthMode::Unreachable,
            database: None,
            epoch,
            schema_version: None,
            outbox_backlog: None,
            at: None,
        }
    }

    /// What the manager publishes as it stops cleanly.
    pub fn stopped(epoch: Uuid, at: OffsetDateTime) -> Self {
        Self {
            mode: HealthMode::Stopped,
            at: Some(at),
            ..Self::last_will(epoch)
        }
    }

    /// The health as bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One change as published on `audit/config/{action}`: `{action, actor, service, version, at}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What kind of change (`put`, `patch`, `delete`…), also the topic's last level.
    pub action: String,
    /// Who made it.
    pub actor: String,
    /// The service.
    pub service: String,
    /// The version it produced.
    pub version: u64,
    /// When, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl AuditEvent {
    /// The event as bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An update whose `issued_at` is older than this is not applied from MQTT: the receiver
/// re-reads the config over REST (a retained message after a long outage).
pub const STALE_AFTER: time::Duration = time::Duration::minutes(5);

/// What a receiver knows when an update arrives on `config/updated/{service}`.
#[derive(Debug, Clone, Copy)]
pub struct Receiver<'a> {
    /// The service it runs.
    pub service: &'a str,
    /// The manager's epoch as far as known (`None` until the manager was heard over REST).
    pub epoch: Option<Uuid>,
    /// The highest version it has dealt with (applied, rejected or failed).
    pub version: u64,
    /// The pinned public keys.
    pub trusted: &'a [VerifyingKey],
}

/// What a receiver does with an update.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateVerdict {
    /// Apply the envelope's config.
    Apply(Envelope),
    /// Drop it; the config in force stays.
    Ignore(IgnoreReason),
    /// Do not apply it from MQTT; re-read the config over REST.
    Reread(RereadReason),
}

/// Why an update is dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum IgnoreReason {
    /// An empty retained message: the service was deleted.
    Deleted,
    /// It does not verify (see [`Envelope::verify`]).
    Invalid(EnvelopeError),
    /// A valid envelope for another service.
    OtherService(String),
    /// A version older than the one held.
    Old(u64),
    /// The version already held.
    Duplicate,
}

/// Why an update sends the receiver to REST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RereadReason {
    /// The receiver has not heard the manager over REST yet.
    NoEpochYet,
    /// The envelope comes from another epoch (the manager's database was replaced).
    UnknownEpoch(Uuid),
    /// `issued_at` is more than [`STALE_AFTER`] before now, or unreadable.
    Stale,
}

impl UpdateVerdict {
    /// `apply`, `ignore:<reason>` or `reread:<reason>`, as the test vectors give it.
    pub fn code(&self) -> String {
        match self {
            UpdateVerdict::Apply(_) => "apply".into(),
            UpdateVerdict::Ignore(reason) => format!(
                "ignore:{}",
                match reason {
                    IgnoreReason::Deleted => "deleted",
                    IgnoreReason::Invalid(EnvelopeError::Malformed(_)) => "malformed",
                    IgnoreReason::Invalid(EnvelopeError::UnknownFormat(_)) => "unknown_format",
                    IgnoreReason::Invalid(EnvelopeError::UnknownKey(_)) => "unknown_key",
                    IgnoreReason::Invalid(EnvelopeError::BadSignature) => "bad_signature",
                    IgnoreReason::Invalid(EnvelopeError::BadChecksum) => "bad_checksum",
                    IgnoreReason::OtherService(_) => "other_service",
                    IgnoreReason::Old(_) => "old_version",
                    IgnoreReason::Duplicate => "same_version",
                }
            ),
            UpdateVerdict::Reread(reason) => format!(
                "reread:{}",
                match reason {
                    RereadReason::NoEpochYet => "no_epoch_yet",
                    RereadReason::UnknownEpoch(_) => "unknown_epoch",
                    RereadReason::Stale => "stale",
                }
            ),
        }
    }
}

/// The rule by which a receiver judges an update, in this order: an empty payload is a
/// deletion; the envelope must verify (format, pinned key, signature, checksum) and name the
/// receiver's service; an unknown epoch, or none known yet, sends the receiver to REST; a
/// version not newer than the one held is dropped; a stale one sends the receiver to REST.
/// Order rests on epoch and version; the clock only decides between MQTT and REST.
pub fn judge_update(payload: &[u8], receiver: &Receiver<'_>, now: OffsetDateTime) -> UpdateVerdict {
    if payload.is_empty() {
        return UpdateVerdict::Ignore(IgnoreReason::Deleted);
    }
    let envelope = match Envelope::verify(payload, receiver.trusted) {
        Ok(e) => e,
        Err(e) => return UpdateVerdict::Ignore(IgnoreReason::Invalid(e)),
    };
    if envelope.service != receiver.service {
        return UpdateVerdict::Ignore(IgnoreReason::OtherService(envelope.service));
    }
    match receiver.epoch {
        None => return UpdateVerdict::Reread(RereadReason::NoEpochYet),
        Some(known) if known != envelope.epoch => {
            return UpdateVerdict::Reread(RereadReason::UnknownEpoch(envelope.epoch));
        }
        Some(_) => {}
    }
    if envelope.version < receiver.version {
        return UpdateVerdict::Ignore(IgnoreReason::Old(envelope.version));
    }
    if envelope.version == receiver.version {
        return UpdateVerdict::Ignore(IgnoreReason::Duplicate);
    }
    let fresh = envelope
        .issued_at()
        .is_some_and(|at| now - at <= STALE_AFTER);
    if !fresh {
        return UpdateVerdict::Reread(RereadReason::Stale);
    }
    UpdateVerdict::Apply(envelope)
}

/// A broker URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BrokerUrlError(pub String);

/// A user name and password for the broker. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name, percent-decoded.
    pub user: String,
    /// Password, percent-decoded (empty when the URL gives none).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// Where and how to reach a broker, parsed from
/// `mqtt://[user[:password]@]host[:port]`:
///
/// | scheme | TLS | default port |
/// |---|---|---|
/// | `mqtt://`, `tcp://` | no | 1883 |
/// | `mqtts://`, `ssl://` | yes | 8883 |
///
/// User name and password are percent-decoded (`%40` is `@`; `+` stays `+`). An IPv6 host is
/// written in brackets and kept without them. `Debug` and [`display_url`](Self::display_url)
/// never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether to connect with TLS.
    pub tls: bool,
    /// User name and password, if the URL gives a user.
    pub credentials: Option<Credentials>,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

impl BrokerUrl {
    /// A plain-TCP broker without credentials.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: false,
            credentials: None,
        }
    }

    /// Parses a broker URL (see the type's documentation for the accepted forms).
    pub fn parse(raw: &str) -> Result<Self, BrokerUrlError> {
        let raw = raw.trim();
        let url = url::Url::parse(raw).map_err(|e| {
            BrokerUrlError(format!(
                "{raw:?} is not a broker URL ({e}); expected mqtt://[user:pass@]host[:port] or \
                 mqtts://…"
            ))
        })?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(BrokerUrlError(format!(
                    "unknown scheme `{other}://`: use mqtt:// (or tcp://) or mqtts:// (or ssl://)"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| BrokerUrlError(format!("{raw:?} names no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        let credentials = if url.username().is_empty() {
            None
        } else {
            Some(Credentials {
                user: percent_decode(url.username())?,
                password: percent_decode(url.password().unwrap_or(""))?,
            })
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }

    /// `mqtt://host:port` or `mqtts://host:port`, without credentials: safe to log and show.
    pub fn display_url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, BrokerUrlError> {
    let bad = || BrokerUrlError("the broker URL's user or password is not valid UTF-8".into());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;

    #[test]
    fn every_topic_carries_the_prefix_and_parses_back() {
        let t = Topics::new("home/");
        assert_eq!(t.updated("tts"), "home/config/updated/tts");
        assert_eq!(t.applied("tts", "pi-1"), "home/config/applied/tts/pi-1");
        assert_eq!(t.health(), "home/system/health/config-manager");
        assert_eq!(t.audit("put"), "home/audit/config/put");
        assert_eq!(t.applied_filter(), "home/config/applied/+/+");
        assert_eq!(t.updated_filter(), "home/config/updated/+");
        assert_eq!(t.parse_updated("home/config/updated/tts"), Some("tts"));
        assert_eq!(t.parse_updated("config/updated/tts"), None);
        assert_eq!(t.parse_updated("home/config/updated/"), None);
        assert_eq!(t.parse_updated("home/config/updated/a/b"), None);
        assert_eq!(
            t.parse_applied(&t.applied("tts", "pi-1")),
            Some(("tts", "pi-1"))
        );
        assert_eq!(t.parse_applied("config/applied/tts/pi-1"), None);
        assert_eq!(t.parse_applied("home/config/applied/tts/"), None);
        assert_eq!(t.parse_applied("home/config/applied//pi"), None);
        assert_eq!(t.parse_applied("home/config/applied/tts/pi/x"), None);
        let bare = Topics::new("");
        assert_eq!(bare.updated("tts"), "config/updated/tts");
    }

    #[test]
    fn a_report_serializes_as_the_contract_says_and_reads_back() {
        let report = AppliedReport {
            service: ServiceName::parse("tts").unwrap(),
            instance: InstanceName::parse("pi-1").unwrap(),
            version: 3,
            status: AppliedStatus::Rejected,
            error: Some("rate: too high".into()),
            at: Some(datetime!(2026-11-22 10:00 UTC)),
            schema_hash: Some("ab".into()),
            overrides: Some(vec!["/voice".into()]),
            layers: None,
            global_version: None,
            override_version: None,
        };
        let bytes = report.to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"service":"tts","instance":"pi-1","version":3,"status":"rejected","error":"rate: too high","at":"2026-11-22T10:00:00Z","schema_hash":"ab","overrides":["/voice"]}"#
        );
        assert_eq!(AppliedReport::parse("tts", "pi-1", &bytes).unwrap(), report);
    }

    #[test]
    fn the_topic_wins_over_the_body_and_long_errors_are_cut() {
        let body = json!({"service": "other", "instance": "x", "version": 1,
                          "status": "failed", "error": "e".repeat(5000)});
        let r = AppliedReport::parse("tts", "pi-1", body.to_string().as_bytes()).unwrap();
        assert_eq!((r.service.as_str(), r.instance.as_str()), ("tts", "pi-1"));
        assert_eq!(r.error.unwrap().chars().count(), MAX_ERROR_CHARS);
        assert_eq!(r.at, None);
    }

    #[test]
    fn reports_that_break_a_rule_are_refused_with_their_reason() {
        let ok = br#"{"version":1,"status":"applied"}"#;
        let code = |s: &str, i: &str, p: &[u8]| AppliedReport::parse(s, i, p).unwrap_err().code();
        assert_eq!(code("Bad!", "pi", ok), "bad_service");
        assert_eq!(code("tts", "pi\n", ok), "bad_instance");
        assert_eq!(code("tts", &"x".repeat(129), ok), "bad_instance");
        assert_eq!(code("tts", "pi", b"garbage"), "not_a_report");
        assert_eq!(
            code("tts", "pi", br#"{"version":1,"status":"great"}"#),
            "unknown_status"
        );
        assert_eq!(
            code(
                "tts",
                "pi",
                br#"{"version":1,"status":"applied","overrides":{}}"#
            ),
            "bad_overrides"
        );
        let long = json!({"version": 1, "status": "applied", "schema_hash": "h".repeat(129)});
        assert_eq!(
            code("tts", "pi", long.to_string().as_bytes()),
            "schema_hash_too_long"
        );
        assert_eq!(
            code("tts", "pi", &vec![b' '; MAX_REPORT_BYTES + 1]),
            "too_large"
        );
    }

    #[test]
    fn health_payloads_keep_their_shape() {
        let epoch = Uuid::nil();
        let will: Value = serde_json::from_slice(&Health::last_will(epoch).to_bytes()).unwrap();
        assert_eq!(
            will,
            json!({"ok": false, "mode": "unreachable", "epoch": epoch})
        );
        let full = Health {
            ok: true,
            mode: HealthMode::Normal,
            database: Some(HealthDatabase {
                backend: "sqlite".into(),
                ok: true,
                error: None,
            }),
            epoch,
            schema_version: Some(7),
            outbox_backlog: Some(0),
            at: Some(datetime!(2026-11-22 10:00 UTC)),
        };
        assert_eq!(
            String::from_utf8(full.to_bytes()).unwrap(),
            r#"{"ok":true,"mode":"normal","database":{"backend":"sqlite","ok":true},"epoch":"00000000-0000-0000-0000-000000000000","schema_version":7,"outbox_backlog":0,"at":"2026-11-22T10:00:00Z"}"#
        );
        let stopped = Health::stopped(epoch, datetime!(2026-11-22 10:00 UTC));
        assert_eq!(stopped.mode, HealthMode::Stopped);
        assert_eq!(
            serde_json::from_slice::<Health>(&stopped.to_bytes()).unwrap(),
            stopped
        );
    }

    #[test]
    fn an_audit_event_keeps_its_shape() {
        let e = AuditEvent {
            action: "put".into(),
            actor: "admin".into(),
            service: "tts".into(),
            version: 4,
            at: datetime!(2026-11-22 10:00 UTC),
        };
        assert_eq!(
            String::from_utf8(e.to_bytes()).unwrap(),
            r#"{"action":"put","actor":"admin","service":"tts","version":4,"at":"2026-11-22T10:00:00Z"}"#
        );
    }

    #[test]
    fn broker_urls_parse_with_defaults_aliases_and_credentials() {
        for (raw, tls, port) in [
            ("mqtt://b.lan", false, 1883),
            ("tcp://b.lan", false, 1883),
            ("mqtts://b.lan", true, 8883),
            ("ssl://b.lan", true, 8883),
            ("mqtt://b.lan:1884", false, 1884),
            (" mqtts://b.lan:9000 ", true, 9000),
        ] {
            let b = BrokerUrl::parse(raw).unwrap();
            assert_eq!(
                (b.host.as_str(), b.tls, b.port),
                ("b.lan", tls, port),
                "{raw}"
            );
        }
        let b = BrokerUrl::parse("mqtt://u%40x:w0rd%3As3cret+1@broker.lan:1884").unwrap();
        assert_eq!(
            b.credentials,
            Some(Credentials {
                user: "u@x".into(),
                password: "w0rd:s3cret+1".into()
            })
        );
        assert_eq!(b.display_url(), "mqtt://broker.lan:1884");
        assert!(
            !format!("{b:?}").contains("s3cret"),
            "Debug hides the password"
        );
        assert!(
            !format!("{:?}", b.credentials).contains("s3cret"),
            "so does the credentials' Debug"
        );
        let v6 = BrokerUrl::parse("mqtt://[::1]:1999").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.display_url(), "mqtt://[::1]:1999");
    }

    #[test]
    fn broker_urls_that_cannot_be_used_are_refused() {
        for bad in [
            "",
            "http://x",
            "mqtt://",
            "broker:1883",
            "nonsense",
            "mqtt://u:%FF@h",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
