//! The last-known-good (LKG) file: the latest config the service applied from the manager, so
//! that it can start while the manager is away.
//!
//! The format (contents, canonical form, HMAC) is the contract's, in `dials_wire::lkg`; this
//! module reads and writes the file. `config` is the manager's document without the values of
//! `x-secret` keys (secrets never touch the disk). The file is replaced atomically: a temporary
//! file in the same folder, fsync, rename, fsync of the folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use dials_wire::lkg::{FORMAT, LkgContents};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The LKG file of one service and the key that signs it.
pub(crate) struct LkgFile {
    path: PathBuf,
    key: Vec<u8>,
}

impl std::fmt::Debug for LkgFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LkgFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a valid LKG file holds.
#[derive(Debug, Clone)]
pub(crate) struct Lkg {
    pub version: u64,
    pub epoch: Option<Uuid>,
    pub config: Value,
    /// `global` and the instance's override, when the config was merged from them.
    pub layers: Option<dials_wire::lkg::LkgLayers>,
}

/// Why an LKG file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LkgError {
    #[error("the last-known-good file {0} does not exist")]
    Missing(String),
    #[error("the last-known-good file {path} cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the last-known-good file {path} is refused: {reason}")]
    Refused { path: String, reason: String },
}

impl LkgError {
    /// Whether the refusal deserves an error in the log (anything but a missing file).
    pub fn is_loud(&self) -> bool {
        !matches!(self, Self::Missing(_))
    }
}

/// The LKG key derived from the service's token: HMAC-SHA256(key = token, "dials-lkg-v1").
pub(crate) fn key_from_token(token: &str) -> Vec<u8> {
    dials_wire::lkg::key_from_token(token)
}

impl LkgFile {
    pub fn new(path: PathBuf, key: Vec<u8>) -> Self {
        Self { path, key }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and checks the file: format, MAC under our key, service.
    pub fn load(&self, service: &str) -> Result<Lkg, LkgError> {
        let path = self.path.display().to_string();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LkgError::Missing(path));
            }
            Err(e) => {
                return Err(LkgError::Unreadable {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        let contents =
            LkgContents::open(&bytes, &self.key, service).map_err(|e| LkgError::Refused {
                path,
                reason: e.to_string(),
            })?;
        Ok(Lkg {
            version: contents.version,
            epoch: contents.epoch,
            config: contents.config,
            layers: contents.layers,
        })
    }

    /// Replaces the file atomically. Blocking: call from a blocking thread.
    pub fn store(
        &self,
        service: &str,
        version: u64,
        epoch: Option<Uuid>,
        schema_hash: &str,
        config: Value,
        layers: Option<dials_wire::lkg::LkgLayers>,
    ) -> Result<(), String> {
        let contents = LkgContents {
            format: FORMAT,
            service: service.to_owned(),
            version,
            epoch,
            schema_hash: schema_hash.to_owned(),
            written_at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .map_err(|e| e.to_string())?,
            config,
            layers,
        };
        let bytes = contents.seal(&self.key).map_err(|e| e.to_string())?;

        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // The temporary file is created 0600 and removed if anything below fails.
        let mut file = tempfile::Builder::new()
            .prefix(".dials-lkg-")
            .tempfile_in(&dir)
            .map_err(|e| format!("create a temporary file in {}: {e}", dir.display()))?;
        file.write_all(&bytes).map_err(|e| e.to_string())?;
        file.as_file().sync_all().map_err(|e| e.to_string())?;
        file.persist(&self.path)
            .map_err(|e| format!("rename into {}: {e}", self.path.display()))?;
        // Make the rename itself durable; not every platform lets a folder be synced.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn file(dir: &Path, key: &[u8]) -> LkgFile {
        LkgFile::new(dir.join("sub/svc.lkg"), key.to_vec())
    }

    #[test]
    fn a_stored_lkg_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), b"k");
        assert!(matches!(f.load("svc"), Err(LkgError::Missing(_))));
        let epoch = Uuid::new_v4();
        f.store("svc", 3, Some(epoch), "h", json!({"a": 1}), None)
            .unwrap();
        let lkg = f.load("svc").unwrap();
        assert_eq!(
            (lkg.version, lkg.epoch, lkg.config),
            (3, Some(epoch), json!({"a": 1}))
        );
        // Only the file itself is left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_tampered_foreign_or_garbled_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), b"k");
        f.store("svc", 3, None, "h", json!({"a": 1}), None).unwrap();
        let text = std::fs::read_to_string(f.path()).unwrap();

        std::fs::write(f.path(), text.replace("\"a\":1", "\"a\":2")).unwrap();
        let err = f.load("svc").unwrap_err();
        assert!(err.to_string().contains("HMAC does not match"), "{err}");

        std::fs::write(f.path(), &text).unwrap();
        let err = file(dir.path(), b"other").load("svc").unwrap_err();
        assert!(err.to_string().contains("HMAC does not match"), "{err}");
        let err = f.load("other-svc").unwrap_err();
        assert!(err.to_string().contains("written for service"), "{err}");

        std::fs::write(f.path(), "garbage").unwrap();
        assert!(f.load("svc").unwrap_err().is_loud());
    }
}
