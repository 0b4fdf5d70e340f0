//! The keys in `<data-dir>/keys/`: created on first start (0600), overridable by environment.
//!
//! - `signing.key` holds the Ed25519 seed (standard base64 of 32 bytes) that signs every MQTT
//!   envelope; `DIALS_SIGNING_KEY` (same format) overrides it. Rotating it
//!   ([`rotate_signing_key`]) writes a new seed and keeps the old *public* key in
//!   `signing-retired.json`, listed at `GET /api/v1/keys` for [`SIGNING_GRACE`], so services can
//!   pin both while they move over. It also appends a rotation statement signed by the old
//!   key naming the new one to `signing-rotations.json` (kept for good): the chain that lets a
//!   service that pinned any earlier key follow the rotations (`dials_wire::rotation`).
//! - `master.key` holds the AES-256 master key ring that seals secrets at rest: one base64 key
//!   per line, the current key first, older keys after it only while values sealed with them
//!   remain. `DIALS_MASTER_KEY` overrides it (keys separated by commas). Rotating it
//!   ([`rotate_master_key`]) reseals every secret in one transaction.
//! - `lkg-hmac.key` holds the root of the per-service keys that sign services' last-known-good
//!   files ([`lkg_key_for`]); `DIALS_LKG_HMAC_KEY` overrides it.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dials_store::{Resealed, SecretRecord, Store};
use dials_vault::{Aad, Keyring, MasterKey, SealedValue};
use dials_wire::EnvelopeSigner;
use dials_wire::rotation::RotationStatement;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::data_dir::{create_private_dir, replace_file, write_private_file};

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

/// Every key the server runs with.
#[derive(Debug, Clone)]
pub struct ServerKeys {
    /// Signs MQTT envelopes.
    pub signer: std::sync::Arc<EnvelopeSigner>,
    /// Signing keys replaced within their grace period, still listed as trusted.
    pub retired_signing: Vec<RetiredKey>,
    /// Every rotation statement made in this data directory, oldest first.
    pub rotations: Vec<RotationStatement>,
    /// Seals and opens secrets at rest.
    pub master: Keyring,
    /// The root of the per-service last-known-good keys.
    pub lkg_root: MasterKey,
}

/// Where the keys come from instead of their files, when the environment says so.
#[derive(Debug, Clone, Default)]
pub struct KeyOverrides {
    /// `DIALS_SIGNING_KEY`: the Ed25519 seed, base64.
    pub signing: Option<String>,
    /// `DIALS_MASTER_KEY`: one or more AES-256 keys, base64, current first, comma-separated.
    pub master: Option<String>,
    /// `DIALS_LKG_HMAC_KEY`: 32 bytes, base64.
    pub lkg_hmac: Option<String>,
}

