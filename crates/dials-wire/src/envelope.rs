//! The signed envelope (format 1) that carries a service's config over MQTT.
//!
//! ```text
//! {"format":1, "service", "version", "revision", "config", "checksum", "epoch",
//!  "issued_at", "key_id", "signature"}
//! ```
//! - `checksum`: lowercase hex SHA-256 of the RFC 8785 (JCS) canonical form of `config`.
//! - `key_id`: the first 16 hex digits of SHA-256 of the raw 32-byte public key.
//! - `signature`: standard base64 of the Ed25519 signature over the JCS canonical form of the
//!   envelope without its `signature` field.
//!
//! The manager signs with [`EnvelopeSigner`]; receivers check with [`Envelope::verify`], which
//! works on the received bytes so that nothing is lost or reordered before the check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jcs;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The only envelope format this code writes and accepts.
pub const FORMAT: u64 = 1;

/// A config update as published on `config/updated/{service}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always 1.
    pub format: u64,
    /// The service the config is for.
    pub service: String,
    /// The config's per-service version.
    pub version: u64,
    /// The global revision of the change.
    pub revision: u64,
    /// The whole document, every secret replaced by `{"$secret": <secret_version>}`.
    pub config: Value,
    /// Lowercase hex SHA-256 of the canonical form of `config`.
    pub checksum: String,
    /// The epoch of the database that issued it.
    pub epoch: Uuid,
    /// When it was signed, RFC 3339 UTC, kept as sent so the signature stays checkable.
    pub issued_at: String,
    /// Which key signed it.
    pub key_id: String,
    /// Standard base64 Ed25519 signature.
    pub signature: String,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the envelope's shape.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// A format this code does not know.
    #[error("unknown envelope format {0}")]
    UnknownFormat(u64),
    /// Signed by a key that is not pinned.
    #[error("envelope signed by key {0}, which is not trusted")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("envelope signature does not verify")]
    BadSignature,
    /// The config does not match its checksum.
    #[error("envelope checksum does not match its config")]
    BadChecksum,
}

impl Envelope {
    /// Parses received bytes and checks format, signature (under one of `trusted`) and
    /// checksum. Epoch, version and freshness are the receiver's to judge.
    pub fn verify(bytes: &[u8], trusted: &[VerifyingKey]) -> Result<Envelope, EnvelopeError> {
        let mut value: Value =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| EnvelopeError::Malformed("not a JSON object".into()))?;
        let signature = match object.remove("signature") {
            Some(Value::String(s)) => s,
            _ => return Err(EnvelopeError::Malformed("no signature".into())),
        };
        let format = object.get("format").and_then(Value::as_u64).unwrap_or(0);
        if format != FORMAT {
            return Err(EnvelopeError::UnknownFormat(format));
        }
        let key_id = object
            .get("key_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let key = trusted
            .iter()
            .find(|k| self::key_id(k) == key_id)
            .ok_or_else(|| EnvelopeError::UnknownKey(key_id.clone()))?;
        let raw = STANDARD
            .decode(signature.as_bytes())
            .map_err(|_| EnvelopeError::BadSignature)?;
        let signature = Signature::from_slice(&raw).map_err(|_| EnvelopeError::BadSignature)?;
        let signed = canonical(&value)?;
        key.verify_strict(&signed, &signature)
            .map_err(|_| EnvelopeError::BadSignature)?;

        if let Some(object) = value.as_object_mut() {
            object.insert(
                "signature".into(),
                Value::String(STANDARD.encode(signature.to_bytes())),
            );
        }
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if checksum(&envelope.config)? != envelope.checksum {
            return Err(EnvelopeError::BadChecksum);
        }
        Ok(envelope)
    }

    /// `issued_at` as an instant, if it parses.
    pub fn issued_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.issued_at, &Rfc3339).ok()
    }

    /// The envelope as bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Signs envelopes with the manager's Ed25519 key.
#[derive(Clone)]
pub struct EnvelopeSigner {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for EnvelopeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EnvelopeSigner {
    /// A signer from the 32-byte Ed25519 secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// The key id: first 16 hex digits of SHA-256 of the public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key receivers pin.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as standard base64 of its 32 raw bytes.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// Signs arbitrary bytes with this key (rotation statements use it).
    pub(crate) fn sign_bytes(&self, bytes: &[u8]) -> Signature {
        self.key.sign(bytes)
    }

