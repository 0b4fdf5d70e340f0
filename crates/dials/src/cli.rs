//! Command-line arguments. Every flag of `serve` also has an environment variable and a
//! `dials.toml` key; those are merged in `settings`, not here, so that errors can name where a
//! bad value came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit codes and environment, shown at the end of `dials --help`.
const AFTER_HELP: &str = "\
Examples:
  dials serve                                  run the manager (./dials-data)
  dials status                                 is it up? (no flags needed on its machine)
  dials get tts-worker                         a service's config
  dials set tts-worker volume_percent=60 --reason \"too loud\"
  dials watch                                  follow every change as it happens

The client commands find the server in --server or DIALS_SERVER (default http://127.0.0.1:8081)
and the token in --token or DIALS_TOKEN (default: <data dir>/admin.token, the data dir from
--data-dir or DIALS_DATA_DIR, default ./dials-data): on the machine running `dials serve` they
work with no flags. --json prints machine-readable JSON instead of tables. Colours only on a
terminal, never with NO_COLOR set.

Exit codes:
  0  success
  1  error (server unreachable, bad token, unknown service…)
  2  usage: the command line is wrong
  3  conflict: the service changed meanwhile (HTTP 409/412); read it again and retry
  4  validation failed: the document does not fit the service's schema (HTTP 422)";

/// dials: live, typed, signed configuration for fleets of small services.
///
/// `dials serve` runs the manager; every other command talks to it (or, for `keys`,
/// `token create` and `backup restore`, works directly on its data directory while it is
/// stopped; `backup create` reads the data directory whether or not it runs).
#[derive(Debug, Parser)]
#[command(
    name = "dials",
    version,
    propagate_version = true,
    after_help = AFTER_HELP,
    max_term_width = 100
)]
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

    /// Is the manager up? Mode, database, broker, epoch, latest revision.
    ///
    /// Example: dials status
    Status(ClientArgs),

    /// List every service: version, last change, schema, running instances.
    ///
    /// Example: dials services --json
    Services(ClientArgs),

    /// Print a service's config (JSON, or YAML with --yaml), or one key's value.
    ///
    /// Secrets show as "********". With --json, prints the whole answer: version, revision,
    /// who changed it last and when.
    ///
    /// Examples: dials get tts-worker --yaml; dials get global mqtt.host
    Get(GetArgs),

    /// Change settings: KEY=VALUE… sent as one merge patch.
    ///
    /// Each VALUE is read as the type the service's schema gives its key: numbers, booleans,
    /// null, JSON for objects and arrays, anything else as text. Without a schema a VALUE that
    /// reads as JSON is JSON, else text. Nested keys: mqtt.host or /mqtt/host. A value the
    /// schema refuses exits with code 4 and one line per offending key.
    ///
    /// Example: dials set tts-worker volume_percent=60 tts_streaming=true --reason "quieter"
    Set(SetArgs),

    /// Edit a service's config in $EDITOR, validated before it is saved.
    ///
    /// Opens YAML (JSON with --json) with each setting's description as a comment. On save the
    /// document is checked against the schema; if it does not fit, the editor opens again with
    /// the errors on top, until it fits or you quit (save the file unchanged, or empty it).
    /// The change is saved only if nobody changed the service meanwhile (else exit code 3).
    ///
    /// Example: EDITOR=nano dials edit tts-worker --reason "new voice"
    Edit(EditArgs),

    /// Show what changed between two versions of a service, key by key.
    ///
    /// --to defaults to the current version, --from to the one before --to.
    ///
    /// Example: dials diff tts-worker --from 3
    Diff(DiffArgs),

    /// Per-key change records, newest first, of one service or all.
    ///
    /// Example: dials history tts-worker --since 2h --limit 20
    History(HistoryArgs),

    /// Bring back a service's config (or, with --all, the fleet's) as of a version or a time.
    ///
    /// The state brought back is written as a new version. With --all, every service (or those
    /// named) is restored as it was at --at, in one transaction: services that did not exist
    /// then are left alone, services deleted since are written back, and only services that
    /// change get a new version. --dry-run shows the plan, key by key, and writes nothing
    /// (--all needs an admin token).
    ///
    /// Examples: dials restore tts-worker --version 3 --reason "undo the voice change";
    /// dials restore --all --at 2h --dry-run; dials restore --all --at 2026-05-01T12:00:00Z
    /// tts-worker stt-worker
    #[command(disable_version_flag = true)]
    Restore(RestoreArgs),

    /// Delete a service: its config and its instances' overrides. Its history stays.
    ///
    /// Versions are never reused, and `dials restore SERVICE --version V` brings a deleted
    /// service back. Deletes the version it reads (or --version) only: if the service changes
    /// meanwhile, nothing is deleted (exit code 3). Needs an admin token.
    ///
    /// Example: dials delete kitchen-lights
    Delete(DeleteArgs),

    /// Named snapshots of services: save, list, show, apply, delete.
    #[command(subcommand)]
    Profile(ProfileCommand),

    /// Write every service's config and schema, and every profile, to one file (or stdout).
    ///
    /// The format follows the file's extension: .json, or .yaml/.yml. Secrets are named but
    /// not valued, unless a passphrase is given (--with-secrets asks for one on the terminal;
    /// --passphrase-file, or DIALS_EXPORT_PASSPHRASE):
    /// then their values are included, encrypted with it (Argon2id + AES-256-GCM). Needs an
    /// admin token.
    ///
    /// Examples: dials export fleet.yaml; dials export backup.json --passphrase-file pass.txt
    Export(ExportArgs),

    /// Load an export file: schemas, configs and profiles, in one transaction.
    ///
    /// Everything is checked first; --dry-run shows the plan and writes nothing. Importing the
    /// same file again changes nothing. A file with encrypted secrets needs its passphrase
    /// (--passphrase-file, or DIALS_EXPORT_PASSPHRASE). Needs an admin token.
    ///
    /// Example: dials import fleet.yaml --dry-run
    Import(ImportArgs),

    /// Follow changes as they happen, one line each; reconnects by itself.
    ///
    /// Resumes after the last revision it saw, so no change is missed across a reconnect. Use
    /// --json for one JSON object per line.
    ///
    /// Example: dials watch tts-worker
    Watch(WatchArgs),

    /// Create, list or revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Load a folder of schemas and configs into a running dials.
    ///
    /// Creates what is missing — every `SERVICE.schema.json` as that service's schema, every
    /// `SERVICE.config.json` as its config — and never clobbers what exists: a service whose
    /// schema or config differs from the folder's is shown with its per-key differences and
    /// left as it is unless --overwrite is given (try --dry-run first). A stored secret is never
    /// replaced by the folder's example value. Each service is reported as created, unchanged
    /// or differs (not applied). With no folder, loads the demo fleet shipped in
    /// `examples/tars` (a seven-service voice assistant).
    ///
    /// Example: dials seed --overwrite --dry-run
    Seed(SeedArgs),

    /// Show or rotate the keys in the data directory (works with the server stopped).
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Back up the database (even while serving), list, verify and restore backups.
    ///
    /// Backups go to <data-dir>/backups unless --dir says otherwise: the database file and a
    /// metadata file beside it (epoch, revision, time, dials version, SHA-256). Restore works
    /// only with the server stopped; the restored database gets a new epoch, so every service
    /// reads its config again.
    ///
    /// Examples: dials backup create; dials backup verify dials-data/backups/dials-….db
    #[command(subcommand)]
    Backup(BackupCommand),

    /// Make a new database from the manager's signed snapshot (server stopped).
    ///
    /// For a database that cannot be read and has no usable backup: the old file is kept aside
    /// as dials.db.broken-<time>, the new one gets every service's current config, every schema
    /// and every token from the snapshot, and a new epoch (every service reads its config
    /// again). Secret values are not in the snapshot: the command lists them, to be set again.
    /// A file rebuilt-<time>.json in the data directory says what happened.
    ///
    /// Example: dials rebuild --reason "disk error on /var/lib/dials"
    Rebuild(RebuildArgs),

    /// Copy a whole installation from one database to another, e.g. SQLite to PostgreSQL.
    ///
    /// Every version, history row, change-log revision, outbox row (published or not), schema,
    /// sealed secret (as sealed: the same master key opens them), token, session, profile,
    /// instance report and access-log entry is copied in one transaction, and the epoch is kept,
    /// so services see the same database. The target must be empty (a new database: dials
    /// creates the schema). The copy is checked afterwards: counts, the latest revision, the
    /// epoch and every service's current state must be equal. Stop dials first: a SQLite
    /// source's data directory is locked meanwhile.
    ///
    /// Example: dials migrate-store --from sqlite:///var/lib/dials/dials.db --to postgres://dials@db/dials
    MigrateStore(MigrateStoreArgs),

    /// Print a shell completion script.
    ///
    /// Example: dials completions bash > ~/.local/share/bash-completion/completions/dials
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Check that a manager is up: its `/health` answers ok (no token needed). Exit 0 or 1.
    ///
    /// Example: dials health --server http://127.0.0.1:8081
    Health {
        /// The manager's URL [env: DIALS_SERVER] [default: http://127.0.0.1:8081]
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        timeout: u64,
    },

    /// Print the man page (roff), or write one page per command into --dir.
    ///
    /// Example: dials man | man -l -
    Man {
        /// Write dials.1 and dials-COMMAND.1 into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The service.
    pub service: String,
    /// One key (mqtt.host or /mqtt/host); prints only its value.
    pub key: Option<String>,
    /// Print YAML instead of JSON.
    #[arg(long, conflicts_with = "json")]
    pub yaml: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The service.
    pub service: String,
    /// KEY=VALUE pairs.
    #[arg(required = true, value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Why: recorded in the history.
    #[arg(long, short)]
    pub reason: Option<String>,
    /// Create the service if it does not exist yet (it has no config and no registered
    /// schema); without it, a misspelt name is an error instead of a new service.
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The service.
    pub service: String,
    /// Why: recorded in the history.
    #[arg(long, short)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The service.
    pub service: String,
    /// The older version [default: the one before --to].
    #[arg(long, value_name = "V")]
    pub from: Option<u64>,
    /// The newer version [default: the current one].
    #[arg(long, value_name = "V")]
    pub to: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this service.
    pub service: Option<String>,
    /// Only this key (mqtt.host or /mqtt/host).
    #[arg(long, short)]
    pub key: Option<String>,
    /// Only changes since this time: RFC 3339, or an age such as 30m, 2h, 7d.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only changes by this actor (a token's name).
    #[arg(long)]
    pub actor: Option<String>,
    /// At most this many records [default: the server's, 100].
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The service.
    pub service: String,
    /// Delete only if the service is still at this version.
    #[arg(long, value_name = "V")]
    pub version: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("point").required(true).args(["version", "at"])))]
