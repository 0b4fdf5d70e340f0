//! Backups of the SQLite database: create (online, consistent), list, verify, restore
//! (offline, with a new epoch), and the schedule `dials serve --backup-every` runs.
//!
//! A backup is two files in the backup folder (`<data-dir>/backups` unless told otherwise):
//! `dials-<time>-r<revision>.db`, a complete SQLite database, and `<same>.db.json`, its
//! metadata: epoch, revision, schema version, time, the version of dials that wrote it, size
//! and SHA-256. The database file is written under a `.partial` name and renamed when complete,
//! so a listing never shows half a backup.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use dials_wire::backup::BackupMetaError;

use crate::data_dir::{DataDirLock, replace_file};

pub use dials_wire::backup::{BackupMeta, METADATA_FORMAT};

/// The file a backup's metadata lives in: the backup's path with `.json` added.
pub fn metadata_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// The backup folder when none is given: `<data-dir>/backups`.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("backups")
}

/// The file a `sqlite://PATH` database URL names; other URLs have no file to back up.
pub fn database_path(url: &str) -> anyhow::Result<PathBuf> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        bail!(
            "this needs a SQLite database (backups, restores, `dials rebuild` and the read-only \
             mode work on its file); {} is not one",
            dials_store::redact_url(url)
        );
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        bail!("the database {url} has no file to back up");
    }
    Ok(PathBuf::from(path))
}

/// Takes a consistent backup of the database file `db` into `dir` (created if missing), safe
/// while `dials serve` runs on it. `progress(written, total)` is called a few times a second
/// with the bytes written so far and the size of the source.
pub fn create(
    db: &Path,
    dir: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<(PathBuf, BackupMeta)> {
    if !db.is_file() {
        bail!("there is no database at {}", db.display());
    }
    crate::data_dir::create_private_dir(dir)?;
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    let partial = dir.join(format!("dials-{stamp}.db.partial"));
    let total = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal_path(db))
            .map(|m| m.len())
            .unwrap_or(0);
    let copied = std::thread::scope(|scope| {
        let copy = scope.spawn(|| dials_store::backup::copy_live(db, &partial));
        while !copy.is_finished() {
            let written = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            progress(written.min(total), total);
            std::thread::sleep(Duration::from_millis(200));
        }
        copy.join()
    });
    let copied = match copied {
        Ok(result) => result,
        Err(_) => Err(dials_store::StoreError::Aborted("the copy panicked".into())),
    };
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot back up {}", db.display()));
    }
    let result = finish(&partial, dir, &stamp, now);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let (file, meta) = result?;
    progress(meta.size, meta.size);
    Ok((file, meta))
}

/// Names, checksums and describes a complete copy, then makes it visible.
fn finish(
    partial: &Path,
    dir: &Path,
    stamp: &str,
    now: OffsetDateTime,
) -> anyhow::Result<(PathBuf, BackupMeta)> {
    set_private(partial)?;
    std::fs::File::open(partial)?.sync_all()?;
    let facts = dials_store::backup::facts(partial)?;
    let (size, sha256) = checksum(partial)?;
    let name = format!("dials-{stamp}-r{}.db", facts.revision);
    let file = dir.join(&name);
    let meta = BackupMeta {
        format: METADATA_FORMAT,
        file: name,
        epoch: facts.epoch.0,
        revision: facts.revision,
        schema_version: facts.schema_version,
        created_at: now,
        dials_version: env!("CARGO_PKG_VERSION").to_owned(),
        size,
        sha256,
    };
    replace_file(
        &metadata_path(&file),
        &(serde_json::to_string_pretty(&meta)? + "\n"),
    )?;
    std::fs::rename(partial, &file)
        .with_context(|| format!("cannot name the backup {}", file.display()))?;
    sync_dir(dir);
    Ok((file, meta))
}

/// The backups in `dir`, oldest first, each with its metadata (or why it cannot be read).
pub fn list(dir: &Path) -> anyhow::Result<Vec<(PathBuf, anyhow::Result<BackupMeta>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "db") && p.is_file())
        .collect();
    // Names start with the time, so the name order is the time order.
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| {
            let meta = read_metadata(&file);
            (file, meta)
        })
        .collect())
}

/// Reads the metadata file beside a backup.
pub fn read_metadata(file: &Path) -> anyhow::Result<BackupMeta> {
    let path = metadata_path(file);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the metadata {}", path.display()))?;
    let meta = BackupMeta::parse(text.as_bytes()).map_err(|e| match e {
        BackupMetaError::Malformed(reason) => {
            anyhow::anyhow!(reason).context(format!("invalid metadata {}", path.display()))
        }
        BackupMetaError::UnknownFormat(format) => anyhow::anyhow!(
            "the metadata {} has format {format}; this dials reads format {METADATA_FORMAT}",
            path.display()
        ),
    })?;
    Ok(meta)
}

/// Checks a backup: its size and SHA-256 against the metadata, SQLite's integrity check, and
/// the epoch, revision and schema version inside against the metadata. Returns the metadata.
pub fn verify(file: &Path) -> anyhow::Result<BackupMeta> {
    if !file.is_file() {
        bail!("there is no backup at {}", file.display());
    }
    let meta = read_metadata(file)?;
    let (size, sha256) = checksum(file)?;
    if size != meta.size || sha256 != meta.sha256 {
        bail!(
            "{} does not match its metadata: {size} bytes with SHA-256 {sha256}, expected \
             {} bytes with {}; the file is damaged",
            file.display(),
            meta.size,
            meta.sha256
        );
    }
    let problems = dials_store::backup::integrity_problems(file)?;
    if !problems.is_empty() {
        bail!(
            "{} fails SQLite's integrity check: {}",
            file.display(),
            problems.join("; ")
        );
    }
    let facts = dials_store::backup::facts(file)?;
    if facts.epoch.0 != meta.epoch
        || facts.revision != meta.revision
        || facts.schema_version != meta.schema_version
    {
        bail!(
            "{} holds epoch {}, revision {}, schema version {}, but its metadata says epoch {}, \
             revision {}, schema version {}",
            file.display(),
            facts.epoch,
            facts.revision,
            facts.schema_version,
            meta.epoch,
            meta.revision,
            meta.schema_version
        );
    }
    Ok(meta)
}