impl ServerKeys {
    /// Loads every key, creating the missing files in `<data-dir>/keys/`.
    pub fn load(data_dir: &Path, overrides: &KeyOverrides) -> anyhow::Result<Self> {
        let signer = std::sync::Arc::new(signing_key(data_dir, overrides.signing.as_deref())?);
        let retired_signing = match overrides.signing {
            Some(_) => Vec::new(),
            None => retired_signing_keys(data_dir)?,
        };
        Ok(Self {
            signer,
            retired_signing,
            rotations: signing_rotations(data_dir)?,
            master: master_keyring(data_dir, overrides.master.as_deref())?,
            lkg_root: lkg_root_key(data_dir, overrides.lkg_hmac.as_deref())?,
        })
    }
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

/// Every rotation statement in `keys/signing-rotations.json`, oldest first.
pub fn signing_rotations(data_dir: &Path) -> anyhow::Result<Vec<RotationStatement>> {
    let path = data_dir.join("keys").join(ROTATIONS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Where the rotation statements are kept.
const ROTATIONS_FILE: &str = "signing-rotations.json";

/// Replaces `keys/signing.key` with a new key; the old public key stays trusted for
/// [`SIGNING_GRACE`], and a statement signed by the old key naming the new one joins the
/// rotation chain (written before the new key, so a new key never exists without it). Returns
/// (old key id, new key id). A running server signs with the new key after its next start.
pub fn rotate_signing_key(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let old = signing_key(data_dir, None)?;
    let seed: [u8; 32] = rand::random();
    let new = EnvelopeSigner::from_seed(&seed);
    let mut rotations = signing_rotations(data_dir)?;
    rotations.push(
        RotationStatement::sign(&old, &new.verifying_key(), OffsetDateTime::now_utc())
            .map_err(|e| anyhow::anyhow!("cannot sign the rotation statement: {e}"))?,
    );
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
    replace_file(
        &keys.join(ROTATIONS_FILE),
        &serde_json::to_string_pretty(&rotations)?,
    )?;
    replace_file(
        &keys.join("signing.key"),
        &format!("{}\n", STANDARD.encode(seed)),
    )?;
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
    let path = data_dir.join("keys").join("signing.key");
    let (text, created) = read_or_create(&path, || {
        Zeroizing::new(format!("{}\n", STANDARD.encode(rand::random::<[u8; 32]>())))
    })?;
    let seed =
        decode_seed(&text).with_context(|| format!("invalid key file {}", path.display()))?;
    let signer = EnvelopeSigner::from_seed(&seed);
    if created {
        tracing::info!(key_id = signer.key_id(), path = %path.display(), "created the envelope signing key");
    }
    Ok(signer)
}

/// Loads the master key ring: the override if given, else `keys/master.key`, created with one
/// new key if absent.
pub fn master_keyring(data_dir: &Path, override_text: Option<&str>) -> anyhow::Result<Keyring> {
    if let Some(text) = override_text {
        return Keyring::parse(text).context("invalid DIALS_MASTER_KEY");
    }
    let path = master_key_path(data_dir);
    let (text, created) = read_or_create(&path, || {
        Keyring::new(vec![MasterKey::generate()])
            .expect("one key")
            .to_text()
    })?;
    let ring =
        Keyring::parse(&text).with_context(|| format!("invalid key file {}", path.display()))?;
    if created {
        tracing::info!(key_id = ring.current().id(), path = %path.display(), "created the master key for secrets at rest");
    }
    Ok(ring)
}

/// Replaces `keys/master.key` with `ring`, atomically.
pub fn write_master_keyring(data_dir: &Path, ring: &Keyring) -> anyhow::Result<()> {
    let text = ring.to_text();
    replace_file(&master_key_path(data_dir), &text)
}

fn master_key_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("keys").join("master.key")
}

/// Loads the root of the last-known-good keys: the override if given, else
/// `keys/lkg-hmac.key`, created if absent.
pub fn lkg_root_key(data_dir: &Path, override_base64: Option<&str>) -> anyhow::Result<MasterKey> {
    if let Some(text) = override_base64 {
        return MasterKey::from_base64(text).context("invalid DIALS_LKG_HMAC_KEY");
    }
    let path = data_dir.join("keys").join("lkg-hmac.key");
    let (text, created) = read_or_create(&path, || {
        let mut text = MasterKey::generate().to_base64();
        text.push('\n');
        text
    })?;
    let key = MasterKey::from_base64(&text)
        .with_context(|| format!("invalid key file {}", path.display()))?;
    if created {
        tracing::info!(key_id = key.id(), path = %path.display(), "created the root key of last-known-good files");
    }
    Ok(key)
}

/// The key that signs `service`'s last-known-good files: HMAC-SHA256 of the LKG root over
/// `"dials-lkg-v1/<service>"`. It survives token rotations; rotating the root changes it.
pub fn lkg_key_for(root: &MasterKey, service: &str) -> Zeroizing<[u8; 32]> {
    root.derive(&format!("dials-lkg-v1/{service}"))
}

/// What a master-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRotation {
    /// The key that was current before.
    pub old_key_id: String,
    /// The key that is current now.
    pub new_key_id: String,
    /// How many secret values were resealed.
    pub resealed: u64,
}

/// Replaces the master key in `keys/master.key` and reseals every secret with the new one, in
/// one transaction. While the transaction runs the file holds both keys, so an interruption
/// loses nothing: the next start finishes the job ([`finish_rotation`]). Run it with the server
/// stopped.
pub async fn rotate_master_key(
    data_dir: &Path,
    store: &dyn Store,
) -> anyhow::Result<MasterRotation> {
    let ring = master_keyring(data_dir, None)?;
    let old_key_id = ring.current().id().to_owned();
    let rotating = ring.rotated_to(MasterKey::generate());
    write_master_keyring(data_dir, &rotating)?;
    let resealed = reseal_all(store, &rotating).await?;
    write_master_keyring(data_dir, &rotating.current_only())?;
    Ok(MasterRotation {
        old_key_id,
        new_key_id: rotating.current().id().to_owned(),
        resealed,
    })
}

/// At start: refuses a ring that cannot open every stored secret, and reseals values still
/// sealed with an older key of the ring (a rotation that was interrupted, or one made by
/// putting a new key first in `DIALS_MASTER_KEY`). With the ring from `master.key`, the keys no
/// longer needed are then dropped from the file. Returns how many values were resealed.
pub async fn finish_rotation(
    data_dir: &Path,
    ring: &Keyring,
    from_file: bool,
    store: &dyn Store,
) -> anyhow::Result<u64> {
    let in_use = store.secret_key_ids().await?;
    let missing: Vec<String> = in_use
        .iter()
        .filter(|(id, _)| !ring.has(id))
        .map(|(id, n)| format!("{n} with key {id}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "secrets in the database are sealed with a master key that is not available ({}); \
             the master key ring holds {}: put the missing key back in keys/master.key (one per \
             line) or DIALS_MASTER_KEY (comma-separated)",
            missing.join(", "),
            ring.ids().join(", ")
        );
    }
    let stale = in_use.iter().any(|(id, _)| id != ring.current().id());
    let resealed = if stale {
        let n = reseal_all(store, ring).await?;
        tracing::info!(
            resealed = n,
            key_id = ring.current().id(),
            "resealed secrets with the current master key"
        );
        n
    } else {
        0
    };
    if from_file && ring.ids().len() > 1 {
        write_master_keyring(data_dir, &ring.current_only())?;
    }
    Ok(resealed)
}

/// Reseals every secret not sealed with `ring`'s current key, in one transaction.
async fn reseal_all(store: &dyn Store, ring: &Keyring) -> anyhow::Result<u64> {
    let current = ring.current().id().to_owned();
    let reseal = move |record: &SecretRecord| {
        if record.key_id == current {
            return Ok(None);
        }
        let sealed = sealed_value(record).map_err(|e| e.to_string())?;
        let new = ring.reseal(&aad_of(record), &sealed).map_err(|e| {
            format!(
                "cannot reseal the secret {} of {} (version {}): {e}",
                record.key, record.service, record.version
            )
        })?;
        Ok(Some(Resealed {
            key_id: new.key_id,
            nonce: new.nonce.to_vec(),
            ciphertext: new.ciphertext,
        }))
    };
    store
        .reseal_secrets(&reseal)
        .await
        .context("cannot reseal the secrets; nothing was changed")
}

/// Where a stored secret belongs, as its ciphertext binds it.
pub fn aad_of(record: &SecretRecord) -> Aad<'_> {
    Aad {
        service: record.service.as_str(),
        key: &record.key,
        version: record.version.0,
    }
}

