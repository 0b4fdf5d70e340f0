//! The plain values passed in and out of a [`crate::Store`].

use dials_domain::{ChangeKind, Document, KeyChange, Revision, ServiceName, Version};
use time::OffsetDateTime;
use uuid::Uuid;

/// A service's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    /// The service.
    pub name: ServiceName,
    /// Its current version (a deleted service keeps its last one).
    pub version: Version,
    /// The global revision of its latest change.
    pub revision: Revision,
    /// The document, or `None` once the service was deleted.
    pub document: Option<Document>,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
    /// Who last changed it.
    pub updated_by: String,
}

/// One stored version of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// The service.
    pub service: ServiceName,
    /// The version.
    pub version: Version,
    /// The global revision of the change.
    pub revision: Revision,
    /// What kind of change produced it.
    pub kind: ChangeKind,
    /// The document as of this version, `None` for a deletion.
    pub document: Option<Document>,
    /// Who wrote it.
    pub actor: String,
    /// Why, if given.
    pub reason: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// A change to commit: the caller computed `document` (and the per-key `changes`) from the
/// state it read at `base_version`.
#[derive(Debug, Clone)]
pub struct NewChange {
    /// The service.
    pub service: ServiceName,
    /// The version the change was computed from (0 for a service never written).
    pub base_version: Version,
    /// What kind of change this is.
    pub kind: ChangeKind,
    /// The new document, `None` to delete the service.
    pub document: Option<Document>,
    /// One entry per changed key, as the domain's `diff` computed it.
    pub changes: Vec<KeyChange>,
    /// Who makes the change.
    pub actor: String,
    /// Why, if given.
    pub reason: Option<String>,
    /// When (the caller's clock, so one change has one time everywhere).
    pub at: OffsetDateTime,
    /// The network address the change came from, for the audit log.
    pub origin: Option<String>,
    /// Secret values new in `document`, sealed, each under the version being written.
    pub secrets: Vec<SecretRecord>,
}

/// One secret value as stored: sealed by a master key, never in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The service.
    pub service: ServiceName,
    /// The key's JSON Pointer.
    pub key: String,
    /// The secret's version: the service version at which this value was set.
    pub version: Version,
    /// The id of the master key that sealed it.
    pub key_id: String,
    /// The nonce it was sealed with.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// When it was set.
    pub created_at: OffsetDateTime,
    /// Who set it.
    pub created_by: String,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("service", &self.service)
            .field("key", &self.key)
            .field("version", &self.version)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A value sealed again during a master-key rotation: the new key id, nonce and ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Resealed {
    /// The id of the key that sealed it now.
    pub key_id: String,
    /// The new nonce.
    pub nonce: Vec<u8>,
    /// The new ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Resealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a successful commit produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The new version.
    pub version: Version,
    /// The new global revision.
    pub revision: Revision,
    /// The id of the outbox row written with it: where it stands in publish order.
    pub outbox: i64,
}

/// Filters of a history query. All are optional; `limit` is clamped by the caller.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this service.
    pub service: Option<ServiceName>,
    /// Only this key and keys below it (a JSON Pointer).
    pub key: Option<String>,
    /// Only changes at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only changes before this instant.
    pub until: Option<OffsetDateTime>,
    /// Only changes by this actor.
    pub actor: Option<String>,
    /// Only records older than this record id (the paging cursor).
    pub before_id: Option<i64>,
    /// At most this many records.
    pub limit: u32,
}

/// One per-key change record.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    /// The record's id, increasing with time (the paging cursor).
    pub id: i64,
    /// The global revision of the change.
    pub revision: Revision,
    /// The service.
    pub service: ServiceName,
    /// The version the change produced.
    pub version: Version,
    /// JSON Pointer of the key.
    pub key: String,
    /// What kind of change it was part of.
    pub kind: ChangeKind,
    /// The value before, if the key existed.
    pub old: Option<serde_json::Value>,
    /// The value after, if the key exists.
    pub new: Option<serde_json::Value>,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: OffsetDateTime,
}

/// An API token as stored: never the secret itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public identifier (shown in lists, used to revoke).
    pub id: Uuid,
    /// A name people recognise.
    pub name: String,
    /// `viewer`, `operator`, `admin` or `service`.
    pub role: String,
    /// For `service` tokens: the one service it may act for.
    pub service: Option<String>,
    /// SHA-256 of the token secret.
    pub hash: [u8; 32],
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Who created it.
    pub created_by: String,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
}