/// Before a database written by an older dials is migrated at start, takes a backup of it
/// (into `<data-dir>/backups`), so the migration can be undone by restoring it with the older
/// binary. Returns the backup's path when one was needed. A database newer than this binary
/// is left alone here: opening it is refused with one clear line.
pub fn before_migrating(data_dir: &Path, database_url: &str) -> anyhow::Result<Option<PathBuf>> {
    let Ok(db) = database_path(database_url) else {
        return Ok(None);
    };
    if std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(None);
    }
    // What cannot be read here (not a dials database, unreadable) the store's open reports.
    let Ok(pending) = dials_store::backup::pending_migrations(&db) else {
        return Ok(None);
    };
    let Ok(facts) = dials_store::backup::facts(&db) else {
        return Ok(None);
    };
    let known = dials_store::backup::known_schema_version();
    if pending.is_empty() || facts.schema_version > known {
        return Ok(None);
    }
    let (file, _) = create(&db, &default_dir(data_dir), &|_, _| {}).with_context(|| {
        format!("cannot take a backup before migrating the database to schema version {known}")
    })?;
    tracing::info!(
        from = facts.schema_version, to = known, ?pending, backup = %file.display(),
        "the database was written by an older dials: backed up before migrating"
    );
    Ok(Some(file))
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's metadata.
    pub backup: BackupMeta,
    /// The restored database's new epoch.
    pub epoch: Uuid,
    /// Where the replaced database was kept, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Replaces the database `db` of the data directory with a verified backup, offline: refuses
/// while a server holds the data directory. The replaced database (with its WAL) is kept aside
/// as `<db>.replaced-<time>`, and the restored one gets a new epoch.
pub fn restore(data_dir: &Path, db: &Path, file: &Path) -> anyhow::Result<Restored> {
    let _lock = DataDirLock::acquire(data_dir)?;
    let backup = verify(file)?;
    let folder = db.parent().unwrap_or(Path::new("."));
    let mut staging = db.as_os_str().to_owned();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(file, &staging)
        .with_context(|| format!("cannot copy {} to {}", file.display(), staging.display()))?;
    set_private(&staging)?;
    let epoch = match dials_store::backup::renew_epoch(&staging) {
        Ok(epoch) => epoch,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e).context("cannot give the restored database a new epoch");
        }
    };
    std::fs::File::open(&staging)?.sync_all()?;
    let replaced = if db.exists() {
        let now = OffsetDateTime::now_utc();
        let stamp = now
            .format(&Rfc3339)
            .unwrap_or_else(|_| now.unix_timestamp().to_string());
        let mut aside = db.as_os_str().to_owned();
        aside.push(format!(".replaced-{stamp}"));
        let aside = PathBuf::from(aside);
        // The WAL and shared-memory files travel with their database: the WAL of a server
        // that was killed holds committed writes the main file lacks.
        for suffix in ["-wal", "-shm"] {
            let from = with_suffix(db, suffix);
            if from.exists() {
                std::fs::rename(&from, with_suffix(&aside, suffix))
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
        std::fs::rename(db, &aside)
            .with_context(|| format!("cannot move {} aside", db.display()))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, db)
        .with_context(|| format!("cannot put the restored database at {}", db.display()))?;
    sync_dir(folder);
    Ok(Restored {
        backup,
        epoch: epoch.0,
        replaced,
    })
}

/// Deletes the oldest backups in `dir` beyond the newest `keep`, with their metadata; returns
/// the files deleted.
pub fn prune(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let all = list(dir)?;
    let excess = all.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for (file, _) in all.into_iter().take(excess) {
        std::fs::remove_file(&file)
            .with_context(|| format!("cannot delete the old backup {}", file.display()))?;
        let _ = std::fs::remove_file(metadata_path(&file));
        deleted.push(file);
    }
    Ok(deleted)
}

/// A backup every `every`, keeping the newest `keep`: what `dials serve --backup-every` runs.
/// A failed backup is logged and tried again at the next tick.
pub async fn backup_forever(db: PathBuf, dir: PathBuf, every: Duration, keep: usize) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (db, dir) = (db.clone(), dir.clone());
        let done = tokio::task::spawn_blocking(move || {
            let made = create(&db, &dir, &|_, _| {})?;
            let pruned = prune(&dir, keep)?;
            anyhow::Ok((made, pruned))
        })
        .await;
        match done {
            Ok(Ok(((file, meta), pruned))) => tracing::info!(
                file = %file.display(), revision = meta.revision, size = meta.size,
                pruned = pruned.len(), "backup taken"
            ),
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "scheduled backup failed"),
            Err(e) => tracing::warn!(error = %e, "scheduled backup failed"),
        }
    }
}

/// Size and SHA-256 (lowercase hex) of a file.
fn checksum(file: &Path) -> anyhow::Result<(u64, String)> {
    let mut f =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn wal_path(db: &Path) -> PathBuf {
    with_suffix(db, "-wal")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn set_private(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", file.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
}
