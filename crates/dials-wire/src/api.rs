//! Request and response bodies of `/api/v1`.

use std::collections::BTreeMap;

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
    /// Whether the database answered just now and the last write reached it.
    pub ok: bool,
    /// What is wrong when `ok` is false: the database file is gone, the disk is full…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The schema migration the database is at.
    pub schema_version: i64,
}

/// The replica part of `GET /api/v1/status`: which process answered, among those sharing the
/// database.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplicaStatus {
    /// The replica's name (host, process id, a random suffix).
    pub id: String,
    /// Whether other replicas may share the database (PostgreSQL).
    pub shared: bool,
    /// Whether this replica publishes over MQTT: it holds the publisher's lease (always, on a
    /// database of its own).
    pub publishing: bool,
    /// The latest revision this replica's caches and watch streams have followed (on a shared
    /// database; on one of its own, every commit is its own and followed at once).
    pub followed_revision: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `normal`, `read-only` or `rebuilding`.
    pub mode: Mode,
    /// The database's state.
    pub database: DatabaseStatus,
    /// The MQTT broker: `mode` (`embedded`, `external` or `none`), `url`, `connected`,
    /// `last_error`, `published`; `reports` (applied reports since start: `received`,
    /// `recorded`, `superseded`, `dropped`) and `repairs` (retained messages of other clients
    /// on the manager's topics set right since start).
    #[schema(value_type = Object)]
    pub broker: Value,
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
    /// The replica that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
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
    /// The document. Secrets show as `"********"`, except to the service's own token.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The version of each secret that is set, by key: the service version at which its value
    /// was set. MQTT envelopes carry `{"$secret": <version>}` in their place, so a service can
    /// tell whether the secrets it holds are still current.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, u64>,
}

/// `PUT /api/v1/services/{s}/secrets/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The secret's value: any JSON the schema allows at the key (usually a string).
    pub value: Value,
    /// Write only if the service's current version is this one (else 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One secret key of a service, without its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    /// The key (JSON Pointer).
    pub key: String,
    /// The schema's title for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Whether a value is set.
    pub set: bool,
    /// The secret's version (the service version at which the value was set), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// When the value was set.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<OffsetDateTime>,
    /// Who set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// The id of the master key that seals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// `GET /api/v1/services/{s}/secrets`: every key the schema marks `x-secret`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    /// The service.
    pub service: String,
    /// The service's config version.
    pub version: u64,
    /// One entry per secret key, in schema order.
    pub secrets: Vec<SecretInfo>,
}

/// The answer to setting a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretWritten {
    /// The service.
    pub service: String,
    /// The config version the change produced (or the current one when nothing changed).
    pub version: u64,
    /// The secret, without its value.
    pub secret: SecretInfo,
}

/// `POST /api/v1/services/{s}/secrets/{key}/reveal`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// Why the value must be seen; written to the audit log. Not blank; at most 1000
    /// characters.
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub justification: String,
}

/// A revealed secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevealResponse {
    /// The service.
    pub service: String,
    /// The key.
    pub key: String,
    /// The secret's version.
    pub version: u64,
    /// The value itself.
    pub value: Value,
}

/// `GET /api/v1/services/{s}/lkg-key`: the key a service signs its last-known-good file with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LkgKeyResponse {
    /// The service.
    pub service: String,
    /// The id of the manager's LKG root key it is derived from.
    pub root_key_id: String,
    /// Standard base64 of the 32-byte key.
    pub key: String,
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
    #[schema(value_type = Option<Object>)]
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
    pub old: Option<Value>,
    /// The value in `to` (absent when removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    pub old: Option<Value>,
    /// The value after (absent when the key was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// One signing key of `GET /api/v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// First 16 hex digits of SHA-256 of the raw public key.
    pub key_id: String,
    /// Standard base64 of the 32 raw bytes of the Ed25519 public key.
    pub public_key: String,
    /// Whether this key signs new envelopes (older ones stay trusted during a rotation).
    pub current: bool,
}

