//! Settings: flag > environment > `<data-dir>/dials.toml` > default, read once into typed
//! values. Every error names the setting and where its bad value came from.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use dials_mqtt::BrokerSetting;
use dials_server::ServerSettings;
use serde::Deserialize;

use crate::cli::ServeArgs;

/// A bad setting, as the one line to print.
#[derive(Debug, PartialEq, Eq)]
pub struct SettingError(pub String);

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything `dials serve` runs with.
#[derive(Debug)]
pub struct Resolved {
    pub server: ServerSettings,
    pub log_format: LogFormat,
}

/// The environment variables, captured once (tests pass their own).
#[derive(Debug, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    stderr_is_terminal: bool,
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("DIALS_"))
                .collect(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stderr_is_terminal: false,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The keys `dials.toml` may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<String>,
    http: Option<String>,
    database: Option<String>,
    log_format: Option<String>,
    max_body_bytes: Option<toml::Value>,
    mqtt: Option<String>,
    mqtt_prefix: Option<String>,
    mqtt_ca: Option<String>,
    audit_retention_days: Option<toml::Value>,
    instance_timeout: Option<toml::Value>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    metrics_require_token: Option<bool>,
    home_assistant: Option<bool>,
    home_assistant_prefix: Option<String>,
}

/// One setting's value and where it came from, for error messages.
struct Sourced {
    value: String,
    source: String,
}

fn pick(
    flag: Option<&str>,
    flag_name: &str,
    env: &Environment,
    env_name: &str,
    file: Option<String>,
    file_key: &str,
    file_path: &Path,
) -> Option<Sourced> {
    if let Some(v) = flag {
        return Some(Sourced {
            value: v.to_owned(),
            source: format!("--{flag_name}"),
        });
    }
    if let Some(v) = env.get(env_name) {
        return Some(Sourced {
            value: v.to_owned(),
            source: env_name.to_owned(),
        });
    }
    file.map(|v| Sourced {
        value: v,
        source: format!("`{file_key}` in {}", file_path.display()),
    })
}