/// A committed change waiting in the outbox, with what publishing it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// The outbox row's id: publish order.
    pub id: i64,
    /// The change's global revision.
    pub revision: Revision,
    /// The service.
    pub service: ServiceName,
    /// The version the change produced.
    pub version: Version,
    /// What kind of change.
    pub kind: ChangeKind,
    /// The document as of that version, `None` for a deletion.
    pub document: Option<Document>,
    /// Who made it.
    pub actor: String,
    /// When.
    pub at: OffsetDateTime,
}

/// One change as the watch stream shows it.
pub type ChangeRecord = VersionRecord;

/// What another process sharing the database tells this one (see [`Database::notices`]).
///
/// [`Database::notices`]: crate::Database::notices
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Changes were committed: read the change log after the last revision seen.
    Changed,
    /// A service's schema was registered.
    Schema(String),
    /// A token was revoked.
    TokenRevoked(Uuid),
    /// Notices may have been lost (the connection that receives them was lost and made
    /// anew): every cache must be checked against the database.
    Missed,
}

impl Notice {
    /// The notice a payload on the notification channel stands for; `None` for one this
    /// version does not know.
    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':') {
            None if payload == "c" => Some(Self::Changed),
            Some(("s", service)) => Some(Self::Schema(service.to_owned())),
            Some(("t", id)) => id.parse().ok().map(Self::TokenRevoked),
            _ => None,
        }
    }

    /// The payload that stands for this notice.
    pub fn payload(&self) -> String {
        match self {
            Self::Changed => "c".to_owned(),
            Self::Schema(service) => format!("s:{service}"),
            Self::TokenRevoked(id) => format!("t:{id}"),
            Self::Missed => "m".to_owned(),
        }
    }
}

/// What one running instance of a service last reported.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceReport {
    /// The service.
    pub service: ServiceName,
    /// The instance's own name.
    pub instance: String,
    /// The version it reported on.
    pub version: Version,
    /// `applied`, `rejected` or `failed`.
    pub status: String,
    /// Why, when not applied.
    pub error: Option<String>,
    /// Hash of the schema the instance runs with, if it sent one.
    pub schema_hash: Option<String>,
    /// Keys the instance's environment overrides (JSON array), if it sent them.
    pub overrides: Option<serde_json::Value>,
    /// The instance's own timestamp.
    pub reported_at: OffsetDateTime,
    /// When the manager received it.
    pub received_at: OffsetDateTime,
}

/// The bounds [`crate::Store::record_instances`] keeps a service's instances within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceLimits {
    /// Most instances kept per service.
    pub per_service: u32,
    /// An instance whose last report was received before this is stale: when its service is
    /// full, the stalest such instance makes room for a new one.
    pub stale_before: OffsetDateTime,
}

/// What became of a batch of instance reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordedReports {
    /// Reports written.
    pub recorded: u64,
    /// Reports refused: for a service without a document, for version 0 or a version above the
    /// service's current one, or for a new instance of a service that is full of fresh ones.
    pub refused: u64,
    /// Stale instances removed to make room for new ones.
    pub evicted: u64,
}

/// A service's registered schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRecord {
    /// The service.
    pub service: ServiceName,
    /// The JSON Schema.
    pub schema: serde_json::Value,
    /// Hex SHA-256 of the schema, to tell re-registrations from changes.
    pub hash: String,
    /// When it was registered.
    pub updated_at: OffsetDateTime,
    /// Who registered it.
    pub updated_by: String,
}

/// A browser session: what the cookie stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie value.
    pub hash: [u8; 32],
    /// The token the session was opened with.
    pub token_id: Uuid,
    /// The CSRF token unsafe requests must echo.
    pub csrf: String,
    /// When it was opened.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// One entry of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing with time (the paging cursor); 0 before it is stored.
    pub id: i64,
    /// When.
    pub at: OffsetDateTime,
    /// Who: a token's name, or `anonymous`.
    pub actor: String,
    /// What, e.g. `config.put`, `token.create`, or `GET /api/v1/tokens` for a denied request.
    pub action: String,
    /// What it was done to (a service, a token id), if anything.
    pub target: Option<String>,
    /// The client's network address, if known.
    pub address: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Why it was denied, or other detail; never a secret value.
    pub reason: Option<String>,
}

