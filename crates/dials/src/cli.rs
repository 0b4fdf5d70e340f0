//! Command-line arguments. Every flag of `serve` also has an environment variable and a
//! `dials.toml` key; those are merged in `settings`, not here, so that errors can name where a
//! bad value came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// dials: live, typed, signed configuration for fleets of small services.
#[derive(Debug, Parser)]
#[command(name = "dials", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the config manager.
    ///
    /// Each setting is taken from its flag, else its environment variable, else `dials.toml` in
    /// the data directory, else its default.
    Serve(ServeArgs),

    /// Load a folder of schemas and configs into a running dials.
    ///
    /// Registers every `SERVICE.schema.json` as that service's schema, then writes every
    /// `SERVICE.config.json` as its config. With no folder, loads the demo fleet shipped in
    /// `examples/tars` (a seven-service voice assistant).
    Seed(SeedArgs),

    /// Show or rotate the keys in the data directory (works with the server stopped).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: the signing key and the retired ones still trusted, the master key ring
    /// (with how many secrets each key seals) and the root of the last-known-good keys.
    Show(KeysArgs),
    /// Replace a key.
    ///
    /// `master`: a new AES-256 key seals every secret again, in one transaction; the old key
    /// is then dropped. Needs the server stopped (dials refuses while it runs).
    ///
    /// `signing`: a new Ed25519 key signs envelopes after the next start; the old public key
    /// stays listed at /api/v1/keys for 7 days so services can pin both meanwhile.
    Rotate {
        /// Which key: `master` or `signing`.
        #[arg(value_parser = ["master", "signing"])]
        which: String,
        #[command(flatten)]
        args: KeysArgs,
    },
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Data directory [env: DIALS_DATA_DIR] [default: ./dials-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL [env: DIALS_DATABASE_URL] [default: sqlite://<data-dir>/dials.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How the CLI reaches a running manager.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The manager's URL [env: DIALS_SERVER] [default: http://127.0.0.1:8081]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// API token [env: DIALS_TOKEN] [default: the one in ./dials-data/admin.token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Folder with SERVICE.schema.json and SERVICE.config.json files [default: examples/tars]
    pub dir: Option<PathBuf>,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Data directory: database, keys, admin token [env: DIALS_DATA_DIR] [default: ./dials-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTP listen address; port 0 picks a free one [env: DIALS_HTTP_ADDR] [default: 127.0.0.1:8081]
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,

    /// Database URL [env: DIALS_DATABASE_URL] [default: sqlite://<data-dir>/dials.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// MQTT broker: `auto` (the one on 127.0.0.1:1883, else run one in-process there),
    /// `embedded[:ADDR]`, `mqtt://[user:pass@]host:port`, `mqtts://…` or `none`
    /// [env: DIALS_MQTT_URL] [default: auto]
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,

    /// Prefix of every MQTT topic, e.g. `home/` [env: DIALS_MQTT_PREFIX] [default: none]
    #[arg(long, value_name = "PREFIX")]
    pub mqtt_prefix: Option<String>,

    /// CA certificate (PEM) to trust for an `mqtts://` broker instead of the system's roots
    /// [env: DIALS_MQTT_CA]
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,

    /// Days the access log keeps entries [env: DIALS_AUDIT_RETENTION_DAYS] [default: 90]
    #[arg(long, value_name = "DAYS")]
    pub audit_retention_days: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key [env: DIALS_TLS_CERT]
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert [env: DIALS_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Log format, `pretty` or `json` [env: DIALS_LOG_FORMAT] [default: pretty on a terminal, else json]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Largest accepted request body in bytes [env: DIALS_MAX_BODY_BYTES] [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<String>,

    /// Start a new, empty database (a new epoch) even though the data directory holds keys or
    /// an admin token of an earlier one. Without it, dials refuses to start when `dials.db` is
    /// missing from a data directory that was used before: restore the file or a backup instead
    #[arg(long)]
    pub init: bool,
}
