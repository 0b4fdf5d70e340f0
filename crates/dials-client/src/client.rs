//! The handle a service holds: [`Client`], with the current config as an `Arc` snapshot, a watch
//! channel and change callbacks.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{Builder, Error};

/// What an [`on_change`](Client::on_change) callback returns when it cannot take a new config.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type Callback<T> = Arc<dyn Fn(&T, &T) -> Result<(), CallbackError> + Send + Sync>;

/// Where the config in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The manager, over REST or as a verified MQTT update.
    Manager,
    /// The last-known-good file (the manager was away at start-up).
    Lkg,
    /// The schema defaults (neither the manager nor a valid LKG file; allowed by
    /// [`allow_defaults`](crate::Builder::allow_defaults)).
    Defaults,
}

/// Facts about the config in force, from [`Client::info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigInfo {
    /// The manager's version of the config in force (0 for schema defaults).
    pub version: u64,
    /// The epoch of the manager's database it came from, when known.
    pub epoch: Option<Uuid>,
    /// Where it came from.
    pub origin: Origin,
    /// The keys an environment variable overrides (JSON Pointers such as `/piper_voice`).
    pub overrides: Vec<String>,
}

/// State shared by the handles and the background task.
pub(crate) struct Shared<T> {
    pub config: watch::Sender<Arc<T>>,
    pub callbacks: Mutex<Vec<Callback<T>>>,
    pub info: Mutex<ConfigInfo>,
    pub service: dials_domain::ServiceName,
    pub instance: dials_domain::InstanceName,
    pub schema_hash: String,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<D>(m: &Mutex<D>) -> MutexGuard<'_, D> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) enum Command {
    Refresh(oneshot::Sender<Result<(), Error>>),
}

/// A running dials client for one service: typed, live config.
///
/// Cheap to clone; every clone is the same client. Dropping the last clone stops the
/// background task; [`shutdown`](Client::shutdown) stops it and waits.
///
/// `Debug` shows the service, instance and version, never config values.
///
/// ```no_run
/// use std::sync::Arc;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct TtsConfig {
///     #[serde(default)]
///     volume_percent: u32,
/// }
///
/// # async fn run() -> Result<(), dials_client::Error> {
/// let dials = dials_client::Client::<TtsConfig>::builder("tts-worker")
///     .server("http://127.0.0.1:8081")
///     .token(std::env::var("DIALS_TOKEN").unwrap_or_default())
///     .mqtt("mqtt://127.0.0.1:1883")
///     .public_key("c2lnbmluZyBrZXkgb2YgdGhlIG1hbmFnZXIgMzJi")
///     .lkg_path("/var/lib/tts/dials.lkg")
///     .start()
///     .await?;
/// let cfg: Arc<TtsConfig> = dials.get();
/// println!("volume {}", cfg.volume_percent);
/// dials.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Client<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    shared: Arc<Shared<T>>,
    stop: watch::Sender<bool>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<T> Clone for Client<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = lock(&self.inner.shared.info).clone();
        f.debug_struct("Client")
            .field("service", &self.inner.shared.service.as_str())
            .field("instance", &self.inner.shared.instance.as_str())
            .field("version", &info.version)
            .field("origin", &info.origin)
            .finish_non_exhaustive()
    }
}

impl<T> Client<T>
where
    T: DeserializeOwned + JsonSchema + Send + Sync + 'static,
{
    /// Starts configuring a client for `service` (a name like `tts-worker`).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// let builder = dials_client::Client::<Config>::builder("tts-worker");
    /// ```
    pub fn builder(service: impl Into<String>) -> Builder<T> {
        Builder::new(service.into())
    }

    pub(crate) fn from_parts(
        shared: Arc<Shared<T>>,
        stop: watch::Sender<bool>,
        commands: mpsc::UnboundedSender<Command>,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                stop,
                commands,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// The config in force: a cheap snapshot that stays valid while the service uses it, even
    /// if a newer config is applied meanwhile.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config { volume: u32 }
    /// # fn f(dials: dials_client::Client<Config>) {
    /// let volume = dials.get().volume;
    /// # }
    /// ```
    pub fn get(&self) -> Arc<T> {
        self.inner.shared.config.borrow().clone()
    }

    /// A watch channel that sees every config applied from now on (its current value is the
    /// config in force).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config { volume: u32 }
    /// # async fn f(dials: dials_client::Client<Config>) {
    /// let mut rx = dials.subscribe();
    /// while rx.changed().await.is_ok() {
    ///     let cfg = rx.borrow_and_update().clone();
    ///     println!("volume is now {}", cfg.volume);
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self) -> watch::Receiver<Arc<T>> {
        self.inner.shared.config.subscribe()
    }

    /// Calls `callback(old, new)` before each new config takes effect.
    ///
    /// Callbacks run in the order they were added, on the client's task, so keep them short.
    /// If one returns `Err` or panics, the new config does not take effect: the previous one
    /// stays in force (for [`get`](Self::get) and [`subscribe`](Self::subscribe) too), later
    /// callbacks are not called, and the version is reported `failed` with the reason. A
    /// failed version is not retried; the next version is offered again.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config { voice: String }
    /// # fn f(dials: dials_client::Client<Config>) {
    /// dials.on_change(|old, new| {
    ///     if new.voice.is_empty() {
    ///         return Err("an empty voice cannot speak".into());
    ///     }
    ///     println!("voice {} -> {}", old.voice, new.voice);
    ///     Ok(())
    /// });
    /// # }
    /// ```
    pub fn on_change<F>(&self, callback: F)
    where
        F: Fn(&T, &T) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        lock(&self.inner.shared.callbacks).push(Arc::new(callback));
    }

    /// Facts about the config in force: version, epoch, origin, overridden keys.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # fn f(dials: dials_client::Client<Config>) {
    /// let info = dials.info();
    /// println!("running version {} from {:?}", info.version, info.origin);
    /// # }
    /// ```
    pub fn info(&self) -> ConfigInfo {
        lock(&self.inner.shared.info).clone()
    }

    /// The service name.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # fn f(dials: dials_client::Client<Config>) {
    /// assert_eq!(dials.service(), "tts-worker");
    /// # }
    /// ```
    pub fn service(&self) -> &str {
        self.inner.shared.service.as_str()
    }

    /// The instance name this client reports under.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # fn f(dials: dials_client::Client<Config>) {
    /// println!("reporting as {}", dials.instance());
    /// # }
    /// ```
    pub fn instance(&self) -> &str {
        self.inner.shared.instance.as_str()
    }

    /// Hex SHA-256 of the schema derived from the config struct (keys sorted), as reported
    /// in `schema_hash` and as the manager computes it.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # fn f(dials: dials_client::Client<Config>) {
    /// assert_eq!(dials.schema_hash().len(), 64);
    /// # }
    /// ```
    pub fn schema_hash(&self) -> &str {
        &self.inner.shared.schema_hash
    }

    /// Re-reads the config over REST now and applies it if it is newer; returns once it is
    /// applied (or rejected, or found unchanged). The client does this by itself after every
    /// broker (re)connect and whenever an MQTT update cannot be applied directly.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # async fn f(dials: dials_client::Client<Config>) -> Result<(), dials_client::Error> {
    /// dials.refresh().await?;
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Refresh(tx))
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Stops the background task: disconnects from the broker and waits for the task to end.
    /// [`get`](Self::get) keeps answering with the last config afterwards.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # async fn f(dials: dials_client::Client<Config>) {
    /// dials.shutdown().await;
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
