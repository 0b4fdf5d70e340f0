//! The SQLite backend: WAL journal, `synchronous=FULL` so that an acknowledged write survives a
//! power cut, one writer thread that commits writes in groups ([`writer`]) and a small pool of
//! readers.
//!
//! Two drivers share one SQLite library: reads (and the schema migrations) go through sqlx's
//! async pool, writes through rusqlite on the writer's own thread, where a statement is a plain
//! function call instead of a hop to a worker thread and back.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dials_domain::{ChangeKind, Document, Epoch, Revision, ServiceName, Version};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    AuditQuery, AuditRecord, ChangeRecord, Committed, HistoryQuery, HistoryRecord, InstanceLimits,
    InstanceReport, NewChange, OutboxItem, QueuedCommit, RecordedReports, Redaction, ResealFn,
    Result, SchemaRecord, SecretRecord, ServiceState, SessionRecord, StoreError, TokenRecord,
    VersionRecord,
};
use crate::{
    ConfigReads, ConfigWrites, Database, InstanceStore, OutboxStore, SecretStore, SecurityStore,
};

mod configs;
mod instances;
mod outbox;
mod profiles;
mod secrets;
mod security;
mod transfer;
mod writer;

use writer::Writer;
pub use writer::WriterStats;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Readers run beside the one writer; WAL lets them read while it writes.
const READERS: u32 = 4;

/// A [`Store`](crate::Store) on one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    heads: Arc<Heads>,
    readers: SqlitePool,
    epoch: Epoch,
    created: bool,
    /// The database file and its identity when opened.
    file: Arc<(std::path::PathBuf, FileId)>,
}

/// The newest state of each service this process has read or written.
///
/// The writer thread is the only writer of the file, so the state it just committed is the
/// state of the service until its next commit: a write reads it here instead of asking the
/// database again. Entries only move forward (by version), so a read that raced a commit cannot
/// put an older state over a newer one.
#[derive(Debug, Default)]
struct Heads {
    states: std::sync::Mutex<HashMap<ServiceName, ServiceState>>,
}

impl Heads {
    fn get(&self, name: &ServiceName) -> Option<ServiceState> {
        self.lock().get(name).cloned()
    }

    /// Keeps `state` unless a newer one is known.
    fn offer(&self, state: ServiceState) {
        let mut states = self.lock();
        match states.get(&state.name) {
            Some(known) if known.version >= state.version => {}
            _ => {
                states.insert(state.name.clone(), state);
            }
        }
    }

    /// Drops what is known of a service, so its next read asks the database.
    fn forget(&self, name: &ServiceName) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceName, ServiceState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A file's identity: device and inode. A file deleted, or replaced by another under the same
/// name, no longer has it.
type FileId = (u64, u64);

fn file_id(path: &std::path::Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// The page size of a database this backend creates (SQLite's default is 4096).
///
/// A commit writes every page it touched to the WAL, one frame each, and waits for them to be
/// on disk: the services row, the changes row, the history, outbox and audit rows, and the leaf
/// of each of their indexes. A write changes a few hundred bytes on each of those pages, so
/// with 1 KiB pages a commit writes about a third of the bytes it writes with 4 KiB ones, and
/// its fsync waits that much less (BENCHMARKS.md, "Smaller pages"). Larger documents take
/// overflow pages instead, with the same bytes. A database created with another page size
/// keeps it: SQLite fixes the page size of a WAL database when it is created.
const PAGE_SIZE: u32 = 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite://PATH` URL, brings its schema
    /// up to date, reads or creates its epoch and starts its writer.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
            // The writer and the readers are separate connections: each would see its own
            // empty database.
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        }
        let options = options
            .create_if_missing(true)
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // The schema is brought up to date on a connection of its own, before the writer starts.
        let setup = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let prepared = async {
            refuse_a_newer_schema(&setup).await?;
            MIGRATOR.run(&setup).await?;
            ensure_epoch(&setup).await
        }
        .await;
        setup.close().await;
        let (epoch, created) = prepared?;
        let file = Arc::new((
            path.clone(),
            file_id(&path).map_err(|e| StoreError::Unavailable {
                reason: format!("cannot read the database file {}: {e}", path.display()),
                source: None,
            })?,
        ));
        let watched = file.clone();
        let writer = Writer::start(&path, Box::new(move || check_file(&watched)))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer: Arc::new(writer),
            heads: Arc::default(),
            readers,
            epoch,
            created,
            file,
        })
    }

    /// How the writer grouped the writes so far (one fsync per transaction).
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }
}

