//! Request and response bodies of `/api/v1`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `true` while the process answers.
    pub ok: bool,
}

/// The manager's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Reads and writes are served.
    Normal,
    /// Writes answer 503; reads are served.
    ReadOnly,
    /// The database is being rebuilt.
    Rebuilding,
}

/// Database part of `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseStatus {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Whether the database answered just now.
    pub ok: bool,
    /// The schema migration the database is at.
    pub schema_version: i64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `normal`, `read-only` or `rebuilding`.
    pub mode: Mode,
    /// The database's state.
    pub database: DatabaseStatus,
    /// The MQTT broker's state, when MQTT is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Value>,
    /// The epoch of this database's life.
    pub epoch: Uuid,
    /// The global revision of the latest change.
    pub revision: u64,
    /// Committed changes not yet published over MQTT.
    pub outbox_backlog: u64,
    /// Seconds since this process started.
    pub uptime_seconds: f64,
    /// This build's version.
    pub version: String,
}

/// How many instances of a service run which version (filled in from applied reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstancesSummary {
    /// Instances that reported anything.
    pub total: u64,
    /// Instances whose last report is `applied` for the current version.
    pub current: u64,
}

/// One row of `GET /api/v1/services`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    /// The service name.
    pub name: String,
    /// Its current version (0 when it has a schema but no document yet).
    pub version: u64,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub updated_at: Option<OffsetDateTime>,
    /// Who last changed it.
    #[serde(default)]
    pub updated_by: Option<String>,
    /// Whether a schema is registered.
    pub has_schema: bool,
    /// Running instances.
    pub instances: InstancesSummary,
}

/// `GET /api/v1/services`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    /// Every live service, by name.
    pub services: Vec<ServiceInfo>,
}

/// `GET /api/v1/services/{s}/config`, and the answer to every write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigResponse {
    /// The service name.
    pub service: String,
    /// The document's version.
    pub version: u64,
    /// The global revision of the change that produced this version.
    pub revision: u64,
    /// The database's epoch.
    pub epoch: Uuid,
    /// When this version was written.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub updated_at: Option<OffsetDateTime>,
    /// Who wrote it.
    #[serde(default)]
    pub updated_by: Option<String>,
    /// The document.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// `PUT /api/v1/services/{s}/config`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutConfig {
    /// The whole new document (a JSON object).
    #[schema(value_type = Object)]
    pub config: Value,
    /// Write only if the current version is this one (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `PATCH /api/v1/services/{s}/config`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchConfig {
    /// An RFC 7396 merge patch (a JSON object; `null` removes a key).
    #[schema(value_type = Object)]
    pub config: Value,
    /// Write only if the current version is this one (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/services/{s}/restore`: exactly one of `version` and `at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The version to write again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Restore the state the service had at this instant.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub at: Option<OffsetDateTime>,
    /// Write only if the current version is this one (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/services/{s}/versions/{v}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionResponse {
    /// The service name.
    pub service: String,
    /// The version shown.
    pub version: u64,
    /// The global revision of the change that produced it.
    pub revision: u64,
    /// `put`, `patch`, `restore` or `delete`.
    pub kind: String,
    /// When it was written.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who wrote it.
    pub actor: String,
    /// Why, if given.
    #[serde(default)]
    pub reason: Option<String>,
    /// The document as of this version (`null` for a deletion).
    #[schema(value_type = Object)]
    pub config: Value,
}

/// One key that differs between two versions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyDiff {
    /// JSON Pointer of the key.
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub op: String,
    /// The value in `from` (absent when added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub old: Option<Value>,
    /// The value in `to` (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub new: Option<Value>,
}

/// `GET /api/v1/services/{s}/diff`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiffResponse {
    /// The service name.
    pub service: String,
    /// The older version.
    pub from: u64,
    /// The newer version.
    pub to: u64,
    /// Keys that differ, in key order.
    pub changes: Vec<KeyDiff>,
}

/// One per-key change record of `GET /api/v1/history`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// The global revision of the change.
    pub revision: u64,
    /// The service.
    pub service: String,
    /// The version the change produced.
    pub version: u64,
    /// JSON Pointer of the key.
    pub key: String,
    /// `put`, `patch`, `restore` or `delete`.
    pub kind: String,
    /// The value before (absent when the key was added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub old: Option<Value>,
    /// The value after (absent when the key was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub new: Option<Value>,
    /// Who made the change.
    pub actor: String,
    /// Why, if given.
    #[serde(default)]
    pub reason: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `GET /api/v1/history`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryPage {
    /// The records of this page.
    pub items: Vec<HistoryEntry>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
