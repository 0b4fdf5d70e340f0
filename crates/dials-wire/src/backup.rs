//! The metadata file beside a backup (`<backup>.db.json`): what it says and how its bytes are
//! read. The server writes it and reads it back before it lists, verifies or restores a
//! backup; a backup folder may hold files from anywhere, so reading is held to arbitrary bytes
//! (a fuzz target).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// The format of the metadata file.
pub const METADATA_FORMAT: u32 = 1;

/// What the metadata file beside a backup says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupMeta {
    /// Always [`METADATA_FORMAT`].
    pub format: u32,
    /// The backup's file name (in the same folder).
    pub file: String,
    /// The epoch of the database the backup was taken from.
    pub epoch: Uuid,
    /// The latest revision the backup holds.
    pub revision: u64,
    /// The database schema version (latest migration) of the backup.
    pub schema_version: i64,
    /// When the backup was taken (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The version of dials that took it.
    pub dials_version: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's SHA-256, lowercase hex.
    pub sha256: String,
}

/// Why metadata bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupMetaError {
    /// Not JSON, or not the metadata's shape.
    #[error("{0}")]
    Malformed(String),
    /// A format this code does not read.
    #[error("format {0}; this dials reads format {METADATA_FORMAT}")]
    UnknownFormat(u32),
}

impl BackupMeta {
    /// Reads a metadata file's bytes: its shape, then its format.
    pub fn parse(bytes: &[u8]) -> Result<BackupMeta, BackupMetaError> {
        let meta: BackupMeta =
            serde_json::from_slice(bytes).map_err(|e| BackupMetaError::Malformed(e.to_string()))?;
        if meta.format != METADATA_FORMAT {
            return Err(BackupMetaError::UnknownFormat(meta.format));
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupMeta {
        BackupMeta {
            format: METADATA_FORMAT,
            file: "dials-20261205T210000Z-r7.db".into(),
            epoch: Uuid::from_u128(1),
            revision: 7,
            schema_version: 12,
            created_at: OffsetDateTime::UNIX_EPOCH,
            dials_version: "0.1.0".into(),
            size: 4096,
            sha256: "00".repeat(32),
        }
    }

    #[test]
    fn written_metadata_reads_back() {
        let bytes = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(BackupMeta::parse(&bytes).unwrap(), sample());
    }

    #[test]
    fn another_format_or_shape_is_refused() {
        let mut other = serde_json::to_value(sample()).unwrap();
        other["format"] = 2.into();
        let bytes = serde_json::to_vec(&other).unwrap();
        assert_eq!(
            BackupMeta::parse(&bytes),
            Err(BackupMetaError::UnknownFormat(2))
        );
        assert!(matches!(
            BackupMeta::parse(b"{\"format\":1}"),
            Err(BackupMetaError::Malformed(_))
        ));
        assert!(matches!(
            BackupMeta::parse(b"\xff"),
            Err(BackupMetaError::Malformed(_))
        ));
    }
}