/// Checks that the database file is still the one opened. SQLite keeps writing to a file that
/// was deleted (or renamed away and replaced) under it, so without this every write after an
/// `rm dials.db` would be acknowledged and then lost at the next start.
fn check_file(file: &(std::path::PathBuf, FileId)) -> Result<()> {
    let (path, opened) = file;
    match file_id(path) {
        Ok(id) if id == *opened => Ok(()),
        Ok(_) => Err(StoreError::Unavailable {
            reason: format!(
                "the database file {} was replaced while dials ran; restart dials to use \
                 the new file, or put the old one back",
                path.display()
            ),
            source: None,
        }),
        Err(e) => Err(StoreError::Unavailable {
            reason: format!(
                "the database file {} is gone ({e}); put it back or restore a backup, \
                 then restart dials",
                path.display()
            ),
            source: None,
        }),
    }
}

/// The newest database schema version this binary knows (its latest migration).
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The versions of every migration this binary knows, oldest first.
pub fn known_migrations() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// Stops before migrating a database whose schema a newer dials wrote.
async fn refuse_a_newer_schema(pool: &SqlitePool) -> Result<()> {
    // A new database has no migrations table yet: nothing to compare.
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(pool)
            .await
            .ok()
            .flatten();
    let known = known_schema_version();
    match found {
        Some(found) if found > known => Err(StoreError::NewerSchema { found, known }),
        _ => Ok(()),
    }
}

async fn ensure_epoch(pool: &SqlitePool) -> Result<(Epoch, bool)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let existing: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
        .fetch_optional(&mut *tx)
        .await?;
    let result = match existing {
        Some(text) => {
            let uuid = Uuid::parse_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("epoch {text:?}: {e}")))?;
            (Epoch(uuid), false)
        }
        None => {
            let epoch = Epoch::new_random();
            sqlx::query("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('created_at', ?)")
                .bind(epoch.to_string())
                .bind(to_micros(OffsetDateTime::now_utc()).to_string())
                .execute(&mut *tx)
                .await?;
            (epoch, true)
        }
    };
    tx.commit().await?;
    Ok(result)
}

fn schema_record(row: &SqliteRow) -> Result<SchemaRecord> {
    let text: String = row.try_get("schema")?;
    Ok(SchemaRecord {
        service: service_name(row.try_get("service")?)?,
        schema: serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("stored schema: {e}")))?,
        hash: row.try_get("hash")?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn service_state(row: &SqliteRow) -> Result<ServiceState> {
    Ok(ServiceState {
        name: service_name(row.try_get("name")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        revision: Revision(from_i64(row.try_get("revision")?)?),
        document: parse_document(row.try_get("document")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn version_record(row: &SqliteRow) -> Result<VersionRecord> {
    Ok(VersionRecord {
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        revision: Revision(from_i64(row.try_get("revision")?)?),
        kind: change_kind(row.try_get("kind")?)?,
        document: parse_document(row.try_get("document")?)?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        at: from_micros(row.try_get("at")?)?,
    })
}

fn history_record(row: &SqliteRow) -> Result<HistoryRecord> {
    Ok(HistoryRecord {
        id: row.try_get("id")?,
        revision: Revision(from_i64(row.try_get("revision")?)?),
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        key: row.try_get("key")?,
        kind: change_kind(row.try_get("kind")?)?,
        old: parse_value(row.try_get("old_value")?)?,
        new: parse_value(row.try_get("new_value")?)?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        at: from_micros(row.try_get("at")?)?,
    })
}

fn service_name(raw: String) -> Result<ServiceName> {
    // Instance override documents are kept under an id no service name can take.
    ServiceName::parse_stored(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn change_kind(raw: String) -> Result<ChangeKind> {
    ChangeKind::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("change kind {raw:?}")))
}

fn document_text(doc: &Document) -> Result<String> {
    serde_json::to_string(doc).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_document(raw: Option<String>) -> Result<Option<Document>> {
    raw.map(|text| {
        serde_json::from_str::<Document>(&text)
            .map_err(|e| StoreError::Corrupt(format!("stored document: {e}")))
    })
    .transpose()
}

fn parse_value(raw: Option<String>) -> Result<Option<serde_json::Value>> {
    raw.map(|text| {
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("stored value: {e}")))
    })
    .transpose()
}

/// Microseconds since the Unix epoch: exact, ordered, and the same in every backend.
pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("counter {v} out of range")))
}

fn from_i64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative counter {v}")))
}

#[async_trait]
impl Database for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn created(&self) -> bool {
        self.created
    }

    async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.readers)
                .await?;
        Ok(v.unwrap_or(0))
    }

    async fn ping(&self) -> Result<()> {
        check_file(&self.file)?;
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        self.readers.close().await;
        let writer = self.writer.clone();
        // Joining the thread waits for the jobs already queued; off the async threads.
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
    }
}
