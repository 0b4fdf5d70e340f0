//! [`Builder`]: the client's settings, and start-up (manager, else LKG file, else defaults).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::client::{ConfigInfo, Origin, Shared};
use crate::driver::{Driver, LayerState, Mqtt, Report};
use crate::layers::{EnvLookup, ServiceSchema};
use crate::lkg::{self, LkgFile};
use crate::manager::Manager;
use crate::mqtt::Topics;
use crate::{Client, Error};
use dials_wire::mqtt::AppliedStatus;

/// How long start-up waits for the manager by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of a [`Client`], then [`start`](Builder::start).
///
/// Required: [`server`](Self::server) and [`token`](Self::token); with
/// [`mqtt`](Self::mqtt), also [`public_key`](Self::public_key). Strongly advised:
/// [`lkg_path`](Self::lkg_path), so the service can start while the manager is away.
///
/// ```no_run
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
/// # async fn run() -> Result<(), dials_client::Error> {
/// let dials = dials_client::Client::<Config>::builder("tts-worker")
///     .server("http://127.0.0.1:8081")
///     .token("…service token…")
///     .mqtt("mqtt://127.0.0.1:1883")
///     .public_key("…base64 from GET /api/v1/keys…")
///     .lkg_path("/var/lib/tts/dials.lkg")
///     .instance("pi-kitchen")
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Builder<T> {
    service: String,
    server: Option<String>,
    token: Option<String>,
    mqtt: Option<String>,
    mqtt_prefix: String,
    mqtt_ca: Option<Vec<u8>>,
    public_keys: Vec<String>,
    lkg_path: Option<PathBuf>,
    lkg_key: Option<Vec<u8>>,
    instance: Option<String>,
    allow_defaults: bool,
    register_schema: bool,
    start_timeout: Duration,
    request_timeout: Duration,
    poll_interval: Option<Duration>,
    env: EnvLookup,
    _config: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("service", &self.service)
            .field("server", &self.server)
            .field("mqtt", &self.mqtt.as_ref().map(|_| "…"))
            .field("lkg_path", &self.lkg_path)
            .field("instance", &self.instance)
            .field("allow_defaults", &self.allow_defaults)
            .finish_non_exhaustive()
    }
}

