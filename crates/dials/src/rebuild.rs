//! `dials rebuild`: a new database from the manager's signed snapshot, with the server stopped.

use dials_server::data_dir::DataDirLock;
use serde_json::json;

use crate::cli::{RebuildArgs, ServeArgs};
use crate::output::outln;
use crate::settings::{Environment, SettingError};

pub async fn run(args: RebuildArgs) -> anyhow::Result<bool> {
    let serve = ServeArgs {
        data_dir: args.data_dir.clone(),
        database: args.database.clone(),
        ..Default::default()
    };
    let settings = crate::settings::resolve(&serve, &Environment::from_process())
        .map_err(|SettingError(message)| anyhow::anyhow!(message))?
        .server;
    let _lock = DataDirLock::acquire(&settings.data_dir)?;
    let keys = dials_server::keys::ServerKeys::load(&settings.data_dir, &settings.key_overrides)?;
    let rebuilt = dials_server::snapshot::rebuild(&settings, &keys, &args.reason).await?;
    if args.json {
        outln!("{}", json!(rebuilt));
    } else {
        outln!(
            "rebuilt {} services from the snapshot of revision {} (taken {}) with the new epoch {}",
            rebuilt.services,
            rebuilt.snapshot_revision,
            rebuilt
                .snapshot_taken_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            rebuilt.epoch
        );
        if let Some(aside) = &rebuilt.broken_database {
            outln!("the old database is kept as {}", aside.display());
        }
        for lost in &rebuilt.secrets_lost {
            outln!("secret {lost} was only in the old database: set it again");
        }
        outln!(
            "what happened is written in {}",
            rebuilt.tombstone.display()
        );
        outln!("start dials again; every service re-reads its config");
    }
    Ok(true)
}