/// Resolves every setting of `dials serve`.
pub fn resolve(args: &ServeArgs, env: &Environment) -> Result<Resolved, SettingError> {
    // A file named by --config may say where the data directory is; the data directory's own
    // `dials.toml` cannot.
    let named = match (&args.config, env.get("DIALS_CONFIG")) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(path)) => Some(PathBuf::from(path)),
        (None, None) => None,
    };
    let named_file = match &named {
        Some(path) => Some(read_named_file(path)?),
        None => None,
    };
    let data_dir = match (
        &args.data_dir,
        env.get("DIALS_DATA_DIR"),
        named_file.as_ref().and_then(|f| f.data_dir.as_deref()),
    ) {
        (Some(dir), _, _) => dir.clone(),
        (None, Some(dir), _) => PathBuf::from(dir),
        (None, None, Some(dir)) => PathBuf::from(dir),
        (None, None, None) => PathBuf::from("./dials-data"),
    };
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(SettingError(format!(
            "invalid data directory {}: it exists and is not a directory",
            data_dir.display()
        )));
    }
    let (file_path, file) = match (named, named_file) {
        (Some(path), Some(file)) => (path, file),
        _ => {
            let path = data_dir.join("dials.toml");
            let file = read_file(&path)?;
            if file.data_dir.is_some() {
                return Err(SettingError(format!(
                    "invalid settings file {}: `data_dir` can only be set in a file given with \
                     --config (this one is already inside the data directory)",
                    path.display()
                )));
            }
            (path, file)
        }
    };

    let http = pick(
        args.http.as_deref(),
        "http",
        env,
        "DIALS_HTTP_ADDR",
        file.http,
        "http",
        &file_path,
    );
    let http_addr = match http {
        None => SocketAddr::from(([127, 0, 0, 1], 8081)),
        Some(s) => parse_addr(&s.value).map_err(|why| {
            SettingError(format!(
                "invalid HTTP listen address {:?} ({}): {why}",
                s.value, s.source
            ))
        })?,
    };

    let database = pick(
        args.database.as_deref(),
        "database",
        env,
        "DIALS_DATABASE_URL",
        file.database,
        "database",
        &file_path,
    );
    let database_url = match database {
        None => format!("sqlite://{}", data_dir.join("dials.db").display()),
        Some(s) if s.value.starts_with("sqlite:") || dials_store::is_postgres(&s.value) => s.value,
        Some(s) => {
            return Err(SettingError(format!(
                "invalid database URL {:?} ({}): expected sqlite://PATH or \
                 postgres://[USER@]HOST[:PORT]/DATABASE",
                dials_store::redact_url(&s.value),
                s.source
            )));
        }
    };

    let log = pick(
        args.log_format.as_deref(),
        "log-format",
        env,
        "DIALS_LOG_FORMAT",
        file.log_format,
        "log_format",
        &file_path,
    );
    let log_format = match log {
        None if env.stderr_is_terminal => LogFormat::Pretty,
        None => LogFormat::Json,
        Some(s) => match s.value.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(SettingError(format!(
                    "invalid log format {other:?} ({}): expected `pretty` or `json`",
                    s.source
                )));
            }
        },
    };

    let body = pick(
        args.max_body_bytes.as_deref(),
        "max-body-bytes",
        env,
        "DIALS_MAX_BODY_BYTES",
        file.max_body_bytes
            .map(|v| v.to_string().trim_matches('"').to_owned()),
        "max_body_bytes",
        &file_path,
    );
    let max_body_bytes = match body {
        None => 1024 * 1024,
        Some(s) => s
            .value
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| {
                SettingError(format!(
                    "invalid max body size {:?} ({}): expected a number of bytes, at least 1024",
                    s.value, s.source
                ))
            })?,
    };

    let mqtt = pick(
        args.mqtt.as_deref(),
        "mqtt",
        env,
        "DIALS_MQTT_URL",
        file.mqtt,
        "mqtt",
        &file_path,
    );
    let mqtt = match mqtt {
        None => BrokerSetting::Auto,
        Some(s) => BrokerSetting::parse(&s.value).map_err(|e| {
            // Never echo a URL that may carry a password.
            SettingError(format!("invalid MQTT broker ({}): {e}", s.source))
        })?,
    };
    let prefix = pick(
        args.mqtt_prefix.as_deref(),
        "mqtt-prefix",
        env,
        "DIALS_MQTT_PREFIX",
        file.mqtt_prefix,
        "mqtt_prefix",
        &file_path,
    );
    let mqtt_prefix = match prefix {
        None => String::new(),
        Some(s) if s.value.contains(['+', '#', '\0']) => {
            return Err(SettingError(format!(
                "invalid MQTT topic prefix {:?} ({}): it may not contain +, # or NUL",
                s.value, s.source
            )));
        }
        Some(s) => s.value,
    };

    let ca = pick(
        args.mqtt_ca.as_ref().and_then(|p| p.to_str()),
        "mqtt-ca",
        env,
        "DIALS_MQTT_CA",
        file.mqtt_ca,
        "mqtt_ca",
        &file_path,
    );
    let mqtt_ca = match ca {
        None => None,
        Some(s) if !Path::new(&s.value).is_file() => {
            return Err(SettingError(format!(
                "invalid MQTT CA file {:?} ({}): no such file",
                s.value, s.source
            )));
        }
        Some(s) => Some(PathBuf::from(s.value)),
    };

    let retention = pick(
        args.audit_retention_days.as_deref(),
        "audit-retention-days",
        env,
        "DIALS_AUDIT_RETENTION_DAYS",
        file.audit_retention_days.map(|v| v.to_string()),
        "audit_retention_days",
        &file_path,
    );
    let audit_retention = match retention {
        None => std::time::Duration::from_secs(90 * 24 * 3600),
        Some(s) => match s.value.parse::<u64>() {
            Ok(days) if (1..=36500).contains(&days) => {
                std::time::Duration::from_secs(days * 24 * 3600)
            }
            _ => {
                return Err(SettingError(format!(
                    "invalid audit retention {:?} ({}): expected a number of days, 1 to 36500",
                    s.value, s.source
                )));
            }
        },
    };

    let timeout = pick(
        args.instance_timeout.as_deref(),
        "instance-timeout",
        env,
        "DIALS_INSTANCE_TIMEOUT",
        file.instance_timeout.map(|v| v.to_string()),
        "instance_timeout",
        &file_path,
    );
    let instance_timeout = match timeout {
        None => dials_server::DEFAULT_INSTANCE_TIMEOUT,
        Some(s) => match s.value.parse::<u64>() {
            Ok(secs) if (1..=31_536_000).contains(&secs) => std::time::Duration::from_secs(secs),
            _ => {
                return Err(SettingError(format!(
                    "invalid instance timeout {:?} ({}): expected a number of seconds, 1 to 31536000",
                    s.value, s.source
                )));
            }
        },
    };

    let cert = pick(
        args.tls_cert.as_ref().and_then(|p| p.to_str()),
        "tls-cert",
        env,
        "DIALS_TLS_CERT",
        file.tls_cert,
        "tls_cert",
        &file_path,
    );
    let key = pick(
        args.tls_key.as_ref().and_then(|p| p.to_str()),
        "tls-key",
        env,
        "DIALS_TLS_KEY",
        file.tls_key,
        "tls_key",
        &file_path,
    );
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            for f in [&cert, &key] {
                if !Path::new(&f.value).is_file() {
                    return Err(SettingError(format!(
                        "invalid TLS file {:?} ({}): no such file",
                        f.value, f.source
                    )));
                }
            }
            Some(dials_server::TlsFiles {
                cert: PathBuf::from(cert.value),
                key: PathBuf::from(key.value),
            })
        }
        (Some(only), None) | (None, Some(only)) => {
            return Err(SettingError(format!(
                "incomplete TLS settings ({}): --tls-cert and --tls-key go together",
                only.source
            )));
        }
    };

    let metrics_require_token = flag_setting(
        args.metrics_require_token,
        "metrics-require-token",
        env,
        "DIALS_METRICS_REQUIRE_TOKEN",
        file.metrics_require_token,
    )?;
    let home_assistant = flag_setting(
        args.home_assistant,
        "home-assistant",
        env,
        "DIALS_HOME_ASSISTANT",
        file.home_assistant,
    )?;
    let ha_prefix = pick(
        args.home_assistant_prefix.as_deref(),
        "home-assistant-prefix",
        env,
        "DIALS_HOME_ASSISTANT_PREFIX",
        file.home_assistant_prefix,
        "home_assistant_prefix",
        &file_path,
    );
    let home_assistant_prefix = match ha_prefix {
        None => "homeassistant".to_owned(),
        Some(s) if s.value.is_empty() || s.value.contains(['+', '#', '\0']) => {
            return Err(SettingError(format!(
                "invalid Home Assistant discovery prefix {:?} ({}): it must be a topic without +, # or NUL",
                s.value, s.source
            )));
        }
        Some(s) => s.value.trim_end_matches('/').to_owned(),
    };
    let backup_every = match args
        .backup_every
        .clone()
        .or_else(|| env.get("DIALS_BACKUP_EVERY").map(str::to_owned))
    {
        None => None,
        Some(text) => Some(parse_every(&text).map_err(SettingError)?),
    };
    let backup_keep = match args
        .backup_keep
        .clone()
        .or_else(|| env.get("DIALS_BACKUP_KEEP").map(str::to_owned))
    {
        None => 7,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(SettingError(format!(
                    "invalid --backup-keep {text:?}: expected a number of backups, at least 1"
                )));
            }
        },
    };

    Ok(Resolved {
        server: ServerSettings {
            data_dir,
            http_addr,
            database_url,
            max_body_bytes,
            mqtt,
            mqtt_prefix,
            mqtt_ca,
            key_overrides: dials_server::keys::KeyOverrides {
                signing: env.get("DIALS_SIGNING_KEY").map(str::to_owned),
                master: env.get("DIALS_MASTER_KEY").map(str::to_owned),
                lkg_hmac: env.get("DIALS_LKG_HMAC_KEY").map(str::to_owned),
            },
            audit_retention,
            tls,
            init: args.init,
            metrics_require_token,
            home_assistant,
            home_assistant_prefix,
            instance_timeout,
            backup_every,
            backup_keep,
        },
        log_format,
    })
}

