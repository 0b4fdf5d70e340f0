//! The dials config manager: the REST API over a [`dials_store::Store`].
//!
//! [`Application::build`] is the one startup seam: it opens the store, does first-start work
//! (data dir, epoch, admin token), binds the listener (port 0 allowed) and reports the address.
//! [`router`] builds the whole HTTP surface from an [`AppState`] without a socket, for tests.

mod auth;
pub mod backup;
mod cache;
pub mod cluster;
pub mod data_dir;
pub mod denials;
mod error;
pub mod events;
mod extract;
mod guard;
mod homeassistant;
pub mod keys;
mod metrics;
mod openapi;
mod ops;
pub mod readonly;
mod routes;
mod schemas;
mod secrets;
pub mod serve;
mod settings;
pub mod snapshot;
mod startup;
mod state;
mod ui;

pub use auth::{Principal, Role, hash_token, new_token_secret};
pub use data_dir::DataDirLock;
pub use error::ApiError;
pub use routes::router;
pub use settings::{DEFAULT_INSTANCE_TIMEOUT, ServerSettings, TlsFiles};
pub use startup::{Application, open_store};
pub use state::AppState;
