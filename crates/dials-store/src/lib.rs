//! dials storage: the [`Store`] trait is the only way the rest of dials reaches its database,
//! and this crate is the only place that speaks SQL.
//!
//! A write is a compare-and-swap: the caller computes the new document from the state it read
//! and hands [`Store::commit`] the version it started from. The backend commits the document, the
//! next version, a new global revision, one history row per changed key and an outbox row in one
//! transaction, or answers [`StoreError::Conflict`] when another writer got there first. That
//! keeps every rule about *what* to write in the pure domain and every rule about *how* to write
//! it here.
//!
//! Backends: [`SqliteStore`] (WAL, `synchronous=FULL`, one writer connection) and [`PgStore`]
//! (one PostgreSQL database that several dials processes may share: the compare-and-swap and the
//! global revision are taken inside each commit's transaction). Every backend must pass the same
//! conformance tests (`tests/it`).

pub mod backup;
mod postgres;
mod sqlite;
pub mod tables;
mod types;

use async_trait::async_trait;
use dials_domain::{Epoch, ServiceName, Version};

pub use postgres::PgStore;
pub use sqlite::{SqliteStore, WriterStats};
pub use types::*;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service's version is no longer the one the change was computed from.
    #[error("version conflict: the service is at version {current}")]
    Conflict {
        /// The version the service is at now.
        current: Version,
    },
    /// A stored value could not be read back (a corrupt or foreign database).
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// The database cannot do the work now but may later: it is busy past the timeout, its
    /// disk is full, its file is unreadable or gone, or the pool is closed. Callers answer
    /// "try again" (HTTP 503), never "bug".
    #[error("the database is unavailable: {reason}")]
    Unavailable {
        /// What is wrong, in words an operator can act on.
        reason: String,
        /// The driver's error, when the driver noticed.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other database error: a bug or a broken database.
    #[error("database error: {0}")]
    Database(BoxError),
    /// The database schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The caller's step inside a transaction failed, so nothing was written.
    #[error("{0}")]
    Aborted(String),
    /// The database was written by a newer dials: its schema is ahead of what this binary
    /// knows, so reading it could misread data and writing it could damage it.
    #[error(
        "the database schema is at version {found}, newer than this dials knows (version {known}): \
         run the newer dials, or restore a backup taken by this version"
    )]
    NewerSchema {
        /// The schema version the database holds.
        found: i64,
        /// The newest schema version this binary knows.
        known: i64,
    },
    /// The database URL names no backend this build has.
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH or postgres://[USER@]HOST[:PORT]/DATABASE"
    )]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether this is [`StoreError::Unavailable`]: worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A database driver's error, whichever driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl From<sqlx::Error> for StoreError {
    /// Tells the errors that pass (a full disk, a busy or vanished database, a closed pool)
    /// from the ones that do not, so no caller has to know a driver's error codes.
    fn from(e: sqlx::Error) -> Self {
        match unavailable_reason(&e) {
            Some(reason) => StoreError::Unavailable {
                reason,
                source: Some(Box::new(e)),
            },
            None => StoreError::Database(Box::new(e)),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    /// The same classification for the SQLite writer's driver.
    fn from(e: rusqlite::Error) -> Self {
        let reason = match &e {
            rusqlite::Error::SqliteFailure(code, _) => sqlite_reason(code.extended_code.into()),
            _ => None,
        };
        match reason {
            Some(reason) => StoreError::Unavailable {
                reason: reason.to_owned(),
                source: Some(Box::new(e)),
            },
            None => StoreError::Database(Box::new(e)),
        }
    }
}

/// Why a SQLite result code means "unavailable": its primary code is the low byte of the
/// extended one.
fn sqlite_reason(code: i64) -> Option<&'static str> {
    Some(match code & 0xff {
        5 => "the database is busy (locked by another connection)",
        6 => "a table is locked",
        8 => "the database file is read-only",
        10 => "a disk I/O error occurred",
        13 => "the disk is full",
        14 => "the database file cannot be opened",
        _ => return None,
    })
}