/// `GET /api/v1/keys`: the key that signs MQTT envelopes, and every key still trusted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeysResponse {
    /// The current key's id.
    pub key_id: String,
    /// The current public key (standard base64, 32 raw bytes).
    pub public_key: String,
    /// Every trusted key, the current one included.
    pub keys: Vec<KeyInfo>,
    /// Every signing-key rotation statement, oldest first, each signed by the key it replaces:
    /// a receiver that trusts the first key follows them to the current one.
    #[serde(default)]
    pub rotations: Vec<crate::rotation::RotationStatement>,
}

/// What one running instance last reported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceInfo {
    /// The instance's name.
    pub instance: String,
    /// The version it reported on.
    pub version: u64,
    /// `applied`, `rejected` or `failed`; `offline` once it left (its last will, or a clean
    /// stop) or has been silent for longer than the manager's `--instance-timeout`.
    pub status: String,
    /// Why, when not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether it runs the service's current version.
    pub current: bool,
    /// Hash of the schema it runs with, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    /// Keys its environment overrides, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub overrides: Option<Value>,
    /// Keys whose value came from a layer other than the service's document or the schema's
    /// defaults (`global`, `instance`), as the instance reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<BTreeMap<String, String>>,
    /// The version of `global` it applied, if it takes keys from global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_version: Option<u64>,
    /// The version of its override document it applied (0: none), if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_version: Option<u64>,
    /// The instance's own time of the report.
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
    /// When the manager received it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// `GET /api/v1/services/{s}/instances/{i}/config`, and the answer to every write of it: one
/// instance's override document, a partial document merged over the service's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceConfigResponse {
    /// The service name.
    pub service: String,
    /// The instance name.
    pub instance: String,
    /// The override document's own version (its versions count apart from the service's).
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
    /// The override document, as written (no defaults filled). Secrets show as `"********"`,
    /// except to the service's own token.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The version of each secret set in the override, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, u64>,
}

/// The version of each layer an effective config was merged from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LayerVersions {
    /// The service document's version (0: none).
    pub service: u64,
    /// The `global` document's version, when the schema takes keys from global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<u64>,
    /// The instance override's version: 0 when it never had one; a removed override keeps
    /// the version of its removal (`documents.instance` is then absent).
    pub instance: u64,
}

/// The documents of the layers of one instance (see [`EffectiveResponse`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LayerDocuments {
    /// The service's document (`{}` when it has none).
    #[schema(value_type = Object)]
    pub service: Value,
    /// The version of each secret set in the service's document, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_secrets: BTreeMap<String, u64>,
    /// The `global` document, when the schema takes keys from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub global: Option<Value>,
    /// The instance's override document, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub instance: Option<Value>,
    /// The version of each secret set in the override document, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_secrets: BTreeMap<String, u64>,
}

/// `GET /api/v1/services/{s}/instances/{i}/effective`: what one instance runs with, merged
/// from its layers (schema defaults < global < service < instance), with each key's layer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EffectiveResponse {
    /// The service name.
    pub service: String,
    /// The instance name.
    pub instance: String,
    /// The database's epoch.
    pub epoch: Uuid,
    /// The merged document, defaults filled. Secrets show as `"********"`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The layer of every key: `default`, `global`, `service`, `instance`, or `env` for the
    /// keys the instance's last report says its environment overrides (their values are only
    /// known to the instance; `config` shows the manager's).
    pub layers: BTreeMap<String, String>,
    /// The version of each layer merged.
    pub versions: LayerVersions,
    /// Each layer's document as stored (no defaults), for a client that merges them itself
    /// when one of them changes. Secrets masked, except the service's and the instance's to
    /// the service's own token; `global`'s stay masked for every reader.
    pub documents: LayerDocuments,
    /// The instance's last report, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<InstanceInfo>,
}