pub struct RestoreArgs {
    /// The service; with --all, the services to restore [default: every service].
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Restore many services (every one, or those named) as they were at --at, in one
    /// transaction.
    #[arg(long, requires = "at", conflicts_with = "version")]
    pub all: bool,
    /// With --all: show what would change, write nothing.
    #[arg(long, requires = "all")]
    pub dry_run: bool,
    /// Bring back this version.
    #[arg(long, value_name = "V")]
    pub version: Option<u64>,
    /// Bring back the config as it was at this time: RFC 3339, or an age such as 2h.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Why: recorded in the history.
    #[arg(long, short)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Every profile: name, services, when and by whom it was saved.
    List(ClientArgs),
    /// Save the current config of every service (or those named) as a profile.
    ///
    /// Secrets are kept as references to the values in force, never copied.
    ///
    /// Example: dials profile save night tts-worker stt-worker -d "quiet at night"
    Save(ProfileSaveArgs),
    /// Show a profile: each service's config as captured (secrets as "********").
    Show(ProfileNameArgs),
    /// Load a profile: every service it holds, in one transaction.
    ///
    /// Every service is checked against its current schema first; if one does not fit,
    /// nothing is written (exit code 4). Only services that change get a new version.
    /// --dry-run shows the changes key by key and writes nothing.
    ///
    /// Example: dials profile apply night --dry-run
    Apply(ProfileApplyArgs),
    /// Delete a profile (the services keep their configs).
    Delete(ProfileNameArgs),
}

