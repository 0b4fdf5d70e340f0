//! The one error type of the crate: what went wrong at start-up, or on an explicit refresh.

/// Why the client could not start, or a [`refresh`](crate::Client::refresh) failed.
///
/// Once started, nothing the manager, the broker or the network does makes the client fail:
/// bad updates are logged and reported, outages are retried. So this error is met at start-up
/// (a bad setting, or no config at all) and from explicit calls.
///
/// ```no_run
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
/// # async fn run() {
/// match dials_client::Client::<Config>::builder("tts-worker").start().await {
///     Ok(dials) => { /* run */ }
///     Err(dials_client::Error::NoConfig { .. }) => eprintln!("no manager and no LKG file"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or unusable; `setting` names the builder method
    /// (`service` for the name given to [`builder`](crate::Client::builder)).
    #[error("dials client setting `{setting}`: {reason}")]
    Setting {
        /// The builder method whose value is wrong (`server`, `token`, `public_key`, …).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The config struct's derived JSON Schema is not one dials can use (an author error:
    /// e.g. a default that breaks its own range).
    #[error("the JSON Schema derived from the config struct is not usable: {0}")]
    Schema(String),
    /// There is no config to start from: the manager did not answer with one, there is no
    /// valid last-known-good file, and starting from schema defaults was not allowed.
    #[error(
        "no config for service {service}: {manager}; {lkg}; and starting from the schema \
         defaults is not allowed (call .allow_defaults(true) to allow it)"
    )]
    NoConfig {
        /// The service.
        service: String,
        /// Why the manager gave no usable config.
        manager: String,
        /// Why the last-known-good file gave none.
        lkg: String,
    },
    /// The manager did not answer with a usable config (from [`refresh`](crate::Client::refresh)).
    #[error("manager: {0}")]
    Manager(String),
    /// The client has been shut down.
    #[error("the dials client is shut down")]
    Shutdown,
}
