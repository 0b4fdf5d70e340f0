//! `dials backup create|list|verify|restore`.
//!
//! These commands work on the data directory's files, not over the API: a backup is taken
//! by reading the SQLite file in one read transaction, which is consistent while `dials serve`
//! writes it (so, like `etcdctl snapshot save`, it works against a running server), and needs
//! no token; a restore must replace the file, so it needs the server stopped anyway.

use std::io::IsTerminal;
use std::path::PathBuf;

use dials_server::ServerSettings;
use dials_server::backup::{self, BackupMeta};
use serde_json::json;

use crate::cli::{BackupArgs, BackupCommand, ServeArgs};
use crate::output::outln;
use crate::settings::{Environment, SettingError};

/// The data directory, database and backup folder, resolved as `dials serve` resolves them.
fn settings(args: &BackupArgs) -> anyhow::Result<(ServerSettings, PathBuf, PathBuf)> {
    let serve = ServeArgs {
        data_dir: args.data_dir.clone(),
        database: args.database.clone(),
        ..Default::default()
    };
    let resolved = crate::settings::resolve(&serve, &Environment::from_process())
        .map_err(|SettingError(message)| anyhow::anyhow!(message))?;
    let settings = resolved.server;
    let db = backup::database_path(&settings.database_url)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| backup::default_dir(&settings.data_dir));
    Ok((settings, db, dir))
}

pub async fn run(command: BackupCommand) -> anyhow::Result<bool> {
    match &command {
        BackupCommand::Create(args) | BackupCommand::List(args) if online(args) => {
            return over_the_api(&command).await;
        }
        _ => {}
    }
    // File work, off the runtime's thread.
    tokio::task::spawn_blocking(move || run_blocking(command)).await?
}

/// Whether `create`/`list` go to a server: a server or a token was given (flag or environment).
fn online(args: &BackupArgs) -> bool {
    let client = client_args(args);
    crate::client::explicit_server(&client).is_some()
        || client.token.is_some()
        || std::env::var("DIALS_TOKEN").is_ok_and(|t| !t.is_empty())
}

fn client_args(args: &BackupArgs) -> crate::cli::ClientArgs {
    crate::cli::ClientArgs {
        server: args.server.clone(),
        token: args.token.clone(),
        data_dir: args.data_dir.clone(),
        json: args.json,
    }
}

/// `create` and `list` through `POST`/`GET /api/v1/backups`: the server writes the backup into
/// its own backup folder.
async fn over_the_api(command: &BackupCommand) -> anyhow::Result<bool> {
    let args = match command {
        BackupCommand::Create(args) | BackupCommand::List(args) => args,
        _ => return Ok(false),
    };
    if args.dir.is_some() {
        return Err(crate::client::usage(
            "--dir is for backups on the data directory; over the API the server writes into \
             its own backup folder",
        ));
    }
    let api = crate::client::Api::from_args(&client_args(args))?;
    let show = |entry: &dials_wire::BackupEntry| match (&entry.metadata, &entry.error) {
        (Some(m), _) => outln!(
            "{:<24} {:>9} {:>12}  {:<36}  {}",
            m.created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            m.revision,
            m.size,
            m.epoch,
            entry.path
        ),
        (None, error) => outln!(
            "{:<24} {:>9} {:>12}  {:<36}  {} ({})",
            "?",
            "?",
            "?",
            "?",
            entry.path,
            error.as_deref().unwrap_or("no metadata")
        ),
    };
    match command {
        BackupCommand::Create(_) => {
            let entry: dials_wire::BackupEntry = api
                .call(api.request(reqwest::Method::POST, "/api/v1/backups"))
                .await?;
            if args.json {
                outln!("{}", serde_json::to_string(&entry)?);
            } else if let Some(meta) = &entry.metadata {
                outln!(
                    "backup {} (revision {}, epoch {}, {} bytes, sha256 {})",
                    entry.path,
                    meta.revision,
                    meta.epoch,
                    meta.size,
                    meta.sha256
                );
            }
        }
        _ => {
            let all: Vec<dials_wire::BackupEntry> = api.get("/api/v1/backups").await?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                outln!(
                    "{:<24} {:>9} {:>12}  {:<36}  FILE",
                    "TAKEN",
                    "REVISION",
                    "BYTES",
                    "EPOCH"
                );
                all.iter().for_each(show);
            }
        }
    }
    Ok(true)
}

