//! In-memory caches on the read path: the serialized current config of each service, and the
//! principals of tokens already checked.
//!
//! Invariant: every write goes through this process's [`crate::ops`], which replaces the
//! service's entry after its commit; an entry is only ever replaced by a newer one — a higher
//! version, or the same version read later (see [`ConfigCache`]) — so a slow reader cannot put
//! back an older document or the defaults of an older schema.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
///
/// Entries only move forward. Each carries the version it shows and a stamp from the cache's
/// clock: a writer that changes what a version reads as (a new schema brings new defaults)
/// advances the clock, and a reader takes the clock's reading *before* it reads the store. An
/// entry replaces another only if its (version, stamp) is not older, so a reader that read
/// before a change can never put back what the change replaced.
#[derive(Debug, Default)]
pub struct ConfigCache {
    entries: RwLock<HashMap<ServiceName, (u64, Arc<CachedConfig>)>>,
    clock: AtomicU64,
}

impl ConfigCache {
    /// The cached entry, if any.
    pub fn get(&self, service: &ServiceName) -> Option<Arc<CachedConfig>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .map(|(_, entry)| entry.clone())
    }

    /// The clock's reading, to take before reading the store for [`ConfigCache::put`].
    pub fn stamp(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    /// Stores `entry`, read from the store after `stamp` was taken, unless what is cached is
    /// newer; answers the entry in force afterwards.
    pub fn put(
        &self,
        service: &ServiceName,
        entry: Arc<CachedConfig>,
        stamp: u64,
    ) -> Arc<CachedConfig> {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match map.get(service) {
            Some((held, existing)) if (existing.version, *held) > (entry.version, stamp) => {
                existing.clone()
            }
            _ => {
                map.insert(service.clone(), (stamp, entry.clone()));
                entry
            }
        }
    }

    /// Forgets everything (the database was reopened and may hold other states).
    pub fn clear(&self) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.clock.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Stores `entry` for a change that keeps the version but changes what it reads as (a new
    /// schema changes the defaults a read shows): it advances the clock, so readers that began
    /// before cannot overwrite it. Never replaces a newer version.
    pub fn replace(&self, service: &ServiceName, entry: Arc<CachedConfig>) {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let stamp = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        match map.get(service) {
            Some((_, existing)) if existing.version > entry.version => {}
            _ => {
                map.insert(service.clone(), (stamp, entry));
            }
        }
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

    /// Forgets every token (the database was reopened).
    pub fn clear(&self) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Forgets a token (revoked).
    pub fn forget(&self, token_id: uuid::Uuid) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.token_id != token_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, body: &str) -> Arc<CachedConfig> {
        Arc::new(CachedConfig {
            version,
            etag: HeaderValue::from_static("\"0\""),
            body: Some(Bytes::from(body.to_owned())),
        })
    }

    fn body(cache: &ConfigCache, service: &ServiceName) -> String {
        String::from_utf8(cache.get(service).unwrap().body.clone().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn a_reader_that_began_before_a_schema_change_cannot_put_back_the_old_defaults() {
        let cache = ConfigCache::default();
        let s = ServiceName::parse("tts-worker").unwrap();
        let reader = cache.stamp();
        // Meanwhile a schema change rebuilds version 5 with its new defaults.
        cache.replace(&s, entry(5, "new defaults"));
        // The reader read version 5 with the old schema before that.
        let in_force = cache.put(&s, entry(5, "old defaults"), reader);
        assert_eq!(body(&cache, &s), "new defaults");
        assert_eq!(in_force.body.as_deref(), Some(&b"new defaults"[..]));
        // A reader that began after the change may store what it read.
        let later = cache.stamp();
        cache.put(&s, entry(5, "new defaults, read again"), later);
        assert_eq!(body(&cache, &s), "new defaults, read again");
    }

    #[test]
    fn versions_only_move_forward_whoever_writes() {
        let cache = ConfigCache::default();
        let s = ServiceName::parse("tts-worker").unwrap();
        cache.put(&s, entry(7, "seven"), cache.stamp());
        cache.put(&s, entry(6, "six"), cache.stamp() + 100);
        cache.replace(&s, entry(6, "six rebuilt"));
        assert_eq!(body(&cache, &s), "seven");
    }
}
