//! SQLite database files as whole files: a consistent copy of a live database, the facts a
//! copy holds (epoch, latest revision, schema version), its integrity check, and a new epoch
//! for a copy that is about to become the database again.
//!
//! The copy is `VACUUM INTO` on a connection of its own that only reads the source: it runs in
//! one read transaction, so it sees one committed state while the server's writer carries on
//! (WAL lets readers and the writer work side by side), and it never becomes a second writer
//! of the live file.

use std::path::Path;
use std::time::Duration;

use dials_domain::Epoch;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use uuid::Uuid;

use crate::{Result, StoreError};

/// What a database file holds, as read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The epoch of the database's life.
    pub epoch: Epoch,
    /// The latest revision committed (0 when nothing was).
    pub revision: u64,
    /// The latest schema migration applied.
    pub schema_version: i64,
}

/// The newest database schema version this binary knows; a database below it is migrated
/// at start, one above it is refused ([`StoreError::NewerSchema`]).
pub fn known_schema_version() -> i64 {
    crate::sqlite::known_schema_version()
}

/// The migrations this binary knows that the database at `file` has not had yet (empty for a
/// database that has none at all: a new one is created, not migrated).
pub fn pending_migrations(file: &Path) -> Result<Vec<i64>> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = conn
        .prepare("SELECT version FROM _sqlx_migrations WHERE success = 1")
        .map_err(not_dials(file))?;
    let applied = statement
        .query_map([], |r| r.get::<_, i64>(0))?
        .collect::<std::result::Result<std::collections::HashSet<i64>, _>>()?;
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    Ok(crate::sqlite::known_migrations()
        .into_iter()
        .filter(|v| !applied.contains(v))
        .collect())
}

/// Writes a consistent copy of the database at `source` to `dest`, which must not exist.
/// Safe while a server writes the source.
pub fn copy_live(source: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(StoreError::Aborted(format!(
            "{} already exists",
            dest.display()
        )));
    }
    // Read-write flags without create: a WAL database needs its shared-memory file, which a
    // read-only connection may not be able to set up; nothing here writes the source.
    let conn = open(source, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| StoreError::Aborted(format!("{} is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_text])?;
    Ok(())
}

/// Reads the epoch, latest revision and schema version of a database file.
pub fn facts(file: &Path) -> Result<Facts> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let epoch: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(not_dials(file))?;
    let epoch =
        epoch.ok_or_else(|| StoreError::Corrupt(format!("{} holds no epoch", file.display())))?;
    let epoch = Uuid::parse_str(&epoch)
        .map_err(|e| StoreError::Corrupt(format!("epoch {epoch:?}: {e}")))?;
    let revision: i64 = conn
        .query_row("SELECT COALESCE(MAX(revision), 0) FROM changes", [], |r| {
            r.get(0)
        })
        .map_err(not_dials(file))?;
    let schema_version: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = 1",
            [],
            |r| r.get(0),
        )
        .map_err(not_dials(file))?;
    Ok(Facts {
        epoch: Epoch(epoch),
        revision: u64::try_from(revision).unwrap_or(0),
        schema_version,
    })
}

/// Runs `PRAGMA integrity_check`: an empty list when the file is sound, else SQLite's findings.
pub fn integrity_problems(file: &Path) -> Result<Vec<String>> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = conn.prepare("PRAGMA integrity_check")?;
    let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}

/// Gives the database at `file` (not in use by any server) a new random epoch, and returns it.
/// Receivers that knew the old epoch re-read everything over REST instead of comparing
/// versions across two lives of the database.
pub fn renew_epoch(file: &Path) -> Result<Epoch> {
    let conn = open(file, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let epoch = Epoch::new_random();
    let changed = conn.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'epoch'",
        [epoch.to_string()],
    )?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "{} holds no epoch",
            file.display()
        )));
    }
    // Leave a single file behind: everything in the main file, no WAL beside it.
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(epoch)
}

fn open(file: &Path, flags: OpenFlags) -> Result<Connection> {
    if !file.is_file() {
        return Err(StoreError::Aborted(format!(
            "{} is not a file",
            file.display()
        )));
    }
    let conn = Connection::open_with_flags(file, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// A query on a file that is not a dials database (or not a database) says so.
fn not_dials(file: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{} is not a dials database: {e}", file.display()))
}
