//! Bodies of the many-service writes: profiles, the fleet restore, export and import, and the
//! plan each of them answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::FieldError;

/// The header carrying the passphrase that encrypts (export) or opens (import) secret values.
pub const EXPORT_PASSPHRASE_HEADER: &str = "Dials-Export-Passphrase";

/// The export file format this build writes and reads.
pub const EXPORT_FORMAT: u32 = 1;

/// `POST /api/v1/profiles`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveProfile {
    /// The profile's name: lowercase letters, digits, `-`, `_`, 1–64 characters, starting with
    /// a letter or digit.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The services to capture; omitted: every service that has a document now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// Replace a profile of the same name (else 409).
    #[serde(default)]
    pub overwrite: bool,
}

/// One row of `GET /api/v1/profiles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfileSummary {
    /// The profile's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The services it holds, by name.
    pub services: Vec<String>,
    /// When it was saved.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who saved it.
    pub created_by: String,
}

/// `GET /api/v1/profiles`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProfileList {
    /// Every profile, by name.
    pub profiles: Vec<ProfileSummary>,
}

/// One service captured in a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfileService {
    /// The service.
    pub service: String,
    /// The version captured.
    pub version: u64,
    /// Its document at that version, secrets shown as `"********"`.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// `GET /api/v1/profiles/{name}`, and a profile inside an export file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// When it was saved.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who saved it.
    pub created_by: String,
    /// The services it holds, by name.
    pub services: Vec<ProfileService>,
}

/// `POST /api/v1/profiles/{name}/apply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyProfile {
    /// Only compute the plan; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/v1/restore`: the fleet (or the services named) as it was at an instant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetRestore {
    /// The instant to go back to (RFC 3339, not in the future).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Only these services; omitted: every service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<String>>,
    /// Only compute the plan; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Why, for history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a many-service write does to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanAction {
    /// The service gets its first document (or its document back after a deletion).
    Create,
    /// The document changes.
    Update,
    /// Nothing changes: no new version, no MQTT message.
    Unchanged,
    /// Left alone (it did not exist at the instant restored).
    Skipped,
    /// The new document does not fit the service's schema: nothing at all is written.
    Invalid,
}

/// One key a plan changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanChange {
    /// JSON Pointer of the key.
    pub key: String,
    /// The value now (absent when the key is added); secrets as `"********"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value written (absent when the key is removed); secrets as `"********"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// One service in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanService {
    /// The service.
    pub service: String,
    /// What happens to it.
    pub action: PlanAction,
    /// Its version now (0: it has no document now).
    pub from_version: u64,
    /// The version written, or that would be written by a dry run; `from_version` when
    /// nothing changes.
    pub version: u64,
    /// Per-key changes.
    pub changes: Vec<PlanChange>,
    /// Why the new document does not fit the schema.
    pub errors: Vec<FieldError>,
}

/// What an import does to a profile or a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanItem {
    /// The profile's name, or the schema's service.
    pub name: String,
    /// `create`, `update` or `unchanged`.
    pub action: PlanAction,
}

/// The answer of a profile apply, a fleet restore and an import, dry run or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Whether every member is valid (a write happened, or would happen).
    pub ok: bool,
    /// One entry per service, by name.
    pub services: Vec<PlanService>,
    /// Imports only: what happens to each profile of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<PlanItem>>,
    /// Imports only: what happens to each schema of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Vec<PlanItem>>,
}

/// `POST /api/v1/import?dry_run=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportParams {
    /// Only compute the plan.
    #[serde(default)]
    pub dry_run: bool,
}

/// The export file (format 1): every service with its document and schema, and every profile.
/// Secret values appear only in `secrets`, encrypted with a passphrase, and only when the
/// export asked for them; documents show each secret as `"********"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    /// The file format; this build reads and writes 1.
    pub format: u32,
    /// When the export was made.
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    /// Every service that has a document or a schema, by name.
    pub services: Vec<ExportService>,
    /// Every profile, by name.
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// The secret values, encrypted with the export's passphrase; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SealedSecrets>,
}

/// One service in an export file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportService {
    /// The service.
    pub name: String,
    /// Its version when exported (information only: an import writes new versions).
    #[serde(default)]
    pub version: u64,
    /// Its document, secrets as `"********"`; absent for a service with only a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// The keys holding secrets (named, not valued).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Its JSON Schema, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
}

/// Secret values sealed with a passphrase: Argon2id derives a 256-bit key from the passphrase
/// and `salt`, AES-256-GCM seals the JSON [`SecretValues`] under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedSecrets {
    /// `argon2id`.
    pub kdf: String,
    /// Argon2 memory cost in KiB.
    pub m_cost: u32,
    /// Argon2 passes.
    pub t_cost: u32,
    /// Argon2 lanes.
    pub p_cost: u32,
    /// `aes-256-gcm`.
    pub cipher: String,
    /// Standard base64 of the salt.
    pub salt: String,
    /// Standard base64 of the nonce.
    pub nonce: String,
    /// Standard base64 of ciphertext and tag.
    pub ciphertext: String,
}

/// What [`SealedSecrets`] holds once opened: the values of each service's secrets and of each
/// profile member's, by key (JSON Pointer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretValues {
    /// By service, then key.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>>,
    /// By profile, then service, then key.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>>,
    >,
}