fn run_blocking(command: BackupCommand) -> anyhow::Result<bool> {
    match command {
        BackupCommand::Create(args) => {
            let (_, db, dir) = settings(&args)?;
            let bar = progress_bar();
            let (file, meta) = backup::create(&db, &dir, &|written, total| {
                if let Some(bar) = &bar {
                    bar.set_length(total.max(1));
                    bar.set_position(written);
                }
            })?;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if args.json {
                outln!("{}", json_of(&file, Ok(&meta)));
            } else {
                outln!(
                    "backup {} (revision {}, epoch {}, {} bytes, sha256 {})",
                    file.display(),
                    meta.revision,
                    meta.epoch,
                    meta.size,
                    meta.sha256
                );
            }
            Ok(true)
        }
        BackupCommand::List(args) => {
            let (_, _, dir) = settings(&args)?;
            let all = backup::list(&dir)?;
            if args.json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|(file, meta)| json_of(file, meta.as_ref()))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                outln!(
                    "{:<24} {:>9} {:>12}  {:<36}  FILE",
                    "TAKEN",
                    "REVISION",
                    "BYTES",
                    "EPOCH"
                );
                for (file, meta) in &all {
                    match meta {
                        Ok(m) => outln!(
                            "{:<24} {:>9} {:>12}  {:<36}  {}",
                            m.created_at
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            m.revision,
                            m.size,
                            m.epoch,
                            file.display()
                        ),
                        Err(e) => outln!(
                            "{:<24} {:>9} {:>12}  {:<36}  {} ({e:#})",
                            "?",
                            "?",
                            "?",
                            "?",
                            file.display()
                        ),
                    }
                }
            }
            Ok(true)
        }
        BackupCommand::Verify { file, args } => {
            let meta = backup::verify(&file)?;
            if args.json {
                outln!("{}", json_of(&file, Ok(&meta)));
            } else {
                outln!(
                    "{} is sound: revision {}, epoch {}, schema version {}, sha256 {}",
                    file.display(),
                    meta.revision,
                    meta.epoch,
                    meta.schema_version,
                    meta.sha256
                );
            }
            Ok(true)
        }
        BackupCommand::Restore { file, args } => {
            let (settings, db, _) = settings(&args)?;
            let restored = backup::restore(&settings.data_dir, &db, &file)?;
            if args.json {
                outln!(
                    "{}",
                    json!({
                        "restored": file,
                        "revision": restored.backup.revision,
                        "backup_epoch": restored.backup.epoch,
                        "epoch": restored.epoch,
                        "replaced": restored.replaced,
                    })
                );
            } else {
                outln!(
                    "restored {} (revision {}) into {} with the new epoch {}",
                    file.display(),
                    restored.backup.revision,
                    db.display(),
                    restored.epoch
                );
                if let Some(aside) = &restored.replaced {
                    outln!("the replaced database is kept as {}", aside.display());
                }
                outln!("start dials again; every service re-reads its config");
            }
            Ok(true)
        }
    }
}

fn json_of(file: &std::path::Path, meta: Result<&BackupMeta, &anyhow::Error>) -> serde_json::Value {
    match meta {
        Ok(meta) => json!({ "path": file, "metadata": meta }),
        Err(e) => json!({ "path": file, "error": format!("{e:#}") }),
    }
}

/// A byte progress bar on stderr when it is a terminal; nothing otherwise.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(1);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "backing up {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