/// Why an error means "unavailable", or `None` when it does not.
fn unavailable_reason(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::PoolTimedOut => Some("no database connection was free in time".into()),
        sqlx::Error::PoolClosed => Some("the database is closed".into()),
        sqlx::Error::Io(io) => Some(format!("I/O error: {io}")),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            // SQLite's result codes are numbers; PostgreSQL's SQLSTATE classes 53 (insufficient
            // resources), 57P (shutdown) and 08 (connection).
            if let Ok(n) = code.parse::<i64>() {
                sqlite_reason(n).map(str::to_owned)
            } else if code.starts_with("53") || code.starts_with("57P") || code.starts_with("08") {
                Some(db.message().to_owned())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Opens the database a URL names, with the backend it names: `sqlite://PATH` (created when
/// missing) or `postgres://…` / `postgresql://…` (the database must exist), its schema brought
/// up to date. The only place that chooses a backend.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if is_postgres(url) {
        Ok(std::sync::Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Whether a database URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A database URL fit for messages and logs: a password in it is replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// What [`SecretStore::reseal_secrets`] calls for each value: its new form, `None` to leave it, or
/// why the rotation must stop.
pub type ResealFn<'a> =
    dyn Fn(&SecretRecord) -> std::result::Result<Option<Resealed>, String> + Send + Sync + 'a;

/// Result alias for storage operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything dials keeps, behind one interface made of focused parts, so each user of the
/// store can ask for only the part it needs (the MQTT publisher gets a [`PublisherStore`]).
/// Implementations must be safe to share across tasks; every method is one transaction or one
/// consistent read. Every backend implements every part and passes the same conformance tests.
pub trait Store:
    PublisherStore + ConfigWrites + SecurityStore + SecretStore + ProfileStore + Transfer
{
}

impl<T> Store for T where
    T: PublisherStore + ConfigWrites + SecurityStore + SecretStore + ProfileStore + Transfer
{
}

/// What the MQTT publisher needs: the outbox, instance reports, current states to republish,
/// and health; it cannot write configs. A `Arc<dyn Store>` coerces to `Arc<dyn PublisherStore>`.
pub trait PublisherStore: Database + ConfigReads + OutboxStore + InstanceStore {}

impl<T> PublisherStore for T where T: Database + ConfigReads + OutboxStore + InstanceStore {}

/// The database itself: which backend, its epoch, its health, and closing it.
#[async_trait]
pub trait Database: Send + Sync + std::fmt::Debug + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The epoch of this database, created with it.
    fn epoch(&self) -> Epoch;

    /// Whether the database was created by this process (a first start).
    fn created(&self) -> bool;

    /// The latest applied migration.
    async fn schema_version(&self) -> Result<i64>;

    /// Answers when the database can be reached.
    async fn ping(&self) -> Result<()>;

    /// Closes every connection once work in progress ends; later calls fail as unavailable.
    async fn close(&self);

    /// Whether other processes may share this database (several replicas on PostgreSQL). A
    /// database only this process writes (SQLite, whose file the data-directory lock guards)
    /// needs no lease and sends no notices.
    fn shared(&self) -> bool {
        false
    }

    /// Takes the lease `name` for `holder` until `ttl` from now, or renews it when `holder`
    /// has it already; answers whether `holder` holds it now. Another holder's lease is taken
    /// over only once it has expired, by the database's clock. Always held when the database
    /// is not [`shared`](Database::shared).
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let _ = (name, holder, ttl);
        Ok(true)
    }

    /// Gives the lease up at once when `holder` has it, so another process need not wait for
    /// it to expire.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _ = (name, holder);
        Ok(())
    }

    /// What other processes on a [`shared`](Database::shared) database commit, register and
    /// revoke, as it happens, until the receiver is dropped; `None` when the database is not
    /// shared. A notice can be lost (the receiver then gets [`Notice::Missed`]), so a receiver
    /// also reads the change log by revision now and then.
    async fn notices(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Notice>>> {
        Ok(None)
    }
}

/// Reading configs, their versions, schemas, history and the change log.
#[async_trait]
pub trait ConfigReads: Database {
    /// The current state of a service, including a deleted one (its `document` is `None`).
    async fn service(&self, name: &ServiceName) -> Result<Option<ServiceState>>;

    /// Every service ever written, deleted ones included, by name.
    async fn services(&self) -> Result<Vec<ServiceState>>;

    /// One version of a service.
    async fn version(&self, name: &ServiceName, version: Version) -> Result<Option<VersionRecord>>;

    /// The newest version of a service written at or before `at`.
    async fn version_at(
        &self,
        name: &ServiceName,
        at: time::OffsetDateTime,
    ) -> Result<Option<VersionRecord>>;

    /// A service's registered schema.
    async fn schema(&self, name: &ServiceName) -> Result<Option<SchemaRecord>>;

    /// Every registered schema, by service name.
    async fn schemas(&self) -> Result<Vec<SchemaRecord>>;

    /// Per-key change records, newest first.
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>>;

    /// The latest global revision (0 for an empty database).
    async fn latest_revision(&self) -> Result<u64>;

    /// Changes after global revision `after`, oldest first (the watch stream's replay).
    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>>;
}

/// A commit queued by [`ConfigWrites::enqueue`]: resolves once it is durable or refused.
pub type QueuedCommit =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Committed>> + Send + 'static>>;

/// Writing configs and schemas: compare-and-swap commits, each in one transaction with its history, outbox row, sealed secrets and audit row.
#[async_trait]
pub trait ConfigWrites: Database {
    /// Commits one change atomically if the service is still at `change.base_version`.
    /// Deleting a service (a change without a document) also removes its schema. The change is
    /// written to the access log in the same transaction.
    async fn commit(&self, change: NewChange) -> Result<Committed>;

    /// Queues `change` for commit before returning, and answers as [`ConfigWrites::commit`]
    /// does once it is durable. Changes are committed in the order they were queued, so a
    /// caller may compute the next change of a service on top of this one (its
    /// `base_version` this one's version) and queue it before this one is on disk: writes to
    /// one service then share a transaction instead of taking one each. Gives the change back
    /// when the backend cannot promise that order; the caller then uses
    /// [`ConfigWrites::commit`].
    fn enqueue(&self, change: NewChange) -> std::result::Result<QueuedCommit, Box<NewChange>> {
        Err(Box::new(change))
    }

    /// Commits several changes in one transaction, each a compare-and-swap with its own
    /// history, outbox and audit rows as [`ConfigWrites::commit`] writes them: all of them or,
    /// when any fails (a [`StoreError::Conflict`] names the first service that moved), none.
    /// Answers one [`Committed`] per change, in order.
    async fn commit_many(&self, changes: Vec<NewChange>) -> Result<Vec<Committed>>;

    /// Registers a schema; with `migration`, also commits that change (a compare-and-swap like
    /// [`Store::commit`]) in the same transaction, so a schema never lands without the document
    /// repaired to fit it. With `redaction`, the service's older versions and history are
    /// rewritten in the same transaction too, and their old contents are scrubbed from the
    /// database files.
    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>>;
}

/// The transactional outbox the MQTT publisher drains.
#[async_trait]
pub trait OutboxStore: Database {
    /// How many outbox rows wait to be published.
    async fn outbox_backlog(&self) -> Result<u64>;

    /// Committed changes not yet published, oldest first, after outbox id `after`.
    async fn pending_outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>>;

    /// Services that have outbox rows not yet published.
    async fn pending_services(&self) -> Result<Vec<ServiceName>>;

    /// Marks outbox rows as published (after the broker acknowledged them).
    async fn mark_published(&self, ids: &[i64], at: time::OffsetDateTime) -> Result<()>;
}

/// What running instances report.
#[async_trait]
pub trait InstanceStore: Database {
    /// Records instances' reports in one transaction, each replacing its instance's previous
    /// one (a later report of the same instance in `reports` wins). A report is refused when its
    /// service has no document, when its version is 0 or above the service's current version,
    /// or when it names a new instance of a service that already has `limits.per_service`
    /// instances none of which is stale; otherwise the stalest instance is evicted for it.
    async fn record_instances(
        &self,
        reports: &[InstanceReport],
        limits: &InstanceLimits,
    ) -> Result<RecordedReports>;

    /// What instances of a service last reported, by instance name: at most `limit` of them,
    /// those named after `after` when it is given.
    async fn instances(
        &self,
        service: &ServiceName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InstanceReport>>;

    /// Every instance report of every service.
    async fn all_instances(&self) -> Result<Vec<InstanceReport>>;

    /// Forgets one instance and what it reported (it is gone for good); answers whether it was
    /// known. A later report of the same name records it again, as new.
    async fn forget_instance(&self, service: &ServiceName, instance: &str) -> Result<bool>;
}

/// Tokens, browser sessions and the access log.
#[async_trait]
pub trait SecurityStore: Database {
    /// Stores a new token (its hash only).
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;

    /// The token with this hash, if any (revoked and expired ones included; callers decide).
    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>>;

    /// The token with this id.
    async fn token_by_id(&self, id: uuid::Uuid) -> Result<Option<TokenRecord>>;

    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Revokes a token and ends its sessions; `false` if there is no such live token.
    async fn revoke_token(&self, id: uuid::Uuid, at: time::OffsetDateTime) -> Result<bool>;

    /// Records that a token was used.
    async fn touch_token(&self, id: uuid::Uuid, at: time::OffsetDateTime) -> Result<()>;

    /// Opens a browser session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<()>;

    /// The session whose cookie hashes to `hash`.
    async fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>>;

    /// Ends a session.
    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()>;

    /// Appends to the access log.
    async fn insert_audit(&self, record: &AuditRecord) -> Result<()>;

    /// Reads the access log, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

    /// Deletes access-log entries older than `before`, then the oldest beyond the newest
    /// `keep_at_most` (and expired sessions); returns how many entries went.
    async fn prune(&self, before: time::OffsetDateTime, keep_at_most: u64) -> Result<u64>;
}

/// Sealed secret values: bytes to the store, found by place and resealed in one transaction.
#[async_trait]
pub trait SecretStore: Database {
    /// The sealed secret values of `service` at these (key, secret version) places; a place
    /// without a value is left out.
    async fn secrets(
        &self,
        service: &ServiceName,
        places: &[(String, Version)],
    ) -> Result<Vec<SecretRecord>>;

    /// How many secret values each master key id sealed.
    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>>;

    /// Seals every secret value again, in one transaction: `reseal` returns the new form of a
    /// value, or `None` to leave it as it is. An error from `reseal` aborts the whole
    /// transaction ([`StoreError::Aborted`]). Returns how many values were changed.
    async fn reseal_secrets(&self, reseal: &ResealFn<'_>) -> Result<u64>;
}

/// Profiles: named snapshots of services, and the import that brings profiles, schemas and
/// configs in together.
#[async_trait]
pub trait ProfileStore: Database {
    /// Saves a profile. Without `overwrite`, a profile of the same name is left as it is and
    /// the answer is `false`; otherwise it is replaced and the answer is `true`.
    async fn save_profile(&self, profile: &ProfileRecord, overwrite: bool) -> Result<bool>;

    /// Every profile, by name.
    async fn profiles(&self) -> Result<Vec<ProfileRecord>>;

    /// One profile.
    async fn profile(&self, name: &str) -> Result<Option<ProfileRecord>>;

    /// Deletes a profile; `false` if there was none of that name.
    async fn delete_profile(&self, name: &str) -> Result<bool>;

    /// Writes an import in one transaction (see [`ImportBatch`]): all of it, or on any
    /// failure (a [`StoreError::Conflict`] among the changes) nothing. Answers one
    /// [`Committed`] per change, in order.
    async fn import(&self, batch: ImportBatch) -> Result<Vec<Committed>>;
}

/// Moving a whole installation between databases (`dials migrate-store`): everything read in
/// one snapshot, everything written in one transaction with its ids, revisions and epoch.
#[async_trait]
pub trait Transfer: Database {
    /// Everything the database holds, read in one consistent snapshot.
    async fn export(&self) -> Result<Dump>;

    /// Writes `dump` into this database in one transaction, keeping every id, revision and the
    /// epoch, so that the result reads back as the same [`Dump`]. Refuses
    /// ([`StoreError::Aborted`]) a database that holds any service, version, token or audit
    /// entry: it only fills an empty one. The epoch is the dump's from the next open on.
    async fn import_all(&self, dump: &Dump) -> Result<()>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_never_shows_in_a_url_put_in_a_message() {
        let shown = super::redact_url("postgres://dials:s3cret@db.internal:5432/dials?x=1");
        assert_eq!(shown, "postgres://dials:***@db.internal:5432/dials?x=1");
        for plain in [
            "postgres://dials@db/dials",
            "sqlite:///var/lib/dials/dials.db",
        ] {
            assert_eq!(super::redact_url(plain), plain);
        }
    }
}
