//! What the server needs to know, already read and checked by the binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use dials_mqtt::BrokerSetting;

/// The server's settings. Only the `dials` binary reads flags, environment and `dials.toml`;
/// it hands the server this plain struct.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the database (for SQLite), keys, admin token and backups live.
    pub data_dir: PathBuf,
    /// The address to listen on; port 0 picks a free one.
    pub http_addr: SocketAddr,
    /// `sqlite://…` (the default is `<data-dir>/dials.db`).
    pub database_url: String,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Which MQTT broker to publish to.
    pub mqtt: BrokerSetting,
    /// Prefix of every MQTT topic (empty, or e.g. `home/`).
    pub mqtt_prefix: String,
    /// A CA certificate (PEM) to trust for `mqtts://` instead of the system's roots.
    pub mqtt_ca: Option<PathBuf>,
    /// Keys given by the environment instead of their files in `keys/`.
    pub key_overrides: crate::keys::KeyOverrides,
    /// How long the access log keeps entries.
    pub audit_retention: std::time::Duration,
    /// Serve HTTPS with this certificate chain and private key (PEM files).
    pub tls: Option<TlsFiles>,
    /// Create a new database even where the data directory shows an earlier one.
    pub init: bool,
    /// `/metrics` answers only requests carrying a token (viewer or above).
    pub metrics_require_token: bool,
    /// Publish Home Assistant MQTT discovery for simple settings, and take its commands.
    pub home_assistant: bool,
    /// Home Assistant's discovery prefix (`homeassistant` unless changed there).
    pub home_assistant_prefix: String,
    /// An instance silent for longer than this is shown offline (clients report at least once a
    /// minute while connected).
    pub instance_timeout: std::time::Duration,
    /// Take a backup this often (into `<data-dir>/backups`), or never.
    pub backup_every: Option<std::time::Duration>,
    /// How many scheduled backups to keep (the oldest go first).
    pub backup_keep: usize,
}

/// The PEM files of the API's TLS certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// How long an instance may be silent before it is shown offline, unless set.
pub const DEFAULT_INSTANCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

impl ServerSettings {
    /// Settings for a server on loopback, a free port, SQLite in `data_dir`, and no MQTT.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            database_url: format!("sqlite://{}", data_dir.join("dials.db").display()),
            data_dir,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_body_bytes: 1024 * 1024,
            mqtt: BrokerSetting::None,
            mqtt_prefix: String::new(),
            mqtt_ca: None,
            key_overrides: Default::default(),
            audit_retention: std::time::Duration::from_secs(90 * 24 * 3600),
            tls: None,
            init: false,
            metrics_require_token: false,
            home_assistant: false,
            home_assistant_prefix: "homeassistant".into(),
            instance_timeout: DEFAULT_INSTANCE_TIMEOUT,
            backup_every: None,
            backup_keep: 7,
        }
    }
}
