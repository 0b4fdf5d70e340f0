//! Secrets between the store and the API: opening the values a stored document refers to,
//! sealing the new ones a write brings, and what everyone but the service itself is shown.
//!
//! The rules (what is kept, what is new, what is masked) are the domain's
//! ([`dials_domain::secret`]); the cipher is the vault's. This module only joins them to the
//! store and the master key ring.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use dials_domain::secret::{self, MissingSecret};
use dials_domain::{Document, KeyPath, ServiceName, Version};
use dials_schema::CompiledSchema;
use dials_store::SecretRecord;
use dials_vault::Aad;
use serde_json::Value;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{ApiError, AppState};

/// The keys a schema marks `x-secret` (none without a schema).
pub fn keys_of(schema: Option<&CompiledSchema>) -> Vec<KeyPath> {
    schema.map(CompiledSchema::secret_keys).unwrap_or_default()
}

/// The effective document for a stored one: every placeholder replaced by its value.
pub async fn unsealed(
    state: &AppState,
    service: &ServiceName,
    stored: &Document,
) -> Result<Document, ApiError> {
    let places = places_of(stored);
    if places.is_empty() {
        return Ok(stored.clone());
    }
    let mut values = HashMap::with_capacity(places.len());
    for record in state.store.secrets(service, &places).await? {
        let key = KeyPath::parse(&record.key).map_err(|e| internal(service, e))?;
        values.insert((key, record.version), open(state, &record)?);
    }
    secret::unseal(stored, &values).map_err(|e: MissingSecret| internal(service, e))
}

/// As [`unsealed`], borrowing `stored` when it holds no placeholder: most documents have no
/// secret, and a write need not copy the current document only to read it.
pub async fn unsealed_ref<'a>(
    state: &AppState,
    service: &ServiceName,
    stored: &'a Document,
) -> Result<Cow<'a, Document>, ApiError> {
    if !secret::has_placeholder(stored) {
        return Ok(Cow::Borrowed(stored));
    }
    unsealed(state, service, stored).await.map(Cow::Owned)
}

/// One stored value, opened.
pub fn open(state: &AppState, record: &SecretRecord) -> Result<Value, ApiError> {
    let sealed = crate::keys::sealed_value(record).map_err(ApiError::Internal)?;
    let plaintext = state
        .keys
        .master
        .open(&crate::keys::aad_of(record), &sealed)
        .map_err(|e| {
            internal(
                &record.service,
                format!("cannot open the secret {}: {e}", record.key),
            )
        })?;
    serde_json::from_slice(&plaintext).map_err(|e| internal(&record.service, e))
}

/// Seals the values a write made new, each under the version being written.
pub fn seal_new(
    state: &AppState,
    service: &ServiceName,
    version: Version,
    new: &[(KeyPath, Value)],
    actor: &str,
    at: OffsetDateTime,
) -> Result<Vec<SecretRecord>, ApiError> {
    new.iter()
        .map(|(key, value)| {
            let plaintext = Zeroizing::new(
                serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.into()))?,
            );
            let sealed = state.keys.master.seal(
                &Aad {
                    service: service.as_str(),
                    key: key.as_str(),
                    version: version.0,
                },
                &plaintext,
            );
            Ok(SecretRecord {
                service: service.clone(),
                key: key.to_string(),
                version,
                key_id: sealed.key_id,
                nonce: sealed.nonce.to_vec(),
                ciphertext: sealed.ciphertext,
                created_at: at,
                created_by: actor.to_owned(),
            })
        })
        .collect()
}

/// The (key, secret version) of each placeholder a stored document holds, as the store
/// finds sealed values by.
pub fn places_of(stored: &Document) -> Vec<(String, Version)> {
    secret::secret_refs(stored)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The version of each secret a stored document holds, by key.
pub fn versions_of(stored: &Document) -> BTreeMap<String, u64> {
    secret::secret_refs(stored)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.0))
        .collect()
}

/// A value of history or a diff as it may be shown.
pub fn shown(key: &KeyPath, value: Option<Value>, secret_keys: &[KeyPath]) -> Option<Value> {
    value.map(|v| secret::mask_value(key, &v, secret_keys))
}

/// The 422 for a caller's value that uses the reserved `"$secret"` member.
pub fn reserved(at: KeyPath) -> ApiError {
    ApiError::Unprocessable {
        detail: "`$secret` is reserved for the placeholders dials stores in place of secrets; \
                 send the value itself"
            .into(),
        errors: vec![dials_wire::FieldError {
            service: None,
            path: at.to_string(),
            message: "`$secret` is reserved".into(),
        }],
    }
}

fn internal(service: &ServiceName, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("secrets of {service}: {e}"))
}
