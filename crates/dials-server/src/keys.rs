//! The keys in `<data-dir>/keys/`: created on first start (0600), overridable by environment.
//!
//! `signing.key` holds the Ed25519 seed (standard base64 of 32 bytes) that signs every MQTT
//! envelope; `DIALS_SIGNING_KEY` (same format) overrides it.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dials_wire::EnvelopeSigner;

use crate::startup::{create_private_dir, write_private_file};

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
