//! Signing-key rotation statements: how a receiver that pinned one key learns the keys that
//! replaced it, without trusting the broker or anyone on it.
//!
//! ```text
//! {"format":1, "old_key_id", "new_key_id", "new_public_key", "issued_at", "signature"}
//! ```
//! - Made by the manager when its signing key is rotated, signed by the *old* key:
//!   `signature` is standard base64 of the Ed25519 signature over the JCS canonical form of
//!   the statement without its `signature` field.
//! - `new_key_id` must be the key id of `new_public_key` (first 16 hex digits of SHA-256 of
//!   its 32 raw bytes).
//!
//! The manager keeps every statement it ever made and publishes them together as a
//! [`RotationChain`] (retained on `config/keys`, and in `GET /api/v1/keys` as `rotations`).
//! A receiver walks the chain with [`extend_trust`]: a statement counts only if it is signed by
//! a key the receiver already trusts, so a key pinned at install time is enough for the life of
//! the fleet, and a statement that is unsigned, badly signed or signed by a stranger's key
//! introduces nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::envelope::{EnvelopeError, EnvelopeSigner, canonical, key_id, parse_public_key};

/// The only statement and chain format this code writes and accepts.
pub const FORMAT: u64 = 1;

/// Statements in one chain at most (a receiver reads no more than this).
pub const MAX_STATEMENTS: usize = 1024;

/// "The key `old_key_id` hands over to `new_public_key`", signed by the old key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationStatement {
    /// Always 1.
    pub format: u64,
    /// The key that signed this statement and is being replaced.
    pub old_key_id: String,
    /// The key id of `new_public_key`.
    pub new_key_id: String,
    /// The new key: standard base64 of its 32 raw bytes.
    pub new_public_key: String,
    /// When the rotation was made, RFC 3339 UTC.
    pub issued_at: String,
    /// Standard base64 Ed25519 signature by the old key.
    pub signature: String,
}

/// Every rotation statement the manager made, oldest first: what `config/keys` carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotationChain {
    /// Always 1.
    pub format: u64,
    /// The statements, oldest first.
    pub rotations: Vec<RotationStatement>,
}

/// Why a rotation statement does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// Not the statement's shape, or a format this code does not know.
    #[error("malformed rotation statement: {0}")]
    Malformed(String),
    /// Signed by a key the receiver does not trust.
    #[error("rotation statement signed by key {0}, which is not trusted")]
    UntrustedSigner(String),
    /// The signature does not verify under the old key.
    #[error("rotation statement signature does not verify")]
    BadSignature,
    /// `new_key_id` is not the key id of `new_public_key`.
    #[error("rotation statement names key {named} but carries key {carried}")]
    KeyIdMismatch {
        /// `new_key_id` as written.
        named: String,
        /// The key id of `new_public_key`.
        carried: String,
    },
}

impl From<EnvelopeError> for RotationError {
    fn from(e: EnvelopeError) -> Self {
        RotationError::Malformed(e.to_string())
    }
}

impl RotationStatement {
    /// The statement `old` makes, handing over to `new`.
    pub fn sign(
        old: &EnvelopeSigner,
        new: &VerifyingKey,
        issued_at: OffsetDateTime,
    ) -> Result<Self, RotationError> {
        let issued_at = issued_at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| RotationError::Malformed(e.to_string()))?;
        let mut statement = RotationStatement {
            format: FORMAT,
            old_key_id: old.key_id().to_owned(),
            new_key_id: key_id(new),
            new_public_key: STANDARD.encode(new.to_bytes()),
            issued_at,
            signature: String::new(),
        };
        let signature = old.sign_bytes(&statement.signed_bytes()?);
        statement.signature = STANDARD.encode(signature.to_bytes());
        Ok(statement)
    }

    /// The bytes the signature covers: the canonical form without `signature`.
    fn signed_bytes(&self) -> Result<Vec<u8>, RotationError> {
        let mut value =
            serde_json::to_value(self).map_err(|e| RotationError::Malformed(e.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.remove("signature");
        }
        Ok(canonical(&value)?)
    }

    /// Checks the statement against the keys trusted now; answers the new key it introduces.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<VerifyingKey, RotationError> {
        if self.format != FORMAT {
            return Err(RotationError::Malformed(format!(
                "unknown format {}",
                self.format
            )));
        }
        let signer = trusted
            .iter()
            .find(|k| key_id(k) == self.old_key_id)
            .ok_or_else(|| RotationError::UntrustedSigner(self.old_key_id.clone()))?;
        let raw = STANDARD
            .decode(self.signature.as_bytes())
            .map_err(|_| RotationError::BadSignature)?;
        let signature = Signature::from_slice(&raw).map_err(|_| RotationError::BadSignature)?;
        signer
            .verify_strict(&self.signed_bytes()?, &signature)
            .map_err(|_| RotationError::BadSignature)?;
        let new = parse_public_key(&self.new_public_key)?;
        let carried = key_id(&new);
        if carried != self.new_key_id {
            return Err(RotationError::KeyIdMismatch {
                named: self.new_key_id.clone(),
                carried,
            });
        }
        Ok(new)
    }
}

impl RotationChain {
    /// A chain of `rotations`, oldest first.
    pub fn new(rotations: Vec<RotationStatement>) -> Self {
        Self {
            format: FORMAT,
            rotations,
        }
    }