/// Filters of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only actions starting with this (e.g. `config.` or `token.`).
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// Before.
    pub until: Option<OffsetDateTime>,
    /// Older than this id (the cursor).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// How a schema registration rewrites a service's past when it starts marking keys secret:
/// every older version's document, and every history value, through these functions (`None`
/// leaves a value as it is).
pub struct Redaction<'a> {
    /// A stored document, rewritten.
    pub document: &'a (dyn Fn(&Document) -> Option<Document> + Send + Sync),
    /// A history value at a key (a JSON Pointer), rewritten.
    pub value: &'a (dyn Fn(&str, &serde_json::Value) -> Option<serde_json::Value> + Send + Sync),
}

impl std::fmt::Debug for Redaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redaction").finish_non_exhaustive()
    }
}

/// A named snapshot of chosen services, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    /// The profile's name (the caller checks its form).
    pub name: String,
    /// What it is for, in the saver's words (may be empty).
    pub description: String,
    /// One entry per captured service, by service name.
    pub members: Vec<ProfileMember>,
    /// When it was saved.
    pub created_at: OffsetDateTime,
    /// Who saved it.
    pub created_by: String,
}

/// One service inside a profile: the version captured and its document as stored, so secrets
/// are placeholders naming sealed values in the store, never values.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMember {
    /// The service.
    pub service: ServiceName,
    /// The version the document was captured at.
    pub version: Version,
    /// The document as stored at that version.
    pub document: Document,
}

/// Everything one import writes, in one transaction: schemas first, then the config changes
/// (each a compare-and-swap like [`crate::ConfigWrites::commit`]), then the profiles, each
/// replacing any profile of its name.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// Schemas to register or replace.
    pub schemas: Vec<SchemaRecord>,
    /// Config changes.
    pub changes: Vec<NewChange>,
    /// Profiles to save, overwriting.
    pub profiles: Vec<ProfileRecord>,
}

/// One outbox row as stored, published or not (for [`crate::Transfer`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Publish order.
    pub id: i64,
    /// The change's global revision.
    pub revision: Revision,
    /// The service.
    pub service: ServiceName,
    /// The version the change produced.
    pub version: Version,
    /// When the change was committed.
    pub created_at: OffsetDateTime,
    /// When the broker acknowledged it, if it did.
    pub published_at: Option<OffsetDateTime>,
}

/// Everything one database holds, read in one consistent snapshot: what moves an installation
/// from one backend to another ([`crate::Transfer`]). Every list is in its natural order
/// (changes by revision, history, outbox and audit by id, the rest by name or key).
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    /// The database's epoch, kept by the move so services and their caches see the same
    /// database.
    pub epoch: dials_domain::Epoch,
    /// The latest global revision.
    pub revision: u64,
    /// Every service's current state, deleted ones included.
    pub services: Vec<ServiceState>,
    /// Every version of every service (the change log).
    pub changes: Vec<VersionRecord>,
    /// Every per-key history record, with its id.
    pub history: Vec<HistoryRecord>,
    /// Every outbox row, with whether it was published.
    pub outbox: Vec<OutboxRow>,
    /// Every registered schema.
    pub schemas: Vec<SchemaRecord>,
    /// Every sealed secret value, as sealed.
    pub secrets: Vec<SecretRecord>,
    /// Every token (hashes only).
    pub tokens: Vec<TokenRecord>,
    /// Every browser session.
    pub sessions: Vec<SessionRecord>,
    /// Every profile.
    pub profiles: Vec<ProfileRecord>,
    /// Every instance's last report.
    pub instances: Vec<InstanceReport>,
    /// The whole access log.
    pub audit: Vec<AuditRecord>,
}

impl Dump {
    /// How many rows of each kind, by name, for summaries and checks.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("services", self.services.len()),
            ("versions", self.changes.len()),
            ("history rows", self.history.len()),
            ("outbox rows", self.outbox.len()),
            ("schemas", self.schemas.len()),
            ("secret values", self.secrets.len()),
            ("tokens", self.tokens.len()),
            ("sessions", self.sessions.len()),
            ("profiles", self.profiles.len()),
            ("instance reports", self.instances.len()),
            ("audit entries", self.audit.len()),
        ]
    }
}
