//! Values sealed with a passphrase instead of a master key, for files that leave the manager
//! (an export): Argon2id stretches the passphrase and a random salt into an AES-256-GCM key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

use crate::NONCE_LEN;

/// Argon2id memory cost in KiB (OWASP's first recommended setting: 19 MiB, 2 passes).
pub const M_COST: u32 = 19 * 1024;
/// Argon2id passes.
pub const T_COST: u32 = 2;
/// Argon2id lanes.
pub const P_COST: u32 = 1;

/// A value sealed with a passphrase, with everything needed to open it again but the
/// passphrase itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassphraseSealed {
    /// Argon2id memory cost in KiB.
    pub m_cost: u32,
    /// Argon2id passes.
    pub t_cost: u32,
    /// Argon2id lanes.
    pub p_cost: u32,
    /// The random salt.
    pub salt: [u8; 16],
    /// The random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// Why a passphrase-sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassphraseError {
    /// Wrong passphrase, or an altered file: the two cannot be told apart.
    #[error("the passphrase is wrong, or the encrypted secrets were altered")]
    Mismatch,
    /// The file's key-derivation parameters are not ones Argon2 accepts.
    #[error("invalid key derivation parameters: {0}")]
    Parameters(String),
}

fn derive(
    passphrase: &[u8],
    salt: &[u8],
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<Zeroizing<[u8; 32]>, PassphraseError> {
    // Bounds that keep a hostile file from making the import allocate gigabytes or run for
    // minutes: at most 64 MiB and 10 passes.
    if m_cost > 64 * 1024 || t_cost > 10 || p_cost > 16 {
        return Err(PassphraseError::Parameters(format!(
            "m_cost {m_cost} KiB, t_cost {t_cost}, p_cost {p_cost} exceed the limits"
        )));
    }
    let params = argon2::Params::new(m_cost, t_cost, p_cost, Some(32))
        .map_err(|e| PassphraseError::Parameters(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| PassphraseError::Parameters(e.to_string()))?;
    Ok(key)
}

/// Seals `plaintext` under `passphrase`, with a fresh salt and nonce.
pub fn seal(passphrase: &[u8], plaintext: &[u8]) -> PassphraseSealed {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let key = derive(passphrase, &salt, M_COST, T_COST, P_COST)
        .expect("the default Argon2id parameters are valid");
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), plaintext)
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    PassphraseSealed {
        m_cost: M_COST,
        t_cost: T_COST,
        p_cost: P_COST,
        salt,
        nonce,
        ciphertext,
    }
}

/// Opens a value [`seal`] sealed, given the same passphrase.
pub fn open(
    passphrase: &[u8],
    sealed: &PassphraseSealed,
) -> Result<Zeroizing<Vec<u8>>, PassphraseError> {
    let key = derive(
        passphrase,
        &sealed.salt,
        sealed.m_cost,
        sealed.t_cost,
        sealed.p_cost,
    )?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    cipher
        .decrypt(&Nonce::from(sealed.nonce), sealed.ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| PassphraseError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_passphrase_only() {
        let sealed = seal(b"correct horse", b"{\"api_key\":\"s3cret\"}");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            open(b"correct horse", &sealed).unwrap().as_slice(),
            b"{\"api_key\":\"s3cret\"}"
        );
        assert_eq!(
            open(b"wrong horse", &sealed),
            Err(PassphraseError::Mismatch)
        );
    }

    #[test]
    fn parameters_beyond_the_limits_are_refused_before_any_work() {
        let mut sealed = seal(b"p", b"x");
        sealed.m_cost = 4 * 1024 * 1024;
        assert!(matches!(
            open(b"p", &sealed),
            Err(PassphraseError::Parameters(_))
        ));
    }
}