/// An on/off setting: the flag turns it on; else the environment (`true`/`false`, `1`/`0`,
/// `yes`/`no`), else the file, else off.
fn flag_setting(
    flag: bool,
    flag_name: &str,
    env: &Environment,
    env_name: &str,
    file: Option<bool>,
) -> Result<bool, SettingError> {
    if flag {
        return Ok(true);
    }
    match env.get(env_name) {
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(SettingError(format!(
            "invalid value {other:?} for --{flag_name} ({env_name}): expected true or false"
        ))),
        None => Ok(file.unwrap_or(false)),
    }
}

/// The file `--config` names: it must exist.
fn read_named_file(path: &Path) -> Result<FileSettings, SettingError> {
    if !path.is_file() {
        return Err(SettingError(format!(
            "invalid settings file {} (--config or DIALS_CONFIG): no such file",
            path.display()
        )));
    }
    read_file(path)
}

/// Parses a schedule such as `30m`, `6h`, `1d` or `90s` (seconds allowed, for tests and small fleets).
fn parse_every(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 && n > 0 => Ok(std::time::Duration::from_secs(n.saturating_mul(scale))),
        _ => Err(format!(
            "invalid --backup-every {text:?}: expected a duration such as \
             30m, 6h or 1d"
        )),
    }
}

