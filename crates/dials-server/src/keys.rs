//! The keys in `<data-dir>/keys/`: created on first start (0600), overridable by environment.
//!
//! `signing.key` holds the Ed25519 seed (standard base64 of 32 bytes) that signs every MQTT
//! envelope; `DIALS_SIGNING_KEY` (same format) overrides it. Rotating it ([`rotate_signing_key`])
//! writes a new seed and keeps the old *public* key in `signing-retired.json`, listed at
//! `GET /api/v1/keys` for [`SIGNING_GRACE`], so services can pin both while they move over.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dials_wire::EnvelopeSigner;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::startup::{create_private_dir, write_private_file};

/// How long a retired signing key stays listed as trusted after a rotation.
pub const SIGNING_GRACE: time::Duration = time::Duration::days(7);

/// A signing key that was replaced: its public half, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    /// Its key id.
    pub key_id: String,
    /// Its public key (standard base64).
    pub public_key: String,
    /// When it stopped signing.
    #[serde(with = "time::serde::rfc3339")]
    pub retired_at: OffsetDateTime,
}

/// Retired signing keys still within their grace period.
pub fn retired_signing_keys(data_dir: &Path) -> anyhow::Result<Vec<RetiredKey>> {
    let path = data_dir.join("keys").join("signing-retired.json");
    let all: Vec<RetiredKey> = match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let cutoff = OffsetDateTime::now_utc() - SIGNING_GRACE;
    Ok(all.into_iter().filter(|k| k.retired_at > cutoff).collect())
}

/// Replaces `keys/signing.key` with a new key; the old public key stays trusted for
/// [`SIGNING_GRACE`]. Returns (old key id, new key id). A running server signs with the new key
/// after its next start.
pub fn rotate_signing_key(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let old = signing_key(data_dir, None)?;
    let mut retired = retired_signing_keys(data_dir)?;
    retired.push(RetiredKey {
        key_id: old.key_id().to_owned(),
        public_key: old.public_key_base64(),
        retired_at: OffsetDateTime::now_utc(),
    });
    let keys = data_dir.join("keys");
    write_private_file(
        &keys.join("signing-retired.json"),
        &serde_json::to_vec_pretty(&retired)?,
    )?;
    let seed: [u8; 32] = rand::random();
    // Write the new key beside the old one, then rename over it: never a half-written key.
    let staging = keys.join("signing.key.new");
    write_private_file(&staging, format!("{}\n", STANDARD.encode(seed)).as_bytes())?;
    std::fs::rename(&staging, keys.join("signing.key")).context("cannot replace signing.key")?;
    let new = EnvelopeSigner::from_seed(&seed);
    Ok((old.key_id().to_owned(), new.key_id().to_owned()))
}

/// Loads the signing key: the override if given, else `keys/signing.key`, created if absent.
pub fn signing_key(
    data_dir: &Path,
    override_base64: Option<&str>,
) -> anyhow::Result<EnvelopeSigner> {
    if let Some(text) = override_base64 {
        let seed = decode_seed(text).context("invalid DIALS_SIGNING_KEY")?;
        return Ok(EnvelopeSigner::from_seed(&seed));
    }
    let dir = data_dir.join("keys");
    create_private_dir(&dir)?;
    let path = dir.join("signing.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let seed = decode_seed(&text)
                .with_context(|| format!("invalid key file {}", path.display()))?;
            Ok(EnvelopeSigner::from_seed(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            write_private_file(&path, format!("{}\n", STANDARD.encode(seed)).as_bytes())?;
            let signer = EnvelopeSigner::from_seed(&seed);
            tracing::info!(key_id = signer.key_id(), path = %path.display(), "created the envelope signing key");
            Ok(signer)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn decode_seed(text: &str) -> anyhow::Result<[u8; 32]> {
    let raw = STANDARD
        .decode(text.trim())
        .context("not standard base64")?;
    match <[u8; 32]>::try_from(raw.as_slice()) {
        Ok(seed) => Ok(seed),
        Err(_) => bail!("expected 32 bytes, found {}", raw.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = signing_key(dir.path(), None).unwrap();
        let again = signing_key(dir.path(), None).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys/signing.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn rotating_keeps_the_old_public_key_trusted_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let first = signing_key(dir.path(), None).unwrap();
        let (old, new) = rotate_signing_key(dir.path()).unwrap();
        assert_eq!(old, first.key_id());
        assert_eq!(signing_key(dir.path(), None).unwrap().key_id(), new);
        assert_ne!(old, new);
        let retired = retired_signing_keys(dir.path()).unwrap();
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].public_key, first.public_key_base64());
        assert!(!dir.path().join("keys/signing.key.new").exists());
    }

    #[test]
    fn the_environment_override_wins_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let seed = STANDARD.encode([5u8; 32]);
        let k = signing_key(dir.path(), Some(&seed)).unwrap();
        assert_eq!(k.key_id(), EnvelopeSigner::from_seed(&[5; 32]).key_id());
        assert!(
            !dir.path().join("keys").exists(),
            "an override writes no key file"
        );
        assert!(signing_key(dir.path(), Some("AAAA")).is_err());
        assert!(signing_key(dir.path(), Some("%%%")).is_err());
    }
}
