//! The last-known-good (LKG) file's format, shared by every client implementation. The client
//! library writes and reads the file (atomically, on disk); this module only turns contents
//! into signed bytes and back.
//!
//! ```text
//! {"format":1, "service", "version", "epoch", "schema_hash", "written_at", "config", "mac"}
//! ```
//! `config` is the manager's document without the values of `x-secret` keys; `epoch` is a UUID
//! or `null`; `written_at` is RFC 3339 UTC; `mac` is lowercase hex HMAC-SHA256 over the RFC 8785
//! canonical form of the object without `mac`. Unknown fields make the file invalid.
//!
//! A client whose config is made of more layers than the service's document adds `layers`:
//! `{"global": {"version", "config"}?, "instance": {"version", "config"}?}`, the `global`
//! document and the instance's override document it merged (secret values left out), under
//! the same MAC. A file without `layers` (every file written before layers existed) reads as
//! it always did.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The only LKG format this code writes and reads.
pub const FORMAT: u64 = 1;

/// What an LKG file holds, `mac` aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LkgContents {
    /// Always [`FORMAT`].
    pub format: u64,
    /// The service the file was written for.
    pub service: String,
    /// The version of the config.
    pub version: u64,
    /// The manager's epoch, if known.
    pub epoch: Option<Uuid>,
    /// A hash of the schema the config was applied under.
    pub schema_hash: String,
    /// When the file was written, RFC 3339 UTC.
    pub written_at: String,
    /// The manager's document, without secret values.
    pub config: Value,
    /// The other layers merged with `config`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<LkgLayers>,
}

/// The layers besides the service's document that an LKG file keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LkgLayers {
    /// The `global` document (only read for the keys the schema takes from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<LkgLayer>,
    /// The instance's override document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<LkgLayer>,
}

/// One layer's document and version in an LKG file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LkgLayer {
    /// The document's version.
    pub version: u64,
    /// The document, without secret values.
    pub config: Value,
}

/// The file as stored: the contents and their MAC. (Not `#[serde(flatten)]`: it does not mix
/// with `deny_unknown_fields`.)
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    format: u64,
    service: String,
    version: u64,
    epoch: Option<Uuid>,
    schema_hash: String,
    written_at: String,
    config: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layers: Option<LkgLayers>,
    #[serde(default)]
    mac: String,
}

/// Why LKG bytes were refused. [`LkgError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LkgError {
    /// Not JSON, or not the file's shape.
    #[error("it is not an LKG file ({0})")]
    Malformed(String),
    /// A format this code does not know.
    #[error("unknown format {0}")]
    UnknownFormat(u64),
    /// `mac` is not hex.
    #[error("its MAC is not hex")]
    MacNotHex,
    /// The MAC does not verify under the key.
    #[error("its HMAC does not match: the file was altered, or written with another key or token")]
    BadMac,
    /// Signed correctly, but for another service.
    #[error("it was written for service {found:?}, not {expected:?}")]
    WrongService {
        /// The service the file names.
        found: String,
        /// The service that read it.
        expected: String,
    },
}

impl LkgError {
    /// A short stable name for the reason, as the test vectors give it.
    pub fn code(&self) -> &'static str {
        match self {
            LkgError::Malformed(_) => "malformed",
            LkgError::UnknownFormat(_) => "unknown_format",
            LkgError::MacNotHex => "mac_not_hex",
            LkgError::BadMac => "bad_mac",
            LkgError::WrongService { .. } => "wrong_service",
        }
    }
}