fn read_file(path: &Path) -> Result<FileSettings, SettingError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let first_line = e.message().lines().next().unwrap_or("").to_owned();
            SettingError(format!(
                "invalid settings file {}: {first_line}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(SettingError(format!(
            "cannot read settings file {}: {e}",
            path.display()
        ))),
    }
}

fn parse_addr(raw: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = raw.parse() {
        return Ok(addr);
    }
    if !raw.contains(':') {
        return Err("expected HOST:PORT".into());
    }
    raw.to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| "the host name has no address".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs::default()
    }

    fn with_dir(dir: &Path) -> ServeArgs {
        ServeArgs {
            data_dir: Some(dir.to_owned()),
            ..args()
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolve(&with_dir(dir.path()), &Environment::default()).unwrap();
        assert_eq!(r.server.http_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(
            r.server.database_url,
            format!("sqlite://{}", dir.path().join("dials.db").display())
        );
        assert_eq!(r.server.max_body_bytes, 1024 * 1024);
        assert_eq!(r.log_format, LogFormat::Json, "not a terminal");
    }

    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dials.toml"),
            "http = \"127.0.0.1:7001\"\nlog_format = \"pretty\"\nmax_body_bytes = 4096\n",
        )
        .unwrap();
        let env = Environment::from_pairs(&[("DIALS_HTTP_ADDR", "127.0.0.1:7002")]);
        let from_env = resolve(&with_dir(dir.path()), &env).unwrap();
        assert_eq!(
            from_env.server.http_addr.port(),
            7002,
            "environment beats file"
        );
        assert_eq!(from_env.log_format, LogFormat::Pretty, "file beats default");
        assert_eq!(from_env.server.max_body_bytes, 4096);
        let flag = ServeArgs {
            http: Some("127.0.0.1:7003".into()),
            ..with_dir(dir.path())
        };
        assert_eq!(
            resolve(&flag, &env).unwrap().server.http_addr.port(),
            7003,
            "flag beats all"
        );
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_setting_and_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs(&[("DIALS_HTTP_ADDR", "not-an-address")]);
        let SettingError(msg) = resolve(&with_dir(dir.path()), &env).unwrap_err();
        assert!(
            msg.contains("HTTP listen address") && msg.contains("DIALS_HTTP_ADDR"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));

        let bad_log = ServeArgs {
            log_format: Some("xml".into()),
            ..with_dir(dir.path())
        };
        let SettingError(msg) = resolve(&bad_log, &Environment::default()).unwrap_err();
        assert!(msg.contains("--log-format"), "{msg}");

        let bad_db = ServeArgs {
            database: Some("mysql://x".into()),
            ..with_dir(dir.path())
        };
        let SettingError(msg) = resolve(&bad_db, &Environment::default()).unwrap_err();
        assert!(msg.contains("database URL"), "{msg}");
    }

    #[test]
    fn an_unknown_key_in_the_settings_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dials.toml"), "htp = \"x\"\n").unwrap();
        let SettingError(msg) =
            resolve(&with_dir(dir.path()), &Environment::default()).unwrap_err();
        assert!(msg.contains("dials.toml") && msg.contains("htp"), "{msg}");
    }

    #[test]
    fn the_broker_defaults_to_auto_and_a_bad_one_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = resolve(&with_dir(dir.path()), &Environment::default()).unwrap();
        assert_eq!(r.server.mqtt, BrokerSetting::Auto);
        let env = Environment::from_pairs(&[("DIALS_MQTT_URL", "http://user:secret@x")]);
        let SettingError(msg) = resolve(&with_dir(dir.path()), &env).unwrap_err();
        assert!(
            msg.contains("DIALS_MQTT_URL") && !msg.contains("secret"),
            "{msg}"
        );
        let bad_prefix = ServeArgs {
            mqtt_prefix: Some("a/#".into()),
            ..with_dir(dir.path())
        };
        assert!(resolve(&bad_prefix, &Environment::default()).is_err());
    }

    #[test]
    fn a_file_named_by_config_is_read_and_may_say_where_the_data_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etc-dials.toml");
        let data = dir.path().join("state");
        std::fs::write(
            &file,
            format!(
                "data_dir = {:?}\nhttp = \"127.0.0.1:7010\"\nmetrics_require_token = true\n",
                data.display()
            ),
        )
        .unwrap();
        let a = ServeArgs {
            config: Some(file.clone()),
            ..args()
        };
        let r = resolve(&a, &Environment::default()).unwrap();
        assert_eq!(r.server.data_dir, data);
        assert_eq!(r.server.http_addr.port(), 7010);
        assert!(r.server.metrics_require_token);
        assert!(!r.server.home_assistant);
        assert_eq!(r.server.home_assistant_prefix, "homeassistant");

        let env = Environment::from_pairs(&[
            ("DIALS_METRICS_REQUIRE_TOKEN", "false"),
            ("DIALS_HOME_ASSISTANT", "yes"),
        ]);
        let r = resolve(&a, &env).unwrap();
        assert!(!r.server.metrics_require_token, "environment beats file");
        assert!(r.server.home_assistant);
        let bad = Environment::from_pairs(&[("DIALS_HOME_ASSISTANT", "perhaps")]);
        let SettingError(msg) = resolve(&a, &bad).unwrap_err();
        assert!(msg.contains("DIALS_HOME_ASSISTANT"), "{msg}");

        let missing = ServeArgs {
            config: Some(dir.path().join("nope.toml")),
            ..args()
        };
        let SettingError(msg) = resolve(&missing, &Environment::default()).unwrap_err();
        assert!(
            msg.contains("nope.toml") && msg.contains("--config"),
            "{msg}"
        );
    }

    #[test]
    fn the_data_directorys_own_file_cannot_move_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dials.toml"), "data_dir = \"/elsewhere\"\n").unwrap();
        let SettingError(msg) =
            resolve(&with_dir(dir.path()), &Environment::default()).unwrap_err();
        assert!(
            msg.contains("data_dir") && msg.contains("--config"),
            "{msg}"
        );
    }

    #[test]
    fn the_packaged_settings_file_sets_nothing_and_names_only_known_keys() {
        let text = include_str!("../../../packaging/debian/dials.toml");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dials.toml");
        // Every commented `key = value` line, uncommented, is a valid settings file.
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.contains(" = ") && !l.starts_with(' '))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.lines().count() >= 14, "{uncommented}");
        std::fs::write(&file, &uncommented).unwrap();
        let parsed: FileSettings = toml::from_str(&uncommented).unwrap();
        assert!(parsed.home_assistant.is_some() && parsed.metrics_require_token.is_some());
        // As shipped, it changes nothing.
        assert!(
            text.lines()
                .all(|l| l.trim().is_empty() || l.starts_with('#'))
        );
    }

    #[test]
    fn a_too_small_body_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServeArgs {
            max_body_bytes: Some("10".into()),
            ..with_dir(dir.path())
        };
        assert!(resolve(&a, &Environment::default()).is_err());
    }

    #[test]
    fn a_backup_schedule_reads_seconds_minutes_hours_and_days() {
        assert_eq!(
            super::parse_every("30m"),
            Ok(std::time::Duration::from_secs(1800))
        );
        assert_eq!(
            super::parse_every("6h"),
            Ok(std::time::Duration::from_secs(21_600))
        );
        assert_eq!(
            super::parse_every("1d"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            super::parse_every("60s"),
            Ok(std::time::Duration::from_secs(60))
        );
        assert!(super::parse_every("0s").is_err());
        assert!(super::parse_every("6").is_err());
        assert!(super::parse_every("h").is_err());
        assert!(super::parse_every("1w").is_err());
    }
}
