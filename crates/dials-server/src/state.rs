//! The state every handler shares.

use std::sync::Arc;
use std::time::Instant;

use dials_domain::Epoch;
use dials_store::Store;

use crate::ServerSettings;
use crate::cache::{ConfigCache, TokenCache};

/// Shared, cheaply cloned application state.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The database's epoch, read once at start.
    pub epoch: Epoch,
    /// Current configs, serialized.
    pub configs: ConfigCache,
    /// Checked tokens.
    pub tokens: TokenCache,
    /// When the process started.
    pub started: Instant,
    /// The settings it runs with.
    pub settings: ServerSettings,
}

impl AppState {
    /// State over an opened store.
    pub fn new(store: Arc<dyn Store>, settings: ServerSettings) -> Self {
        Self(Arc::new(Inner {
            epoch: store.epoch(),
            store,
            configs: ConfigCache::default(),
            tokens: TokenCache::default(),
            started: Instant::now(),
            settings,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