/// `GET /api/v1/services/{s}/instances`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstancesResponse {
    /// The service.
    pub service: String,
    /// Its current version (0 if it has none).
    pub version: u64,
    /// The instances that reported, by name: all of them, or one page when the request set
    /// `limit` or `cursor`.
    pub instances: Vec<InstanceInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One event of `GET /api/v1/watch` (SSE `event: change`, `id:` the revision).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WatchEvent {
    /// Global revision: pass as `since` (or `Last-Event-ID`) to resume after it.
    pub revision: u64,
    /// The service.
    pub service: String,
    /// The version the change produced.
    pub version: u64,
    /// `put`, `patch`, `restore` or `delete`.
    pub kind: String,
    /// Who made it.
    pub actor: String,
    /// Why, if given.
    #[serde(default)]
    pub reason: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The epoch of the database the change is in. A different epoch than before means the
    /// database was re-created: revisions started over, so re-read everything.
    pub epoch: Uuid,
    /// The document as of this version (`null` after a delete).
    #[schema(value_type = Option<Object>)]
    pub config: Value,
}

/// `GET/PUT /api/v1/services/{s}/schema`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SchemaResponse {
    /// The service.
    pub service: String,
    /// Hex SHA-256 of the schema.
    pub hash: String,
    /// When it was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who registered it.
    pub updated_by: String,
    /// The JSON Schema.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// When registering it changed the stored document (`?migrate=true`): what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationReport>,
}

/// What a schema migration did to the stored document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MigrationReport {
    /// The version the migrated document was written as.
    pub version: u64,
    /// Keys removed because the schema no longer has them.
    pub dropped: Vec<String>,
    /// Keys reset to their default because their value no longer fits.
    pub reset: Vec<String>,
}

/// `POST /api/v1/services/{s}/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The document to check (nothing is stored). Anything but an object is answered as
    /// invalid.
    pub config: Value,
}

/// The answer of `POST /api/v1/services/{s}/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ValidateResponse {
    /// Whether the document would be accepted.
    pub valid: bool,
    /// One entry per violation.
    pub errors: Vec<crate::FieldError>,
}

/// `GET /api/v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// Matching settings, best first: `{service, key, title, description, type, complexity,
    /// secret, restart_required, value, is_default}`.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// How many settings matched in all (`items` may be cut by `limit`).
    pub total: usize,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name people recognise; recorded as the actor of everything the token does. Not
    /// blank; at most 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// `viewer`, `operator`, `admin` or `service`.
    #[schema(pattern = "^(viewer|operator|admin|service)$")]
    pub role: String,
    /// For `service` tokens: the one service it acts for (required then, refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z][a-z0-9-]{0,62}$")]
    pub service: Option<String>,
    /// When it stops working (RFC 3339), if ever.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Its id (used to revoke it).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// Its service, for `service` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used (to the minute).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The answer to `POST /api/v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The token's details.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret to send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Every token, oldest first.
    pub tokens: Vec<TokenInfo>,
}

/// `POST /api/v1/session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// An API token; the session acts with its role.
    pub token: String,
}

/// The answer to `POST /api/v1/session` (the session itself is the HttpOnly cookie).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    /// Send as `X-CSRF-Token` with every unsafe request made with the cookie.
    pub csrf_token: String,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: String,
}

/// One entry of `GET /api/v1/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing with time.
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: a token's name, or `anonymous`.
    pub actor: String,
    /// What: `config.put`, `schema.put`, `token.create`, `session.create`, … or the method and
    /// path of a denied request.
    pub action: String,
    /// What it was done to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Why it was denied, or detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// This page's entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One backup as `POST /api/v1/backups` and `GET /api/v1/backups` show it (and `dials backup
/// create|list --json`): its path on the server, and its metadata or why that cannot be read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BackupEntry {
    /// The backup's database file on the server.
    pub path: String,
    /// Its metadata, when it can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<crate::backup::BackupMeta>,
    /// Why its metadata cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