    /// Reads a chain as received (from `config/keys`, or `rotations` of `GET /api/v1/keys`).
    /// Statements are not checked here: [`extend_trust`] does.
    pub fn parse(bytes: &[u8]) -> Result<Self, RotationError> {
        let chain: RotationChain =
            serde_json::from_slice(bytes).map_err(|e| RotationError::Malformed(e.to_string()))?;
        if chain.format != FORMAT {
            return Err(RotationError::Malformed(format!(
                "unknown chain format {}",
                chain.format
            )));
        }
        if chain.rotations.len() > MAX_STATEMENTS {
            return Err(RotationError::Malformed(format!(
                "more than {MAX_STATEMENTS} statements"
            )));
        }
        Ok(chain)
    }

    /// The chain as bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Adds to `trusted` every key that a statement signed by an already trusted key introduces,
/// following the chain as far as it goes (in any order the statements come). Answers the key
/// ids newly trusted, in the order they were learnt. Statements that do not verify are skipped.
pub fn extend_trust(
    trusted: &mut Vec<VerifyingKey>,
    statements: &[RotationStatement],
) -> Vec<String> {
    let mut learnt = Vec::new();
    loop {
        let mut progressed = false;
        for statement in statements.iter().take(MAX_STATEMENTS) {
            if trusted.iter().any(|k| key_id(k) == statement.new_key_id) {
                continue;
            }
            if let Ok(new) = statement.verify(trusted) {
                learnt.push(key_id(&new));
                trusted.push(new);
                progressed = true;
            }
        }
        if !progressed {
            return learnt;
        }
    }
}

/// Reads the `rotations` of a `GET /api/v1/keys` answer, if it has any.
pub fn rotations_of(keys_response: &Value) -> Vec<RotationStatement> {
    keys_response
        .get("rotations")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(n: u8) -> EnvelopeSigner {
        EnvelopeSigner::from_seed(&[n; 32])
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_chain_from_the_pinned_key_carries_trust_through_two_rotations() {
        let (a, b, c) = (signer(1), signer(2), signer(3));
        let ab = RotationStatement::sign(&a, &b.verifying_key(), now()).unwrap();
        let bc = RotationStatement::sign(&b, &c.verifying_key(), now()).unwrap();
        let mut trusted = vec![a.verifying_key()];
        // Newest first on purpose: the walk does not depend on the order.
        let learnt = extend_trust(&mut trusted, &[bc, ab]);
        assert_eq!(learnt, [b.key_id(), c.key_id()]);
        assert_eq!(trusted.len(), 3);
    }

    #[test]
    fn a_statement_signed_by_a_stranger_or_unsigned_or_altered_introduces_nothing() {
        let (a, b, stranger, evil) = (signer(1), signer(2), signer(8), signer(9));
        let by_stranger = RotationStatement::sign(&stranger, &evil.verifying_key(), now()).unwrap();
        // A stranger's statement that claims to come from the pinned key.
        let mut forged = by_stranger.clone();
        forged.old_key_id = a.key_id().to_owned();
        let mut unsigned = RotationStatement::sign(&a, &b.verifying_key(), now()).unwrap();
        unsigned.signature = String::new();
        // A genuine statement whose new key was swapped for the attacker's.
        let mut swapped = RotationStatement::sign(&a, &b.verifying_key(), now()).unwrap();
        swapped.new_public_key = evil.public_key_base64();
        swapped.new_key_id = evil.key_id().to_owned();
        let mut trusted = vec![a.verifying_key()];
        let learnt = extend_trust(
            &mut trusted,
            &[
                by_stranger.clone(),
                forged.clone(),
                unsigned.clone(),
                swapped.clone(),
            ],
        );
        assert!(learnt.is_empty(), "{learnt:?}");
        assert_eq!(trusted.len(), 1);
        let pinned = [a.verifying_key()];
        assert_eq!(
            by_stranger.verify(&pinned),
            Err(RotationError::UntrustedSigner(stranger.key_id().to_owned()))
        );
        assert_eq!(forged.verify(&pinned), Err(RotationError::BadSignature));
        assert_eq!(unsigned.verify(&pinned), Err(RotationError::BadSignature));
        assert_eq!(swapped.verify(&pinned), Err(RotationError::BadSignature));
    }

    #[test]
    fn a_statement_whose_key_id_does_not_match_its_key_is_refused() {
        let (a, b) = (signer(1), signer(2));
        let mut s = RotationStatement::sign(&a, &b.verifying_key(), now()).unwrap();
        s.new_key_id = "0000000000000000".into();
        // Re-sign so that only the mismatch is wrong.
        s.signature = String::new();
        let signature = a.sign_bytes(&s.signed_bytes().unwrap());
        s.signature = STANDARD.encode(signature.to_bytes());
        assert!(matches!(
            s.verify(&[a.verifying_key()]),
            Err(RotationError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn a_chain_round_trips_through_its_bytes() {
        let (a, b) = (signer(1), signer(2));
        let chain = RotationChain::new(vec![
            RotationStatement::sign(&a, &b.verifying_key(), now()).unwrap(),
        ]);
        assert_eq!(RotationChain::parse(&chain.to_bytes()).unwrap(), chain);
        assert!(RotationChain::parse(b"{\"format\":2,\"rotations\":[]}").is_err());
        assert!(RotationChain::parse(b"null").is_err());
    }
}
