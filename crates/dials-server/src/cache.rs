//! In-memory caches on the read path: the serialized current config of each service, and the
//! principals of tokens already checked.
//!
//! Invariant: every write goes through this process's [`crate::ops`], which replaces the
//! service's entry after its commit; an entry is only ever replaced by one of a higher version
//! (a slow reader cannot put back an older document).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use bytes::Bytes;
use dials_domain::ServiceName;

use crate::Principal;

/// One service's current config, ready to send.
#[derive(Debug)]
pub struct CachedConfig {
    /// The version, for ordering and conditional requests.
    pub version: u64,
    /// `"<version>"`.
    pub etag: HeaderValue,
    /// The serialized `ConfigResponse`, or `None` once the service was deleted (kept so that a
    /// slow reader cannot bring the deleted document back).
    pub body: Option<Bytes>,
}

/// Current configs by service.
#[derive(Debug, Default)]
pub struct ConfigCache {
    entries: RwLock<HashMap<ServiceName, Arc<CachedConfig>>>,
}

impl ConfigCache {
    /// The cached entry, if any.
    pub fn get(&self, service: &ServiceName) -> Option<Arc<CachedConfig>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .cloned()
    }

    /// Stores `entry` unless a newer version is already there.
    pub fn put(&self, service: &ServiceName, entry: Arc<CachedConfig>) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match map.get(service) {
            Some(existing) if existing.version > entry.version => {}
            _ => {
                map.insert(service.clone(), entry);
            }
        }
    }
}

impl ConfigCache {
    /// Stores `entry` whatever is there: for a change that keeps the version (a new schema
    /// changes the defaults a read shows).
    pub fn replace(&self, service: &ServiceName, entry: Arc<CachedConfig>) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.clone(), entry);
    }
}

/// Principals of tokens already checked, by token hash.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: RwLock<HashMap<[u8; 32], Principal>>,
}

impl TokenCache {
    /// The principal for this hash, if checked before.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Principal> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    /// Remembers a checked token.
    pub fn insert(&self, hash: [u8; 32], principal: Principal) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, principal);
    }

    /// Forgets a token (revoked).
    pub fn forget(&self, token_id: uuid::Uuid) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.token_id != token_id);
    }
}