/// A stored secret's sealed form.
pub fn sealed_value(record: &SecretRecord) -> anyhow::Result<SealedValue> {
    let nonce = record.nonce.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "the secret {} of {} has a nonce of {} bytes",
            record.key,
            record.service,
            record.nonce.len()
        )
    })?;
    Ok(SealedValue {
        key_id: record.key_id.clone(),
        nonce,
        ciphertext: record.ciphertext.clone(),
    })
}

/// The contents of a key file, created by `new` (0600, in a 0700 folder) when absent; and
/// whether it was created now.
fn read_or_create(
    path: &Path,
    new: impl FnOnce() -> Zeroizing<String>,
) -> anyhow::Result<(Zeroizing<String>, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((Zeroizing::new(text), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let text = new();
            write_private_file(path, text.as_bytes())?;
            Ok((text, true))
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

    #[test]
    fn every_key_file_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerKeys::load(dir.path(), &KeyOverrides::default()).unwrap();
        let again = ServerKeys::load(dir.path(), &KeyOverrides::default()).unwrap();
        assert_eq!(first.master.ids(), again.master.ids());
        assert_eq!(first.lkg_root.id(), again.lkg_root.id());
        assert_eq!(first.signer.key_id(), again.signer.key_id());
        #[cfg(unix)]
        for name in ["master.key", "lkg-hmac.key", "signing.key"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys").join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn overrides_win_write_no_files_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::from_bytes([1; 32]);
        let b = MasterKey::from_bytes([2; 32]);
        let overrides = KeyOverrides {
            signing: Some(STANDARD.encode([5u8; 32])),
            master: Some(format!("{},{}", &*a.to_base64(), &*b.to_base64())),
            lkg_hmac: Some(b.to_base64().to_string()),
        };
        let keys = ServerKeys::load(dir.path(), &overrides).unwrap();
        assert_eq!(keys.master.ids(), [a.id(), b.id()]);
        assert_eq!(keys.lkg_root.id(), b.id());
        assert!(!dir.path().join("keys").exists(), "no key file written");
        let bad = KeyOverrides {
            master: Some("short".into()),
            ..Default::default()
        };
        let err = ServerKeys::load(dir.path(), &bad).unwrap_err();
        assert!(format!("{err:#}").contains("DIALS_MASTER_KEY"), "{err:#}");
    }

    #[test]
    fn lkg_keys_differ_per_service_and_follow_the_root() {
        let root = MasterKey::from_bytes([3; 32]);
        assert_ne!(*lkg_key_for(&root, "tts"), *lkg_key_for(&root, "stt"));
        assert_eq!(
            *lkg_key_for(&root, "tts"),
            *lkg_key_for(&MasterKey::from_bytes([3; 32]), "tts")
        );
        assert_ne!(
            *lkg_key_for(&root, "tts"),
            *lkg_key_for(&MasterKey::from_bytes([4; 32]), "tts")
        );
    }
}