/// The LKG key derived from a service's token: HMAC-SHA256(key = token, `"dials-lkg-v1"`).
pub fn key_from_token(token: &str) -> Vec<u8> {
    let mut mac = hmac(token.as_bytes());
    mac.update(b"dials-lkg-v1");
    mac.finalize().into_bytes().to_vec()
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail; an empty MAC would never verify.
    <HmacSha256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

fn mac_of(key: &[u8], contents: &LkgContents) -> Result<HmacSha256, LkgError> {
    let value = serde_json::to_value(contents).map_err(|e| LkgError::Malformed(e.to_string()))?;
    let canonical =
        crate::envelope::canonical(&value).map_err(|e| LkgError::Malformed(e.to_string()))?;
    let mut mac = hmac(key);
    mac.update(&canonical);
    Ok(mac)
}

impl LkgContents {
    /// The file's bytes: the contents with their `mac` under `key`, and a final newline.
    pub fn seal(&self, key: &[u8]) -> Result<Vec<u8>, LkgError> {
        let mac = hex::encode(mac_of(key, self)?.finalize().into_bytes());
        let c = self.clone();
        let signed = Signed {
            format: c.format,
            service: c.service,
            version: c.version,
            epoch: c.epoch,
            schema_hash: c.schema_hash,
            written_at: c.written_at,
            config: c.config,
            layers: c.layers,
            mac,
        };
        let mut bytes =
            serde_json::to_vec(&signed).map_err(|e| LkgError::Malformed(e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Reads and checks a file's bytes: shape, format, MAC under `key`, then that it was
    /// written for `service`.
    pub fn open(bytes: &[u8], key: &[u8], service: &str) -> Result<Self, LkgError> {
        let signed: Signed =
            serde_json::from_slice(bytes).map_err(|e| LkgError::Malformed(e.to_string()))?;
        let contents = LkgContents {
            format: signed.format,
            service: signed.service,
            version: signed.version,
            epoch: signed.epoch,
            schema_hash: signed.schema_hash,
            written_at: signed.written_at,
            config: signed.config,
            layers: signed.layers,
        };
        if contents.format != FORMAT {
            return Err(LkgError::UnknownFormat(contents.format));
        }
        let claimed = hex::decode(&signed.mac).map_err(|_| LkgError::MacNotHex)?;
        mac_of(key, &contents)?
            .verify_slice(&claimed)
            .map_err(|_| LkgError::BadMac)?;
        if contents.service != service {
            return Err(LkgError::WrongService {
                found: contents.service,
                expected: service.to_owned(),
            });
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> LkgContents {
        LkgContents {
            format: FORMAT,
            service: "svc".into(),
            version: 3,
            epoch: Some(Uuid::nil()),
            schema_hash: "h".into(),
            written_at: "2026-11-22T10:00:00Z".into(),
            config: json!({"a": 1}),
            layers: None,
        }
    }

    #[test]
    fn layers_are_kept_under_the_mac() {
        let mut contents = sample();
        contents.layers = Some(LkgLayers {
            global: Some(LkgLayer {
                version: 4,
                config: json!({"log": {"level": "debug"}}),
            }),
            instance: Some(LkgLayer {
                version: 2,
                config: json!({"gain": 3}),
            }),
        });
        let text = String::from_utf8(contents.seal(b"k").unwrap()).unwrap();
        assert_eq!(
            LkgContents::open(text.as_bytes(), b"k", "svc").unwrap(),
            contents
        );
        let altered = text.replace("\"gain\":3", "\"gain\":4");
        assert_eq!(
            LkgContents::open(altered.as_bytes(), b"k", "svc")
                .unwrap_err()
                .code(),
            "bad_mac"
        );
    }

    #[test]
    fn sealed_contents_open_under_the_same_key_and_service() {
        let bytes = sample().seal(b"k").unwrap();
        assert!(bytes.ends_with(b"}\n"));
        assert_eq!(LkgContents::open(&bytes, b"k", "svc").unwrap(), sample());
    }

    #[test]
    fn altered_foreign_or_misplaced_files_are_refused() {
        let text = String::from_utf8(sample().seal(b"k").unwrap()).unwrap();
        let altered = text.replace("\"a\":1", "\"a\":2");
        let code = |bytes: &str, key: &[u8], service: &str| {
            LkgContents::open(bytes.as_bytes(), key, service)
                .unwrap_err()
                .code()
        };
        assert_eq!(code(&altered, b"k", "svc"), "bad_mac");
        assert_eq!(code(&text, b"other", "svc"), "bad_mac");
        assert_eq!(code(&text, b"k", "other-svc"), "wrong_service");
        assert_eq!(code("garbage", b"k", "svc"), "malformed");
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert_eq!(code(&extra, b"k", "svc"), "malformed");
    }

    #[test]
    fn the_token_derived_key_depends_on_the_token() {
        assert_eq!(key_from_token("a"), key_from_token("a"));
        assert_ne!(key_from_token("a"), key_from_token("b"));
        assert_eq!(key_from_token("a").len(), 32);
    }
}
