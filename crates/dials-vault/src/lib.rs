//! Secrets at rest: AES-256-GCM under a ring of master keys. Plain computation, no I/O; where
//! the keys live (files, environment) is the server's business.
//!
//! - A [`MasterKey`] is 32 random bytes with a public [key id](MasterKey::id): the first 16 hex
//!   digits of HMAC-SHA256(key, `"dials-master-key-id"`), so the id names the key without
//!   revealing anything about it.
//! - A [`Keyring`] holds the current key, which seals every new value, and older keys that
//!   still open values sealed before a rotation.
//! - Every value is sealed with a fresh random 96-bit nonce and with associated data naming
//!   where it belongs ([`Aad`]: service, key, secret version), so a ciphertext moved to another
//!   row, service or version fails to open instead of showing up in the wrong place.

#![warn(missing_docs)]

pub mod passphrase;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 12;

/// What can go wrong opening a value or reading a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The value was sealed with a key this ring does not hold.
    #[error("sealed with master key {0}, which is not available")]
    UnknownKey(String),
    /// The ciphertext, its nonce or its associated data do not match: the value was altered
    /// or belongs elsewhere.
    #[error("the sealed value does not open: it was altered or belongs to another key")]
    Corrupt,
    /// A key in text form is not standard base64 of 32 bytes.
    #[error("a master key must be standard base64 of 32 bytes: {0}")]
    BadKey(String),
    /// A key ring without any key.
    #[error("no master key given")]
    Empty,
}

/// One 256-bit key of the manager's own: a master key (AES-256, for secrets at rest), or the
/// root that per-service keys are [derived](MasterKey::derive) from.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// The key made of these bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&bytes[..])
            .expect("HMAC takes a key of any length");
        mac.update(b"dials-master-key-id");
        let digest = mac.finalize().into_bytes();
        Self {
            id: hex::encode(&digest[..8]),
            bytes,
        }
    }

    /// Reads a key written as standard base64 of its 32 bytes (surrounding blanks ignored).
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let raw = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| VaultError::BadKey("not standard base64".into()))?,
        );
        let bytes: [u8; KEY_LEN] = raw
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadKey(format!("{} bytes instead of {KEY_LEN}", raw.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard base64, as it is written to its file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.bytes[..]))
    }

    /// The key's public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key derived from this one for `label`: HMAC-SHA256(this key, label). Different labels
    /// give unrelated keys, and none of them reveals this one.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.bytes[..])
            .expect("HMAC takes a key of any length");
        mac.update(label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.bytes))
    }
}

/// Where a sealed value belongs; bound into its ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    /// The service.
    pub service: &'a str,
    /// The key's JSON Pointer.
    pub key: &'a str,
    /// The secret's version.
    pub version: u64,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Service names and versions cannot contain a newline, so the encoding is unambiguous
        // whatever the key holds.
        format!(
            "dials-secret-v1\n{}\n{}\n{}",
            self.service, self.version, self.key
        )
        .into_bytes()
    }
}

/// A value as it is stored: which key sealed it, the nonce, and ciphertext with its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The id of the master key that sealed it.
    pub key_id: String,
    /// The nonce used, unique per value.
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("key_id", &self.key_id)
            .field("bytes", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The current master key and the older ones still accepted for opening.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(MasterKey::id))
            .finish()
    }
}

