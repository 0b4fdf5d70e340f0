//! The state every handler shares.

use std::sync::Arc;
use std::time::Instant;

use dials_domain::Epoch;
use dials_mqtt::PublisherHandle;
use dials_store::{Database, Store};

use crate::ServerSettings;
use crate::cache::{ConfigCache, TokenCache};

/// Shared, cheaply cloned application state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The database (through [`crate::readonly::ModalStore`], so reads go on from the snapshot
    /// when it cannot be read).
    pub store: Arc<dyn Store>,
    /// The same store, for its mode: normal or read-only, and why.
    pub modal: Arc<crate::readonly::ModalStore>,
    /// Poked after each commit, so the snapshot is brought up to date off the request path.
    pub snapshot_due: tokio::sync::Notify,
    /// The database's epoch, read once at start.
    pub epoch: Epoch,
    /// Current configs, serialized.
    pub configs: ConfigCache,
    /// Checked tokens.
    pub tokens: TokenCache,
    /// Rate limiting of failed authentications, and token use.
    pub guard: crate::guard::AuthGuard,
    /// Compiled schemas and the search index.
    pub schemas: crate::schemas::SchemaCache,
    /// When the process started.
    pub started: Instant,
    /// The settings it runs with.
    pub settings: ServerSettings,
    /// The signing key (its public half is served at `/api/v1/keys`), the master key ring for
    /// secrets at rest, and the root of the last-known-good keys.
    pub keys: crate::keys::ServerKeys,
    /// The MQTT publisher, when MQTT is enabled.
    pub publisher: Option<PublisherHandle>,
    /// Every committed change, for watch streams in this process.
    pub events: crate::events::EventHub,
    /// Why the last write failed for want of the database (a full disk…), until one succeeds.
    pub write_failure: std::sync::Mutex<Option<String>>,
    /// Denied requests, aggregated before they reach the access log.
    pub denials: crate::denials::DenialLog,
    /// One writer at a time per service.
    pub write_locks: crate::ops::WriteLocks,
    /// This process among the replicas sharing its database: whether it publishes, how far it
    /// has followed the others.
    pub replica: crate::cluster::Replica,
    /// Turns true when the server starts stopping, so long-lived streams end.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// State over an opened store.
    pub fn new(
        store: Arc<dyn Store>,
        settings: ServerSettings,
        keys: crate::keys::ServerKeys,
        publisher: Option<PublisherHandle>,
    ) -> Self {
        let modal = Arc::new(crate::readonly::ModalStore::normal(store, None));
        Self::with_modal(
            modal,
            settings,
            keys,
            publisher,
            crate::cluster::Replica::single(),
        )
    }

    /// State over a store in whichever mode it is in.
    pub fn with_modal(
        modal: Arc<crate::readonly::ModalStore>,
        settings: ServerSettings,
        keys: crate::keys::ServerKeys,
        publisher: Option<PublisherHandle>,
        replica: crate::cluster::Replica,
    ) -> Self {
        Self(Arc::new(Inner {
            epoch: modal.epoch(),
            store: modal.clone(),
            modal,
            snapshot_due: Default::default(),
            configs: ConfigCache::default(),
            tokens: TokenCache::default(),
            schemas: Default::default(),
            guard: Default::default(),
            started: Instant::now(),
            settings,
            keys,
            publisher,
            events: Default::default(),
            write_failure: Default::default(),
            denials: Default::default(),
            write_locks: Default::default(),
            replica,
            stopping: tokio::sync::watch::Sender::new(false),
        }))
    }
}

impl AppState {
    /// Records why the last write could not reach the database, or that one did (`None`), for
    /// `/api/v1/status`.
    pub fn write_failure(&self, why: Option<String>) {
        let mut failure = self
            .write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failure.as_deref() != why.as_deref() {
            match &why {
                Some(reason) => tracing::warn!(reason, "writes are failing"),
                None => tracing::info!("writes reach the database again"),
            }
            *failure = why;
        }
    }

    /// Checks a token secret as every request does: hash, in-memory lookup (the store on a
    /// miss), constant-time compare, expiry.
    pub async fn authenticate(&self, secret: &str) -> Result<crate::Principal, crate::ApiError> {
        crate::auth::authenticate(self, secret).await
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
