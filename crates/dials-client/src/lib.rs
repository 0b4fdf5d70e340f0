//! Typed, live, signed configuration for a Rust service, from a dials config manager.
//!
//! Describe the config as a struct, start a [`Client`], and read it:
//!
//! ```no_run
//! # #[derive(serde::Deserialize, schemars::JsonSchema)] struct TtsConfig { volume_percent: u32 }
//! # async fn run(token: String, key: String) -> Result<(), dials_client::Error> {
//! let dials = dials_client::Client::<TtsConfig>::builder("tts-worker")
//!     .server("http://127.0.0.1:8081").token(token).mqtt("mqtt://127.0.0.1:1883")
//!     .public_key(key).lkg_path("/var/lib/tts/dials.lkg")
//!     .start().await?;
//! let volume = dials.get().volume_percent;
//! # Ok(()) }
//! ```
//!
//! # The config struct
//!
//! Any `serde::Deserialize + schemars::JsonSchema` struct. Its JSON Schema (draft 2020-12) is
//! derived with schemars and registered with the manager, which then validates every write
//! against it, shows titles and help in its UI, and fills defaults. Doc comments become
//! `description`s, `#[serde(default)]` gives defaults, `#[schemars(range(..), length(..),
//! regex(..))]` ranges and patterns, a Rust `enum` of unit variants an `enum` of strings. The
//! dials annotations go on fields with `#[schemars(extend(...))]`:
//!
//! ```
//! use dials_client::SecretString;
//!
//! /// TTS worker settings.
//! #[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
//! #[serde(default)]
//! struct TtsConfig {
//!     /// Stock Piper voice name.
//!     #[schemars(length(min = 1, max = 200))]
//!     #[schemars(extend("x-env" = "PIPER_VOICE", "x-complexity" = "simple",
//!                       "x-restart-required" = true))]
//!     piper_voice: String,
//!     /// Playback volume in percent.
//!     #[schemars(range(min = 0, max = 200), extend("x-env" = "VOLUME_PERCENT"))]
//!     volume_percent: u32,
//!     /// ElevenLabs API key: `x-secret` comes with the `Secret` type.
//!     #[serde(skip_serializing_if = "Option::is_none")]
//!     eleven_api_key: Option<SecretString>,
//! }
//!
//! impl Default for TtsConfig {
//!     fn default() -> Self {
//!         Self { piper_voice: "en_US-lessac-medium".into(), volume_percent: 100, eleven_api_key: None }
//!     }
//! }
//!
//! let schema = schemars::schema_for!(TtsConfig).to_value();
//! assert_eq!(schema["properties"]["piper_voice"]["x-env"], "PIPER_VOICE");
//! assert_eq!(schema["properties"]["volume_percent"]["default"], 100);
//! assert_eq!(schema["properties"]["eleven_api_key"]["x-secret"], true);
//! ```
//!
//! # What the client guarantees
//!
//! - **Start-up never waits on MQTT** and survives a manager outage: the config is read over
//!   REST (at most [`start_timeout`](Builder::start_timeout), 2 s by default), else from the
//!   last-known-good (LKG) file, else from the schema defaults if
//!   [`allow_defaults`](Builder::allow_defaults) — else [`start`](Builder::start) fails with
//!   [`Error::NoConfig`], saying what is missing.
//! - **Precedence per key**: an environment variable named by the key's `x-env` > the
//!   manager's document > the schema default. An environment value is read as JSON when it
//!   parses as the key's type, else as a string. Every value is validated against the schema
//!   and deserialized into the struct before the service sees it; a version that does not fit
//!   is reported `rejected` and the previous config stays.
//! - **Every MQTT update is checked**: Ed25519 signature under a trusted key — a pinned one, or
//!   one a chain of rotation statements leads to from a pinned one (each signed by the key it
//!   replaces, received on `config/keys` or read from `GET /api/v1/keys` when an update names an
//!   unknown key; an update no chain vouches for is reported `rejected`) — checksum, service name, the known epoch, a version newer than the one held.
//!   An update older than 5 minutes, from an unknown epoch, or naming a secret version the
//!   client does not hold is not applied from MQTT; the config is re-read over REST instead, as
//!   after every broker (re)connect. Secrets the client holds are filled into an update's
//!   `{"$secret": n}` placeholders.
//!   Refused updates are logged as warnings under the target `dials_client::security`. Order
//!   rests on epoch and version only, never on clocks.
//! - **Secrets** reach the service only over REST (read with the service's own token), never
//!   touch the LKG file, and print as
//!   `********` ([`Secret`]); `Debug` of the [`Client`] shows no config values.
//! - **Callbacks** ([`Client::on_change`]) can refuse a config: if one returns an error or
//!   panics, the previous config stays in force and the version is reported `failed`.
//! - **Status**: each version's outcome (`applied`, `rejected`, `failed`, with `error`,
//!   `schema_hash` and the overridden keys) is published retained on
//!   `config/applied/{service}/{instance}`; the manager shows it at
//!   `GET /api/v1/services/{service}/instances`. It is published again every minute while
//!   connected; `offline` is the client's last will and what it publishes when it stops.
//! - **Reconnects forever** with exponential backoff and jitter; [`Client::shutdown`] stops
//!   cleanly.
//!
//! # The LKG file
//!
//! Written atomically (temporary file in the same folder, fsync, rename) after every applied
//! version: service, version, epoch, and the manager's document *without* the values of
//! `x-secret` keys, signed with HMAC-SHA256. The key is [`lkg_key`](Builder::lkg_key) if set,
//! else derived from the token: **rotating the token invalidates the LKG file** until the next
//! version is applied. A file that was altered, signed with another key, or written for another
//! service is refused with an error in the log. Because secrets are not in the file, a secret
//! field should be an `Option<SecretString>` or have a default (or an `x-env` override) for the
//! service to start from it.
#![warn(missing_docs)]

mod builder;
mod client;
mod driver;
mod error;
mod layers;
mod lkg;
mod manager;
mod mqtt;
mod reads;
mod secret;

pub use builder::{Builder, DEFAULT_START_TIMEOUT};
pub use client::{CallbackError, Client, ConfigInfo, Origin};
pub use error::Error;
pub use secret::{MASK, Secret, SecretString};
