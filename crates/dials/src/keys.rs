//! `dials keys show|rotate`: the data directory's keys, read and replaced offline.

use std::path::Path;

use anyhow::{Context, bail};
use dials_server::keys::{
    KeyOverrides, SIGNING_GRACE, lkg_root_key, master_keyring, retired_signing_keys,
    rotate_master_key, rotate_signing_key, signing_key,
};
use dials_server::{DataDirLock, ServerSettings, open_store};
use serde_json::{Value, json};

use crate::cli::{KeysArgs, KeysCommand, ServeArgs};
use crate::settings::{Environment, SettingError};

/// The settings the key commands share with `dials serve`: data directory, database and the
/// key overrides, from flags, environment and `dials.toml` alike.
fn settings(args: &KeysArgs) -> anyhow::Result<ServerSettings> {
    let serve = ServeArgs {
        data_dir: args.data_dir.clone(),
        database: args.database.clone(),
        ..Default::default()
    };
    let resolved = crate::settings::resolve(&serve, &Environment::from_process())
        .map_err(|SettingError(message)| anyhow::anyhow!(message))?;
    let settings = resolved.server;
    if !settings.data_dir.join("keys").join("signing.key").is_file() {
        bail!(
            "{} has no keys: start dials there once, or pass --data-dir",
            settings.data_dir.display()
        );
    }
    Ok(settings)
}

pub async fn run(command: KeysCommand) -> anyhow::Result<bool> {
    match command {
        KeysCommand::Show(args) => {
            let settings = settings(&args)?;
            let rows = show(&settings).await?;
            if args.json {
                crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                crate::output::outln!("{:<9} {:<16} {:<8} DETAIL", "KEY", "ID", "STATUS");
                for row in &rows {
                    crate::output::outln!(
                        "{:<9} {:<16} {:<8} {}",
                        row["key"].as_str().unwrap_or_default(),
                        row["key_id"].as_str().unwrap_or_default(),
                        row["status"].as_str().unwrap_or_default(),
                        detail(row),
                    );
                }
            }
            Ok(true)
        }
        KeysCommand::Rotate { which, args } if which == "master" => {
            let settings = settings(&args)?;
            if settings.key_overrides.master.is_some() {
                bail!(
                    "the master key comes from DIALS_MASTER_KEY, not keys/master.key: to rotate it, \
                     put a new key first (DIALS_MASTER_KEY=NEW,OLD) and restart dials, which \
                     reseals every secret with NEW at start; then drop OLD"
                );
            }
            let _lock = DataDirLock::acquire(&settings.data_dir)?;
            let store = open_store(&settings.database_url).await?;
            let rotated = rotate_master_key(&settings.data_dir, store.as_ref()).await;
            store.close().await;
            let rotated = rotated?;
            if args.json {
                crate::output::outln!(
                    "{}",
                    json!({"key": "master", "old_key_id": rotated.old_key_id,
                           "new_key_id": rotated.new_key_id, "resealed": rotated.resealed})
                );
            } else {
                crate::output::outln!(
                    "master key rotated: {} -> {}",
                    rotated.old_key_id,
                    rotated.new_key_id
                );
                crate::output::outln!(
                    "{} secret value{} resealed with {}; the old key is gone",
                    rotated.resealed,
                    if rotated.resealed == 1 { "" } else { "s" },
                    rotated.new_key_id
                );
            }
            Ok(true)
        }
        KeysCommand::Rotate { args, .. } => {
            let settings = settings(&args)?;
            if settings.key_overrides.signing.is_some() {
                bail!(
                    "the signing key comes from DIALS_SIGNING_KEY, not keys/signing.key: set a new \
                     one there instead"
                );
            }
            let (old, new) = rotate_signing_key(&settings.data_dir)?;
            if args.json {
                crate::output::outln!(
                    "{}",
                    json!({"key": "signing", "old_key_id": old, "new_key_id": new})
                );
            } else {
                crate::output::outln!("signing key rotated: {old} -> {new}");
                crate::output::outln!(
                    "restart dials to sign with the new key; {old} stays listed for 7 days, and \
                     services that trust it follow the rotation statement it signed"
                );
            }
            Ok(true)
        }
    }
}

/// One row per key, current first within each kind.
async fn show(settings: &ServerSettings) -> anyhow::Result<Vec<Value>> {
    let dir = &settings.data_dir;
    let overrides: &KeyOverrides = &settings.key_overrides;
    let source = |env: &Option<String>, file: &str| match env {
        Some(_) => "environment".to_owned(),
        None => format!("keys/{file}"),
    };
    let mut rows = Vec::new();
    let current = signing_key(dir, overrides.signing.as_deref())?;
    rows.push(json!({
        "key": "signing", "key_id": current.key_id(), "status": "current",
        "public_key": current.public_key_base64(),
        "source": source(&overrides.signing, "signing.key"),
    }));
    if overrides.signing.is_none() {
        for k in retired_signing_keys(dir)? {
            rows.push(json!({
                "key": "signing", "key_id": k.key_id, "status": "retired",
                "public_key": k.public_key,
                "trusted_until": (k.retired_at + SIGNING_GRACE).to_string(),
            }));
        }
    }
    let ring = master_keyring(dir, overrides.master.as_deref())?;
    let sealed = secrets_per_key(&settings.database_url).await?;
    for (i, id) in ring.ids().into_iter().enumerate() {
        rows.push(json!({
            "key": "master", "key_id": id,
            "status": if i == 0 { "current" } else { "older" },
            "secrets": sealed.iter().find(|(k, _)| k == id).map_or(0, |(_, n)| *n),
            "source": source(&overrides.master, "master.key"),
        }));
    }
    for (id, n) in sealed.iter().filter(|(k, _)| !ring.has(k)) {
        rows.push(json!({
            "key": "master", "key_id": id, "status": "missing", "secrets": n,
        }));
    }
    let lkg = lkg_root_key(dir, overrides.lkg_hmac.as_deref())?;
    rows.push(json!({
        "key": "lkg-hmac", "key_id": lkg.id(), "status": "current",
        "source": source(&overrides.lkg_hmac, "lkg-hmac.key"),
    }));
    Ok(rows)
}

/// How many secrets each master key seals, from the database if there is one.
async fn secrets_per_key(database_url: &str) -> anyhow::Result<Vec<(String, u64)>> {
    if let Some(path) = database_url.strip_prefix("sqlite://")
        && !Path::new(path).exists()
    {
        return Ok(Vec::new());
    }
    let store = open_store(database_url).await?;
    let counts = store
        .secret_key_ids()
        .await
        .context("cannot count the secrets");
    store.close().await;
    counts
}

fn detail(row: &Value) -> String {
    match row["key"].as_str() {
        Some("signing") => match row["trusted_until"].as_str() {
            Some(until) => format!(
                "{} (trusted until {until})",
                row["public_key"].as_str().unwrap_or_default()
            ),
            None => row["public_key"].as_str().unwrap_or_default().to_owned(),
        },
        Some("master") => {
            let n = row["secrets"].as_u64().unwrap_or(0);
            let what = format!("seals {n} secret value{}", if n == 1 { "" } else { "s" });
            match row["status"].as_str() {
                Some("missing") => format!("{what}: this key is not available"),
                _ => what,
            }
        }
        Some("lkg-hmac") => "derives each service's last-known-good key".to_owned(),
        _ => String::new(),
    }
}
