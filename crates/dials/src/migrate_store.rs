//! `dials migrate-store`: a whole installation copied from one database into an empty one,
//! then checked.

use std::path::Path;

use anyhow::{Context, bail};
use dials_server::data_dir::DataDirLock;
use dials_store::Dump;
use serde_json::json;

use crate::cli::MigrateStoreArgs;
use crate::output::outln;

pub async fn run(args: MigrateStoreArgs) -> anyhow::Result<bool> {
    let (from, to) = (args.from.as_str(), args.to.as_str());
    let (shown_from, shown_to) = (dials_store::redact_url(from), dials_store::redact_url(to));
    if from == to {
        bail!("--from and --to name the same database {shown_from}");
    }
    // A SQLite source must exist (opening would create an empty one), and no dials may write to
    // it meanwhile: its data directory is locked as `dials serve` locks it.
    let _lock = match sqlite_file(from) {
        Some(file) => {
            if !file.is_file() {
                bail!("there is no database at {}", file.display());
            }
            let dir = file.parent().unwrap_or(Path::new("."));
            Some(DataDirLock::acquire(dir)?)
        }
        None => None,
    };
    let source = dials_store::open(from)
        .await
        .with_context(|| format!("cannot open the source database {shown_from}"))?;
    let dump = source
        .export()
        .await
        .with_context(|| format!("cannot read {shown_from}"));
    source.close().await;
    let dump = dump?;

    let target = dials_store::open(to)
        .await
        .with_context(|| format!("cannot open the target database {shown_to}"))?;
    let imported = target.import_all(&dump).await;
    target.close().await;
    imported.with_context(|| format!("cannot copy into {shown_to}"))?;

    // Read back through a fresh open, as `dials serve` will.
    let target = dials_store::open(to)
        .await
        .with_context(|| format!("cannot open the target database {shown_to} again"))?;
    let copied = target.export().await;
    let epoch = target.epoch();
    target.close().await;
    let copied = copied.with_context(|| format!("cannot read back {shown_to}"))?;
    let problems = differences(&dump, &copied, epoch);
    if !problems.is_empty() {
        bail!(
            "the copy in {shown_to} differs from {shown_from}: {}",
            problems.join("; ")
        );
    }

    let counts = dump.counts();
    if args.json {
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(what, n)| ((*what).to_owned(), json!(n)))
            .collect();
        outln!(
            "{}",
            json!({
                "from": shown_from,
                "to": shown_to,
                "epoch": dump.epoch.to_string(),
                "revision": dump.revision,
                "copied": counts,
                "checked": true,
            })
        );
    } else {
        outln!("copied {shown_from} to {shown_to} and checked the copy:");
        for (what, n) in &counts {
            outln!("  {n:>8} {what}");
        }
        outln!(
            "epoch {} and latest revision {} kept; start dials with --database {shown_to}",
            dump.epoch,
            dump.revision
        );
    }
    Ok(true)
}

/// The file a `sqlite://` URL names.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    Some(std::path::PathBuf::from(path))
}

/// What differs between the source and the copy read back: counts, revision, epoch and every
/// service's current state.
fn differences(source: &Dump, copy: &Dump, opened_epoch: dials_domain::Epoch) -> Vec<String> {
    let mut problems = Vec::new();
    for ((what, want), (_, got)) in source.counts().iter().zip(copy.counts()) {
        if *want != got {
            problems.push(format!("{what}: {want} in the source, {got} in the copy"));
        }
    }
    if source.revision != copy.revision {
        problems.push(format!(
            "latest revision {} in the source, {} in the copy",
            source.revision, copy.revision
        ));
    }
    if source.epoch != copy.epoch || source.epoch != opened_epoch {
        problems.push(format!(
            "epoch {} in the source, {} in the copy",
            source.epoch, opened_epoch
        ));
    }
    for (want, got) in source.services.iter().zip(&copy.services) {
        if want != got {
            problems.push(format!("service {} is not the same", want.name));
        }
    }
    problems
}