impl Keyring {
    /// A ring whose first key is the current one; the others only open older values.
    /// Repeated keys are kept once.
    pub fn new(keys: Vec<MasterKey>) -> Result<Self, VaultError> {
        let mut unique: Vec<MasterKey> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.iter().any(|k| k.id == key.id) {
                unique.push(key);
            }
        }
        if unique.is_empty() {
            return Err(VaultError::Empty);
        }
        Ok(Self { keys: unique })
    }

    /// Reads keys written one per line (or separated by commas or blanks), current first, in
    /// standard base64. Lines starting with `#` are comments.
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let keys = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|t| !t.is_empty())
            .map(MasterKey::from_base64)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// The ring written one key per line, current first: the format [`parse`](Self::parse) reads.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for key in &self.keys {
            out.push_str(&key.to_base64());
            out.push('\n');
        }
        out
    }

    /// The key new values are sealed with.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The ids of every key, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(MasterKey::id).collect()
    }

    /// Whether the ring can open values sealed with `key_id`.
    pub fn has(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// A ring with `key` as the current key and this ring's keys after it: the ring during a
    /// rotation.
    pub fn rotated_to(&self, key: MasterKey) -> Self {
        let mut keys = vec![key];
        keys.extend(self.keys.iter().cloned());
        Self::new(keys).expect("a ring with a new key is not empty")
    }

    /// The ring holding only its current key: what remains once nothing is sealed with the
    /// older ones.
    pub fn current_only(&self) -> Self {
        Self {
            keys: vec![self.current().clone()],
        }
    }

    /// Seals `plaintext` for the place `aad` names, with the current key and a fresh nonce.
    pub fn seal(&self, aad: &Aad<'_>, plaintext: &[u8]) -> SealedValue {
        let key = self.current();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ciphertext = key
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad.bytes(),
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        SealedValue {
            key_id: key.id.clone(),
            nonce,
            ciphertext,
        }
    }

    /// Opens a value sealed for the place `aad` names, with whichever key of the ring sealed it.
    pub fn open(
        &self,
        aad: &Aad<'_>,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| VaultError::UnknownKey(sealed.key_id.clone()))?;
        key.cipher()
            .decrypt(
                &Nonce::from(sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad.bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Corrupt)
    }

    /// Opens a value with whichever key sealed it and seals it again with the current key: one
    /// step of a rotation.
    pub fn reseal(&self, aad: &Aad<'_>, sealed: &SealedValue) -> Result<SealedValue, VaultError> {
        let plaintext = self.open(aad, sealed)?;
        Ok(self.seal(aad, &plaintext))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: Aad<'static> = Aad {
        service: "llm-worker",
        key: "/openai_api_key",
        version: 3,
    };

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_hides_it() {
        let ring = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let sealed = ring.seal(&AAD, b"sk-live-1234567890");
        assert_eq!(sealed.key_id, ring.current().id());
        assert!(
            !sealed
                .ciphertext
                .windows(4)
                .any(|w| w == b"sk-l" || w == b"1234"),
            "the ciphertext shows nothing of the value"
        );
        assert_eq!(sealed.ciphertext.len(), 18 + 16, "ciphertext and tag");
        assert_eq!(
            &ring.open(&AAD, &sealed).unwrap()[..],
            b"sk-live-1234567890"
        );
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let ring = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let a = ring.seal(&AAD, b"same");
        let b = ring.seal(&AAD, b"same");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn a_value_moved_to_another_place_or_altered_does_not_open() {
        let ring = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let sealed = ring.seal(&AAD, b"sk-1");
        for other in [
            Aad {
                service: "tts-worker",
                ..AAD
            },
            Aad {
                key: "/other",
                ..AAD
            },
            Aad { version: 4, ..AAD },
        ] {
            assert_eq!(ring.open(&other, &sealed), Err(VaultError::Corrupt));
        }
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(ring.open(&AAD, &altered), Err(VaultError::Corrupt));
        let mut renonced = sealed;
        renonced.nonce[0] ^= 1;
        assert_eq!(ring.open(&AAD, &renonced), Err(VaultError::Corrupt));
    }

    #[test]
    fn an_unknown_key_is_named() {
        let a = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let b = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let sealed = a.seal(&AAD, b"x");
        assert_eq!(
            b.open(&AAD, &sealed),
            Err(VaultError::UnknownKey(a.current().id().to_owned()))
        );
    }

    #[test]
    fn a_rotated_ring_opens_old_values_and_reseals_them_with_the_new_key() {
        let old = Keyring::new(vec![MasterKey::generate()]).unwrap();
        let sealed = old.seal(&AAD, b"pw");
        let ring = old.rotated_to(MasterKey::generate());
        assert_eq!(ring.ids().len(), 2);
        assert_ne!(ring.current().id(), old.current().id());
        let resealed = ring.reseal(&AAD, &sealed).unwrap();
        assert_eq!(resealed.key_id, ring.current().id());
        let only_new = ring.current_only();
        assert_eq!(&only_new.open(&AAD, &resealed).unwrap()[..], b"pw");
        assert!(only_new.open(&AAD, &sealed).is_err(), "the old key is gone");
    }

    #[test]
    fn key_ids_are_stable_and_keys_round_trip_through_text() {
        let key = MasterKey::from_bytes([7; KEY_LEN]);
        assert_eq!(key.id().len(), 16);
        assert_eq!(MasterKey::from_bytes([7; KEY_LEN]).id(), key.id());
        assert_ne!(MasterKey::from_bytes([8; KEY_LEN]).id(), key.id());
        let ring = Keyring::new(vec![key.clone(), MasterKey::from_bytes([8; KEY_LEN])]).unwrap();
        let again = Keyring::parse(&format!("# master keys\n{}", &*ring.to_text())).unwrap();
        assert_eq!(again.ids(), ring.ids());
        let commas = Keyring::parse(&format!(
            "{}, {}",
            &*key.to_base64(),
            &*MasterKey::from_bytes([8; KEY_LEN]).to_base64()
        ))
        .unwrap();
        assert_eq!(commas.ids(), ring.ids());
        assert!(
            !format!("{key:?} {ring:?}").contains(&*key.to_base64()),
            "Debug shows ids only"
        );
    }

    #[test]
    fn derived_keys_differ_by_label_and_are_stable() {
        let root = MasterKey::from_bytes([1; KEY_LEN]);
        assert_eq!(
            *root.derive("a"),
            *MasterKey::from_bytes([1; KEY_LEN]).derive("a")
        );
        assert_ne!(*root.derive("a"), *root.derive("b"));
        assert_ne!(*root.derive("a"), [1; KEY_LEN]);
    }

    #[test]
    fn bad_key_text_is_refused_with_a_reason() {
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(VaultError::BadKey(_))
        ));
        assert!(matches!(
            MasterKey::from_base64("%%%"),
            Err(VaultError::BadKey(_))
        ));
        assert_eq!(
            Keyring::parse("# nothing\n").unwrap_err(),
            VaultError::Empty
        );
    }
}