impl<T> Builder<T>
where
    T: DeserializeOwned + JsonSchema + Send + Sync + 'static,
{
    pub(crate) fn new(service: String) -> Self {
        Self {
            service,
            server: None,
            token: None,
            mqtt: None,
            mqtt_prefix: String::new(),
            mqtt_ca: None,
            public_keys: Vec::new(),
            lkg_path: None,
            lkg_key: None,
            instance: None,
            allow_defaults: false,
            register_schema: true,
            start_timeout: DEFAULT_START_TIMEOUT,
            request_timeout: Duration::from_secs(10),
            poll_interval: None,
            env: Arc::new(|name| std::env::var(name).ok()),
            _config: PhantomData,
        }
    }

    /// The manager's base URL, e.g. `http://127.0.0.1:8081`.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.server("http://127.0.0.1:8081");
    /// ```
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.server = Some(url.into());
        self
    }

    /// The token sent as `Authorization: Bearer` (a `service` token scoped to this service,
    /// which also receives its secrets). Unless [`lkg_key`](Self::lkg_key) is set, the LKG
    /// file's HMAC key is derived from it: rotating the token invalidates the LKG file (it is
    /// refused until the next config is applied and written anew).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.token(std::env::var("DIALS_TOKEN").unwrap_or_default());
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().trim().to_owned());
        self
    }

    /// The MQTT broker: `mqtt://[user:pass@]host[:port]` (or `tcp://`), or `mqtts://…` (or
    /// `ssl://`) for TLS with the system's roots or [`mqtt_ca_pem`](Self::mqtt_ca_pem). User
    /// name and password are percent-decoded. Without it the client reads over REST only (at
    /// start, on [`refresh`](Client::refresh), and every [`poll_interval`](Self::poll_interval)).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.mqtt("mqtt://127.0.0.1:1883");
    /// ```
    pub fn mqtt(mut self, url: impl Into<String>) -> Self {
        self.mqtt = Some(url.into());
        self
    }

    /// The prefix of every MQTT topic, exactly as the manager's `--mqtt-prefix` (e.g. `home/`).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.mqtt_prefix("home/");
    /// ```
    pub fn mqtt_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.mqtt_prefix = prefix.into();
        self
    }

    /// A CA certificate (PEM) to trust for `mqtts://` instead of the system's roots.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.mqtt_ca_pem(std::fs::read("/etc/dials/ca.pem").unwrap());
    /// ```
    pub fn mqtt_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.mqtt_ca = Some(pem.into());
        self
    }

    /// Pins the manager's Ed25519 public key (standard base64 of 32 bytes, from
    /// `GET /api/v1/keys` or `dials keys show`). One pinned key is enough: the client follows
    /// the manager's signing-key rotations through statements signed by the key each replaces.
    /// Call it more than once to trust several keys. MQTT updates signed by a key no trusted
    /// chain leads to are reported `rejected`.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.public_key("…current key…").public_key("…next key…");
    /// ```
    pub fn public_key(mut self, base64: impl Into<String>) -> Self {
        self.public_keys.push(base64.into());
        self
    }

    /// Where the last-known-good file lives (e.g. `/var/lib/tts/dials.lkg`). It is written
    /// after every applied version, and read at start-up when the manager does not answer.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.lkg_path("/var/lib/tts/dials.lkg");
    /// ```
    pub fn lkg_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.lkg_path = Some(path.into());
        self
    }

    /// The HMAC key that signs the LKG file. By default it is derived from the token
    /// (HMAC-SHA256 keyed by the token over `"dials-lkg-v1"`); set one to keep the file valid
    /// across token rotations.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.lkg_key(std::fs::read("/etc/tts/lkg.key").unwrap());
    /// ```
    pub fn lkg_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.lkg_key = Some(key.into());
        self
    }

    /// The name this instance reports under (`config/applied/{service}/{instance}`); by
    /// default the host name. 1 to 128 bytes, none of `/ + #`, no control characters (see
    /// [`dials_domain::InstanceName`]).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.instance("pi-kitchen");
    /// ```
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// Whether the service may start from its schema defaults when neither the manager nor a
    /// valid LKG file gives a config (default: no, start-up fails and says why).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.allow_defaults(true);
    /// ```
    pub fn allow_defaults(mut self, allow: bool) -> Self {
        self.allow_defaults = allow;
        self
    }

    /// Whether to register the derived schema with the manager at start-up (default: yes).
    /// A registration the manager refuses is logged, never fatal.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.register_schema(false);
    /// ```
    pub fn register_schema(mut self, register: bool) -> Self {
        self.register_schema = register;
        self
    }

    /// How long start-up waits for the manager before falling back to the LKG file
    /// (default 2 s).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.start_timeout(std::time::Duration::from_millis(500));
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long a background REST read may take (default 10 s).
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.request_timeout(std::time::Duration::from_secs(5));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Re-read the config over REST this often, besides MQTT. Off by default when
    /// [`mqtt`](Self::mqtt) is set, every 30 s when it is not.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.poll_interval(std::time::Duration::from_secs(60));
    /// ```
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = Some(every);
        self
    }

    /// Where `x-env` variables are looked up; the process environment by default. For tests,
    /// and for services that keep their overrides elsewhere.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.env_lookup(|name| std::env::var(format!("MYAPP_{name}")).ok());
    /// ```
    pub fn env_lookup<F>(mut self, lookup: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.env = Arc::new(lookup);
        self
    }

    /// `x-env` variables from a fixed map instead of the process environment.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # let b = dials_client::Client::<Config>::builder("svc");
    /// let b = b.env_source([("TTS_VOICE".to_owned(), "amy".to_owned())].into());
    /// ```
    pub fn env_source(self, vars: HashMap<String, String>) -> Self {
        self.env_lookup(move |name| vars.get(name).cloned())
    }

    /// Starts the client: derives and registers the schema, reads the config over REST
    /// (bounded by [`start_timeout`](Self::start_timeout)), else from the LKG file, else from
    /// the schema defaults if [allowed](Self::allow_defaults); then connects to MQTT in the
    /// background. Never waits on MQTT.
    ///
    /// # Errors
    /// [`Error::Setting`] for a missing or unusable setting, [`Error::Schema`] when the
    /// struct's schema is unusable, [`Error::NoConfig`] when there is no config to start from.
    ///
    /// ```no_run
    /// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Config {}
    /// # async fn run() -> Result<(), dials_client::Error> {
    /// let dials = dials_client::Client::<Config>::builder("svc")
    ///     .server("http://127.0.0.1:8081")
    ///     .token("t")
    ///     .allow_defaults(true)
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<Client<T>, Error> {
        let setting = |setting: &'static str, reason: String| Error::Setting { setting, reason };
        let service_name = dials_domain::ServiceName::parse(&self.service)
            .map_err(|e| setting("service", format!("{:?}: {e}", self.service)))?;
        let server = self.server.clone().ok_or_else(|| {
            setting(
                "server",
                "the manager's URL is not set (e.g. http://127.0.0.1:8081)".into(),
            )
        })?;
        let parsed = url::Url::parse(&server)
            .map_err(|e| setting("server", format!("{server:?} is not a URL: {e}")))?;
        if parsed.scheme() != "http" {
            return Err(setting(
                "server",
                format!(
                    "{server:?}: only http:// is supported; put the manager behind a local \
                     TLS proxy or reach it over a trusted network"
                ),
            ));
        }
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| setting("token", "no token is set".into()))?;
        let instance = match self.instance.clone() {
            Some(i) => i,
            None => default_instance(),
        };
        let instance = dials_domain::InstanceName::parse(&instance)
            .map_err(|e| setting("instance", e.to_string()))?;
        let keys = self
            .public_keys
            .iter()
            .map(|k| {
                dials_wire::envelope::parse_public_key(k)
                    .map_err(|e| setting("public_key", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let broker = match &self.mqtt {
            Some(url) => {
                if keys.is_empty() {
                    return Err(setting(
                        "public_key",
                        "MQTT updates are verified against a pinned public key: pass the \
                         manager's key (GET /api/v1/keys)"
                            .into(),
                    ));
                }
                Some(
                    dials_wire::mqtt::BrokerUrl::parse(url)
                        .map_err(|e| setting("mqtt", e.to_string()))?,
                )
            }
            None => None,
        };

        let schema = Arc::new(ServiceSchema::derive::<T>()?);
        let http = reqwest::Client::builder()
            .connect_timeout(self.start_timeout)
            .build()
            .map_err(|e| setting("server", e.to_string()))?;
        let manager = Manager::new(http, &server, &self.service, instance.as_str(), &token);
        let lkg = self.lkg_path.clone().map(|path| {
            let key = self
                .lkg_key
                .clone()
                .unwrap_or_else(|| lkg::key_from_token(&token));
            Arc::new(LkgFile::new(path, key))
        });

        let start = self.initial(&schema, &manager, lkg.as_deref()).await?;
        let Initial {
            value,
            info,
            report,
            epoch,
            seen,
            write_lkg,
            manager_ok,
            held,
            layers,
        } = start;
        let schema_hash = schema.hash();
        tracing::info!(
            service = %self.service,
            instance = %instance,
            version = info.version,
            origin = ?info.origin,
            overrides = ?info.overrides,
            "dials config in force"
        );
        if let (Some(file), Some(config)) = (&lkg, write_lkg) {
            crate::driver::write_lkg(
                file.clone(),
                &schema,
                &self.service,
                info.version,
                info.epoch,
                config,
                layers.lkg(&schema),
            )
            .await;
        }

        let (config_tx, _) = watch::channel(Arc::new(value));
        let shared = Arc::new(Shared {
            config: config_tx,
            callbacks: Mutex::new(Vec::new()),
            info: Mutex::new(info),
            service: service_name,
            instance: instance.clone(),
            schema_hash,
        });
        let topics = Topics::new(&self.mqtt_prefix, &self.service, instance.as_str());
        let mqtt = broker.map(|b| {
            let client_id = format!(
                "dials-{}-{}-{:06x}",
                self.service,
                instance,
                rand::random::<u32>() & 0xff_ffff
            );
            tracing::debug!(broker = %b.display_url(), "connecting to the MQTT broker in the background");
            let mut options = crate::mqtt::options(&b, client_id, self.mqtt_ca.as_deref());
            // If this process dies or loses the broker, the broker reports it gone.
            options.set_last_will(rumqttc::LastWill::new(
                topics.applied.clone(),
                crate::driver::offline_report(&shared).to_bytes(),
                rumqttc::QoS::AtLeastOnce,
                true,
            ));
            Mqtt::new(options, topics, b)
        });
        let poll_interval = match (self.poll_interval, &mqtt) {
            (Some(every), _) => Some(every),
            (None, None) => Some(Duration::from_secs(30)),
            (None, Some(_)) => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            shared: shared.clone(),
            schema,
            env: self.env,
            manager,
            lkg,
            keys,
            epoch,
            seen,
            last_report: Some(report),
            report_pending: false,
            request_timeout: self.request_timeout,
            poll_interval,
            manager_ok,
            held,
            rotations_read_at: None,
            layers,
        };
        let task = tokio::spawn(driver.run(mqtt, stop_rx, commands_rx));
        Ok(Client::from_parts(shared, stop_tx, commands_tx, task))
    }

    /// The first config: manager, else LKG, else defaults if allowed.
    async fn initial(
        &self,
        schema: &ServiceSchema,
        manager: &Manager,
        lkg: Option<&LkgFile>,
    ) -> Result<Initial<T>, Error> {
        let overrides = schema.active_overrides(&self.env);
        let report = |version, status, error: Option<String>| Report {
            version,
            status,
            error,
            overrides: overrides.clone(),
        };

        // 1. The manager, within the start timeout.
        let read = async {
            if self.register_schema {
                match manager
                    .register_schema(schema.json(), self.start_timeout)
                    .await
                {
                    Ok(()) => tracing::debug!(service = %self.service, "schema registered"),
                    Err(e) => tracing::warn!(
                        service = %self.service,
                        "the manager did not take this service's schema: {e}"
                    ),
                }
            }
            manager.read_config(self.start_timeout).await
        };
        let mut rejected = None;
        let takes_global = schema.takes_global();
        let manager_reason = match tokio::time::timeout(self.start_timeout, read).await {
            Ok(Ok(read)) => {
                let response = read.service;
                let mut layers = LayerState {
                    takes_global,
                    service: response.config.clone(),
                    ..LayerState::default()
                };
                if let Some(g) = read.global.filter(|_| takes_global) {
                    layers.global_version = g.version;
                    layers.global = g.config;
                }
                if let Some(i) = read.instance {
                    layers.instance_version = i.version;
                    if let Some(config) = &i.config {
                        layers.instance_held =
                            crate::layers::HeldSecrets::from_parts(&i.secrets, config);
                    }
                    layers.instance = i.config;
                }
                let merged = schema
                    .merge(
                        layers.global.as_ref(),
                        &response.config,
                        layers.instance.as_ref(),
                    )
                    .and_then(|(merged, applied)| {
                        layers.applied = applied;
                        schema.resolve::<T>(&merged, &self.env)
                    });
                match merged {
                    Ok(resolved) => {
                        crate::driver::warn_masked(&self.service, &resolved.masked);
                        return Ok(Initial {
                            value: resolved.value,
                            info: ConfigInfo {
                                version: response.version,
                                epoch: Some(response.epoch),
                                origin: Origin::Manager,
                                overrides: resolved.overrides,
                            },
                            report: report(response.version, AppliedStatus::Applied, None),
                            epoch: Some(response.epoch),
                            seen: response.version,
                            held: crate::layers::HeldSecrets::from_response(&response),
                            write_lkg: Some(response.config),
                            manager_ok: true,
                            layers,
                        });
                    }
                    Err(reason) => {
                        tracing::error!(
                            service = %self.service,
                            version = response.version,
                            "the manager's config does not fit this service: {reason}"
                        );
                        let why = format!(
                            "the manager's config version {} does not fit: {reason}",
                            response.version
                        );
                        rejected = Some((response.version, response.epoch, reason));
                        why
                    }
                }
            }
            Ok(Err(e)) => format!("the manager at {} gave no config: {e}", manager.base()),
            Err(_) => format!(
                "the manager at {} did not answer within {:?}",
                manager.base(),
                self.start_timeout
            ),
        };
        if rejected.is_none() {
            tracing::warn!(service = %self.service, "{manager_reason}; trying the last-known-good file");
        }
        let manager_ok = rejected.is_some();
        let (seen, epoch_seen, first_report) = match &rejected {
            Some((version, epoch, reason)) => (
                *version,
                Some(*epoch),
                Some(report(
                    *version,
                    AppliedStatus::Rejected,
                    Some(reason.clone()),
                )),
            ),
            None => (0, None, None),
        };

        // 2. The last-known-good file.
        let lkg_reason = match lkg {
            None => "no last-known-good file is configured (.lkg_path)".to_owned(),
            Some(file) => match file.load(&self.service) {
                Ok(l) => {
                    let mut layers = LayerState {
                        takes_global,
                        service: l.config.clone(),
                        ..LayerState::default()
                    };
                    if let Some(kept) = &l.layers {
                        if let Some(g) = kept.global.as_ref().filter(|_| takes_global) {
                            layers.global_version = g.version;
                            layers.global = Some(g.config.clone());
                        }
                        if let Some(i) = &kept.instance {
                            layers.instance_version = i.version;
                            layers.instance = Some(i.config.clone());
                        }
                    }
                    let merged = schema
                        .merge(layers.global.as_ref(), &l.config, layers.instance.as_ref())
                        .and_then(|(merged, applied)| {
                            layers.applied = applied;
                            schema.resolve::<T>(&merged, &self.env)
                        });
                    match merged {
                        Ok(resolved) => {
                            tracing::info!(
                                service = %self.service,
                                version = l.version,
                                path = %file.path().display(),
                                "starting from the last-known-good file"
                            );
                            return Ok(Initial {
                                value: resolved.value,
                                info: ConfigInfo {
                                    version: l.version,
                                    epoch: l.epoch,
                                    origin: Origin::Lkg,
                                    overrides: resolved.overrides,
                                },
                                report: first_report.unwrap_or_else(|| {
                                    report(l.version, AppliedStatus::Applied, None)
                                }),
                                epoch: epoch_seen.or(l.epoch),
                                seen: seen.max(l.version),
                                write_lkg: None,
                                manager_ok,
                                held: Default::default(),
                                layers,
                            });
                        }
                        Err(reason) => {
                            let why = format!(
                                "the last-known-good file {} (version {}) does not fit: {reason}",
                                file.path().display(),
                                l.version
                            );
                            tracing::error!(service = %self.service, "{why}");
                            why
                        }
                    }
                }
                Err(e) => {
                    if e.is_loud() {
                        tracing::error!(service = %self.service, "{e}");
                    }
                    e.to_string()
                }
            },
        };

        // 3. The schema defaults, only if allowed.
        if !self.allow_defaults {
            return Err(Error::NoConfig {
                service: self.service.clone(),
                manager: manager_reason,
                lkg: lkg_reason,
            });
        }
        let resolved = schema
            .resolve::<T>(&json!({}), &self.env)
            .map_err(|reason| {
                Error::Schema(format!(
                    "the schema defaults, with the environment's overrides, do not make a \
                     valid config: {reason}"
                ))
            })?;
        tracing::warn!(
            service = %self.service,
            "starting from the schema defaults: {manager_reason}; {lkg_reason}"
        );
        Ok(Initial {
            value: resolved.value,
            info: ConfigInfo {
                version: 0,
                epoch: epoch_seen,
                origin: Origin::Defaults,
                overrides: resolved.overrides,
            },
            report: first_report.unwrap_or_else(|| report(0, AppliedStatus::Applied, None)),
            epoch: epoch_seen,
            seen,
            write_lkg: None,
            manager_ok,
            held: Default::default(),
            layers: LayerState {
                takes_global,
                service: json!({}),
                ..LayerState::default()
            },
        })
    }
}

/// What start-up settled on.
struct Initial<T> {
    value: T,
    info: ConfigInfo,
    report: Report,
    /// The manager's epoch as far as known (envelopes of another epoch cause a re-read).
    epoch: Option<Uuid>,
    /// The highest version already dealt with (applied or rejected).
    seen: u64,
    /// The manager's document to write to the LKG file.
    write_lkg: Option<Value>,
    /// Whether the manager answered.
    manager_ok: bool,
    /// The secret values the manager's answer held.
    held: crate::layers::HeldSecrets,
    /// The layers besides the service's document the config was merged from.
    layers: LayerState,
}

/// The host name, as an instance name.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if host.is_empty() {
        format!("pid-{}", std::process::id())
    } else {
        host
    }
}