    /// Builds and signs the envelope for one version of a service's (already redacted) config.
    pub fn sign(
        &self,
        service: &str,
        version: u64,
        revision: u64,
        config: Value,
        epoch: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<Envelope, EnvelopeError> {
        let Value::Object(members) = &config else {
            return Err(EnvelopeError::Malformed("a config is a JSON object".into()));
        };
        let signed = self.signed(service, version, revision, members, epoch, issued_at)?;
        Ok(Envelope {
            format: FORMAT,
            service: service.to_owned(),
            version,
            revision,
            config,
            checksum: signed.checksum,
            epoch,
            issued_at: signed.issued_at,
            key_id: self.key_id.clone(),
            signature: signed.signature,
        })
    }

    /// The bytes to publish of the envelope [`sign`](Self::sign) builds, without building it:
    /// the config is canonicalized once, for its checksum and inside the signed form, and the
    /// published bytes are that signed form with the signature added.
    pub fn sign_to_bytes(
        &self,
        service: &str,
        version: u64,
        revision: u64,
        config: &Map<String, Value>,
        epoch: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let signed = self.signed(service, version, revision, config, epoch, issued_at)?;
        let mut bytes = signed.unsigned;
        bytes.pop(); // the closing brace
        bytes.extend_from_slice(b",\"signature\":\"");
        bytes.extend_from_slice(signed.signature.as_bytes());
        bytes.extend_from_slice(b"\"}");
        Ok(bytes)
    }

    fn signed(
        &self,
        service: &str,
        version: u64,
        revision: u64,
        config: &Map<String, Value>,
        epoch: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<Signed, EnvelopeError> {
        let issued_at = issued_at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let config = jcs::object_to_vec(config);
        let checksum = hex::encode(Sha256::digest(&config));
        // The canonical form of the envelope without its signature, written member by member
        // in JCS order (every name is ASCII, so byte order is UTF-16 order).
        let mut unsigned = Vec::with_capacity(config.len() + 320);
        unsigned.extend_from_slice(b"{\"checksum\":");
        jcs::write_str(&mut unsigned, &checksum);
        unsigned.extend_from_slice(b",\"config\":");
        unsigned.extend_from_slice(&config);
        unsigned.extend_from_slice(b",\"epoch\":");
        jcs::write_str(&mut unsigned, &epoch.hyphenated().to_string());
        unsigned.extend_from_slice(b",\"format\":");
        jcs::write_u64(&mut unsigned, FORMAT);
        unsigned.extend_from_slice(b",\"issued_at\":");
        jcs::write_str(&mut unsigned, &issued_at);
        unsigned.extend_from_slice(b",\"key_id\":");
        jcs::write_str(&mut unsigned, &self.key_id);
        unsigned.extend_from_slice(b",\"revision\":");
        jcs::write_u64(&mut unsigned, revision);
        unsigned.extend_from_slice(b",\"service\":");
        jcs::write_str(&mut unsigned, service);
        unsigned.extend_from_slice(b",\"version\":");
        jcs::write_u64(&mut unsigned, version);
        unsigned.push(b'}');
        let signature = STANDARD.encode(self.key.sign(&unsigned).to_bytes());
        Ok(Signed {
            unsigned,
            checksum,
            issued_at,
            signature,
        })
    }
}

/// An envelope's signed parts.
struct Signed {
    /// The canonical form of the envelope without its signature: what is signed.
    unsigned: Vec<u8>,
    checksum: String,
    issued_at: String,
    signature: String,
}

/// The RFC 8785 (JCS) canonical form of a JSON value.
pub fn canonical(value: &Value) -> Result<Vec<u8>, EnvelopeError> {
    Ok(jcs::to_vec(value))
}

/// Lowercase hex SHA-256 of the canonical form of `config`.
pub fn checksum(config: &Value) -> Result<String, EnvelopeError> {
    Ok(hex::encode(Sha256::digest(canonical(config)?)))
}

/// The key id of a public key: first 16 hex digits of SHA-256 of its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.to_bytes())[..8])
}

/// Parses a public key given as standard base64 of its 32 raw bytes.
pub fn parse_public_key(base64: &str) -> Result<VerifyingKey, EnvelopeError> {
    let raw = STANDARD
        .decode(base64.trim())
        .map_err(|e| EnvelopeError::Malformed(format!("public key is not base64: {e}")))?;
    let bytes: [u8; 32] = raw
        .try_into()
        .map_err(|_| EnvelopeError::Malformed("a public key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn signer() -> EnvelopeSigner {
        EnvelopeSigner::from_seed(&[42; 32])
    }

    fn sample() -> Envelope {
        signer()
            .sign(
                "tts-worker",
                3,
                17,
                json!({"voice": "amy", "rate": 1.5, "api_key": {"$secret": 2}}),
                Uuid::nil(),
                datetime!(2026-11-22 10:00 UTC),
            )
            .unwrap()
    }

    #[test]
    fn envelopes_nested_as_deep_as_json_parsing_allows_are_handled_on_a_small_stack() {
        // serde_json refuses more than 128 levels when parsing; everything after it (JCS,
        // checksum, signature) must cope with what it accepts, on a 2 MiB worker stack.
        let checked = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                // 60 × (object + array), inside `deep` and the envelope: 122 levels.
                let mut config = json!(1);
                for _ in 0..60 {
                    config = json!({ "a": [config] });
                }
                let config = json!({ "deep": config });
                let env = signer()
                    .sign(
                        "svc",
                        1,
                        1,
                        config,
                        Uuid::nil(),
                        datetime!(2026-11-22 10:00 UTC),
                    )
                    .expect("signs");
                let verified = Envelope::verify(&env.to_bytes(), &[signer().verifying_key()]);
                let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
                let refused = Envelope::verify(too_deep.as_bytes(), &[signer().verifying_key()]);
                (verified.map(|v| v == env), refused.is_err())
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow");
        assert_eq!(checked, (Ok(true), true));
    }

    #[test]
    fn the_published_bytes_are_the_envelope_sign_builds() {
        let env = sample();
        let Value::Object(config) = &env.config else {
            unreachable!()
        };
        let bytes = signer()
            .sign_to_bytes(
                "tts-worker",
                3,
                17,
                config,
                Uuid::nil(),
                datetime!(2026-11-22 10:00 UTC),
            )
            .unwrap();
        let back = Envelope::verify(&bytes, &[signer().verifying_key()]).unwrap();
        assert_eq!(back, env);
        // What is signed is the JCS form of the envelope without its signature.
        let mut unsigned = serde_json::to_value(&env).unwrap();
        unsigned.as_object_mut().unwrap().remove("signature");
        let signed = canonical(&unsigned).unwrap();
        assert_eq!(&bytes[..signed.len() - 1], &signed[..signed.len() - 1]);
    }

    #[test]
    fn a_signed_envelope_verifies_under_its_key() {
        let env = sample();
        assert_eq!(env.issued_at, "2026-11-22T10:00:00Z");
        assert_eq!(env.key_id.len(), 16);
        let back = Envelope::verify(&env.to_bytes(), &[signer().verifying_key()]).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn the_checksum_is_sha256_of_the_canonical_config() {
        // JCS sorts keys and drops whitespace: {"a":1,"b":[true,null]}.
        let c = checksum(&json!({"b": [true, null], "a": 1})).unwrap();
        assert_eq!(
            c,
            hex::encode(Sha256::digest(br#"{"a":1,"b":[true,null]}"#))
        );
    }

    #[test]
    fn any_change_to_a_signed_field_breaks_the_signature() {
        let trusted = [signer().verifying_key()];
        let bytes = sample().to_bytes();
        for (field, value) in [
            ("version", json!(4)),
            ("revision", json!(18)),
            ("service", json!("router")),
            ("epoch", json!(Uuid::from_u128(1))),
            ("issued_at", json!("2030-01-01T00:00:00Z")),
        ] {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            v[field] = value;
            let err = Envelope::verify(&serde_json::to_vec(&v).unwrap(), &trusted).unwrap_err();
            assert_eq!(err, EnvelopeError::BadSignature, "{field}");
        }
    }

    #[test]
    fn a_config_changed_with_its_checksum_left_alone_is_refused() {
        let trusted = [signer().verifying_key()];
        let mut v: Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["config"]["rate"] = json!(9.0);
        let err = Envelope::verify(&serde_json::to_vec(&v).unwrap(), &trusted).unwrap_err();
        assert_eq!(err, EnvelopeError::BadSignature, "the config is signed too");
    }

    #[test]
    fn an_envelope_from_another_key_is_refused() {
        let other = EnvelopeSigner::from_seed(&[7; 32]);
        let err = Envelope::verify(&sample().to_bytes(), &[other.verifying_key()]).unwrap_err();
        assert!(matches!(err, EnvelopeError::UnknownKey(_)));
        // A forger who copies our key id still fails the signature.
        let mut forged = other
            .sign(
                "tts-worker",
                9,
                99,
                json!({}),
                Uuid::nil(),
                datetime!(2026-11-22 10:00 UTC),
            )
            .unwrap();
        forged.key_id = signer().key_id().to_owned();
        let err = Envelope::verify(&forged.to_bytes(), &[signer().verifying_key()]).unwrap_err();
        assert_eq!(err, EnvelopeError::BadSignature);
    }

    #[test]
    fn either_of_two_pinned_keys_is_accepted_during_a_rotation() {
        let new = EnvelopeSigner::from_seed(&[9; 32]);
        let env = new
            .sign(
                "x",
                1,
                1,
                json!({"a": 1}),
                Uuid::nil(),
                datetime!(2026-11-22 10:00 UTC),
            )
            .unwrap();
        let both = [signer().verifying_key(), new.verifying_key()];
        assert!(Envelope::verify(&env.to_bytes(), &both).is_ok());
    }

    #[test]
    fn garbage_and_other_formats_are_refused_without_panicking() {
        let trusted = [signer().verifying_key()];
        for bad in [&b"not json"[..], b"[]", b"{}", b"{\"signature\": 5}"] {
            assert!(Envelope::verify(bad, &trusted).is_err());
        }
        let mut v: Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        v["format"] = json!(2);
        let err = Envelope::verify(&serde_json::to_vec(&v).unwrap(), &trusted).unwrap_err();
        assert_eq!(err, EnvelopeError::UnknownFormat(2));
    }

    #[test]
    fn public_keys_round_trip_through_base64() {
        let s = signer();
        let parsed = parse_public_key(&s.public_key_base64()).unwrap();
        assert_eq!(parsed, s.verifying_key());
        assert!(parse_public_key("AAAA").is_err());
    }
}