#[derive(Debug, Args)]
pub struct ProfileSaveArgs {
    /// The profile's name: lowercase letters, digits, '-' and '_'.
    pub name: String,
    /// Only these services [default: every service with a config].
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// What the profile is for.
    #[arg(long, short)]
    pub description: Option<String>,
    /// Replace a profile of the same name.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ProfileNameArgs {
    /// The profile's name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ProfileApplyArgs {
    /// The profile's name.
    pub name: String,
    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Why: recorded in the history.
    #[arg(long, short)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write here (.json, .yaml or .yml) [default: JSON on stdout].
    pub file: Option<PathBuf>,
    /// Include secret values, encrypted with the passphrase in this file (its first line)
    /// [env: DIALS_EXPORT_PASSPHRASE holds the passphrase itself].
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Include secret values, encrypted with a passphrase asked for on the terminal (unless
    /// --passphrase-file or DIALS_EXPORT_PASSPHRASE gives one).
    #[arg(long)]
    pub with_secrets: bool,
    /// Write YAML (the default for .yaml and .yml files).
    #[arg(long)]
    pub yaml: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file (.json, .yaml or .yml).
    pub file: PathBuf,
    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The passphrase of the file's encrypted secrets, in this file (its first line)
    /// [env: DIALS_EXPORT_PASSPHRASE holds the passphrase itself]. Without either, a file
    /// with encrypted secrets makes dials ask for it on the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only this service's changes.
    pub service: Option<String>,
    /// Start after this revision (replays what came since) [default: now].
    #[arg(long, value_name = "REV")]
    pub since: Option<u64>,
    /// Stop after this many changes.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once, only now.
    ///
    /// With the server stopped, writes the token straight into the database of --data-dir.
    /// While a server runs on that data directory (or with --server), asks it instead.
    ///
    /// Examples: dials token create ci --role operator; dials token create tts --role service
    /// --service tts-worker --expires 2027-01-01T00:00:00Z
    Create(TokenCreateArgs),
    /// List every token (never their secrets).
    List(ClientArgs),
    /// Revoke a token by id; it stops working at once.
    ///
    /// Example: dials token revoke 2f1c5a9e-…
    Revoke {
        /// The token's id (see `dials token list`).
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name people recognise; recorded as the actor of everything done with the token.
    pub name: String,
    /// viewer, operator, admin or service.
    #[arg(long, value_parser = ["viewer", "operator", "admin", "service"])]
    pub role: String,
    /// For a service token: the one service it acts for.
    #[arg(long)]
    pub service: Option<String>,
    /// When it stops working: RFC 3339 [default: never].
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
    /// Database URL, for the offline mode [env: DIALS_DATABASE_URL] [default: sqlite://<data-dir>/dials.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a consistent backup of the database, whether or not `dials serve` runs on it.
    Create(BackupArgs),
    /// The backups in the backup folder, oldest first.
    List(BackupArgs),
    /// Check a backup: checksum, SQLite's integrity check, and that its contents agree with
    /// its metadata.
    Verify {
        /// The backup's database file (its metadata is FILE.json).
        file: PathBuf,
        #[command(flatten)]
        args: BackupArgs,
    },
    /// Replace the database with a backup (server stopped): checks the backup, keeps the
    /// replaced database aside as dials.db.replaced-<time>, and gives the restored one a new
    /// epoch.
    Restore {
        /// The backup's database file (its metadata is FILE.json).
        file: PathBuf,
        #[command(flatten)]
        args: BackupArgs,
    },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Data directory [env: DIALS_DATA_DIR] [default: ./dials-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL [env: DIALS_DATABASE_URL] [default: sqlite://<data-dir>/dials.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// Backup folder [default: <data-dir>/backups]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// `create` and `list` over the API of the manager at this URL (into its own backup
    /// folder) instead of on the data directory [env: DIALS_SERVER]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// API token (admin) for --server; giving one (or DIALS_TOKEN) also means over the API
    /// [env: DIALS_TOKEN] [default: the one in <data-dir>/admin.token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
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

    /// API token [env: DIALS_TOKEN] [default: the one in <data-dir>/admin.token]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Data directory holding admin.token [env: DIALS_DATA_DIR] [default: ./dials-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Folder with SERVICE.schema.json and SERVICE.config.json files [default: examples/tars]
    pub dir: Option<PathBuf>,

    /// Replace schemas and configs that differ from the folder's (stored secrets are kept)
    #[arg(long)]
    pub overwrite: bool,

    /// Write nothing: say what would be created or overwritten
    #[arg(long)]
    pub dry_run: bool,

    /// Register the folder's schemas even where the stored config no longer fits them,
    /// repairing the config (keys the schema dropped go, values that no longer fit get their
    /// default) in a new version
    #[arg(long)]
    pub migrate: bool,

    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Settings file (TOML; its keys are the flags' names with `_` for `-`) [env: DIALS_CONFIG]
    /// [default: <data-dir>/dials.toml, when it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

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

    /// Seconds an instance may be silent before it shows as offline (clients report at least
    /// once a minute) [env: DIALS_INSTANCE_TIMEOUT] [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub instance_timeout: Option<String>,

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

    /// `/metrics` answers only requests with a token (viewer or above); without it, anyone who
    /// can reach the HTTP address can read it [env: DIALS_METRICS_REQUIRE_TOKEN] [default: false]
    #[arg(long)]
    pub metrics_require_token: bool,

    /// Publish Home Assistant MQTT discovery for every simple setting, and turn Home Assistant's
    /// commands into validated writes [env: DIALS_HOME_ASSISTANT] [default: false]
    #[arg(long)]
    pub home_assistant: bool,

    /// Home Assistant's discovery prefix [env: DIALS_HOME_ASSISTANT_PREFIX] [default: homeassistant]
    #[arg(long, value_name = "PREFIX")]
    pub home_assistant_prefix: Option<String>,
    /// Take a backup this often into <data-dir>/backups, e.g. `6h`, `1d`, `30m`
    /// [env: DIALS_BACKUP_EVERY] [default: never]
    #[arg(long, value_name = "DURATION")]
    pub backup_every: Option<String>,

    /// How many scheduled backups to keep; older ones are deleted [env: DIALS_BACKUP_KEEP]
    /// [default: 7]
    #[arg(long, value_name = "N")]
    pub backup_keep: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Data directory [env: DIALS_DATA_DIR] [default: ./dials-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL [env: DIALS_DATABASE_URL] [default: sqlite://<data-dir>/dials.db]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,

    /// Why, for the audit log and the tombstone file.
    #[arg(long, default_value = "the database could not be read")]
    pub reason: String,

    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The database to copy from: sqlite://PATH or postgres://…
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// The empty database to copy into: postgres://… or sqlite://PATH
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}
