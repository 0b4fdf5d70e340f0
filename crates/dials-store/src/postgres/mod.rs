//! The PostgreSQL backend: one database that several dials processes may share.
//!
//! Every write is one transaction on a pooled connection, and holds across processes by itself:
//! a commit takes the next global revision from a one-row counter (`UPDATE … RETURNING`, whose
//! row lock is held until the transaction ends, so revisions are taken in commit order and a
//! rolled-back commit gives its revision back), then compares the service's version and writes
//! the change, the service row, history, sealed secrets, the outbox row and the access-log row.
//! Nothing is cached in the process: another process may have written since.
//!
//! Documents and values are `json` (kept as written, see [`JsonText`]), times `timestamptz`, hashes and sealed bytes `bytea`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use dials_domain::{ChangeKind, Document, Epoch, Revision, ServiceName, Version};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    AuditQuery, AuditRecord, ChangeRecord, Committed, HistoryQuery, HistoryRecord, InstanceLimits,
    InstanceReport, NewChange, Notice, OutboxItem, RecordedReports, Redaction, ResealFn, Result,
    SchemaRecord, SecretRecord, ServiceState, SessionRecord, StoreError, TokenRecord,
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per process: commits queue on the revision row anyway, reads run beside them.
const CONNECTIONS: u32 = 8;

/// How long a request waits for a free connection, or for a new one to be made.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](crate::Store) on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How to connect, for the connection that listens for notices (kept out of the pool).
    options: PgConnectOptions,
    epoch: Epoch,
    created: bool,
}

impl PgStore {
    /// Connects to the database a `postgres://` (or `postgresql://`) URL names, brings its
    /// schema up to date and reads its epoch, creating it when this is the database's first
    /// start. The database itself must exist.
    pub async fn open(url: &str) -> Result<Self> {
        // The server's notices ("… already exists, skipping" at every start) are not news.
        let options =
            PgConnectOptions::from_str(url)?.options([("client_min_messages", "warning")]);
        let place = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Unavailable { reason, source } => StoreError::Unavailable {
                    reason: format!("cannot reach PostgreSQL at {place}: {reason}"),
                    source,
                },
                other => other,
            })?;
        let prepared = async {
            refuse_a_newer_schema(&pool).await?;
            MIGRATOR.run(&pool).await?;
            ensure_epoch(&pool).await
        }
        .await;
        let (epoch, created) = match prepared {
            Ok(done) => done,
            Err(e) => {
                pool.close().await;
                return Err(e);
            }
        };
        Ok(Self {
            pool,
            options,
            epoch,
            created,
        })
    }
}

impl PgStore {
    /// The newest PostgreSQL schema version this binary knows (its latest migration).
    pub fn known_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// Stops before migrating a database whose schema a newer dials wrote.
async fn refuse_a_newer_schema(pool: &PgPool) -> Result<()> {
    // A new database has no migrations table yet: nothing to compare.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(());
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    let known = PgStore::known_schema_version();
    match found {
        Some(found) if found > known => Err(StoreError::NewerSchema { found, known }),
        _ => Ok(()),
    }
}

/// The database's epoch: made by whichever process first opens it, read by every other.
async fn ensure_epoch(pool: &PgPool) -> Result<(Epoch, bool)> {
    let candidate = Epoch::new_random();
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO meta (key, value) VALUES ('epoch', $1) \
         ON CONFLICT (key) DO NOTHING RETURNING value",
    )
    .bind(candidate.to_string())
    .fetch_optional(pool)
    .await?;
    if inserted.is_some() {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('created_at', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(crate::sqlite::to_micros(OffsetDateTime::now_utc()).to_string())
        .execute(pool)
        .await?;
        return Ok((candidate, true));
    }
    let text: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
        .fetch_one(pool)
        .await?;
    let uuid =
        Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("epoch {text:?}: {e}")))?;
    Ok((Epoch(uuid), false))
}

/// Whether an error is another writer's transaction getting there first: a unique key it
/// just took, or a serialization failure or deadlock PostgreSQL broke.
fn lost_race(e: &StoreError) -> bool {
    let StoreError::Database(source) = e else {
        return false;
    };
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    matches!(db.code().as_deref(), Some("23505" | "40001" | "40P01"))
}

fn schema_record(row: &PgRow) -> Result<SchemaRecord> {
    Ok(SchemaRecord {
        service: service_name(row.try_get("service")?)?,
        schema: row.try_get("schema")?,
        hash: row.try_get("hash")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn service_state(row: &PgRow) -> Result<ServiceState> {
    Ok(ServiceState {
        name: service_name(row.try_get("name")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        revision: Revision(from_i64(row.try_get("revision")?)?),
        document: parse_document(row.try_get("document")?)?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn version_record(row: &PgRow) -> Result<VersionRecord> {
    Ok(VersionRecord {
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        revision: Revision(from_i64(row.try_get("revision")?)?),
        kind: change_kind(row.try_get("kind")?)?,
        document: parse_document(row.try_get("document")?)?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        at: row.try_get("at")?,
    })
}

fn history_record(row: &PgRow) -> Result<HistoryRecord> {
    Ok(HistoryRecord {
        id: row.try_get("id")?,
        revision: Revision(from_i64(row.try_get("revision")?)?),
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        key: row.try_get("key")?,
        kind: change_kind(row.try_get("kind")?)?,
        old: row.try_get("old_value")?,
        new: row.try_get("new_value")?,
        actor: row.try_get("actor")?,
        reason: row.try_get("reason")?,
        at: row.try_get("at")?,
    })
}

fn service_name(raw: String) -> Result<ServiceName> {
    // Instance override documents are kept under an id no service name can take.
    ServiceName::parse_stored(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn change_kind(raw: String) -> Result<ChangeKind> {
    ChangeKind::parse(&raw).ok_or_else(|| StoreError::Corrupt(format!("change kind {raw:?}")))
}

fn parse_document(raw: Option<serde_json::Value>) -> Result<Option<Document>> {
    raw.map(|value| {
        Document::from_value(value)
            .map_err(|e| StoreError::Corrupt(format!("stored document: {e}")))
    })
    .transpose()
}

/// A document as bound to a `json` parameter.
fn document_json(doc: &Document) -> JsonText<&Document> {
    JsonText(doc)
}

/// A value bound as PostgreSQL `json`: its text as serde writes it, kept as it is. `jsonb` would
/// reorder an object's keys (a form's settings follow their schema's order), drop duplicate
/// keys and refuse the character U+0000, none of which SQLite does.
#[derive(Debug, Clone, Copy)]
pub(super) struct JsonText<T>(pub T);

/// `json`, and `json[]`, by their fixed type ids.
const JSON_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(114);
const JSON_ARRAY_OID: sqlx::postgres::types::Oid = sqlx::postgres::types::Oid(199);

impl<T> sqlx::Type<sqlx::Postgres> for JsonText<T> {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(JSON_OID)
    }
}

impl<T> sqlx::postgres::PgHasArrayType for JsonText<T> {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(JSON_ARRAY_OID)
    }
}

impl<T: serde::Serialize> sqlx::Encode<'_, sqlx::Postgres> for JsonText<T> {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        serde_json::to_writer(&mut **buf, &self.0)?;
        Ok(sqlx::encode::IsNull::No)
    }
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("counter {v} out of range")))
}

fn from_i64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative counter {v}")))
}

#[async_trait]
impl Database for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn created(&self) -> bool {
        self.created
    }

    async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn shared(&self) -> bool {
        true
    }

    async fn claim_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) \
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::float8 / 1000)) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < clock_timestamp() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(millis)
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn notices(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Notice>>> {
        // A connection of its own, outside the pool: it stays open for as long as notices
        // are wanted, and must neither take a connection from requests nor hold the pool open
        // when it closes.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(self.options.clone())
            .await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
        listener.listen(NOTICES).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel(NOTICES_QUEUED);
        let closed = self.pool.close_event();
        tokio::spawn(async move {
            tokio::pin!(closed);
            loop {
                let notice = tokio::select! {
                    () = sender.closed() => break,
                    () = &mut closed => break,
                    next = listener.try_recv() => match next {
                        Ok(Some(notification)) => match Notice::parse(notification.payload()) {
                            Some(notice) => notice,
                            None => continue,
                        },
                        // The connection was lost and is made anew on the next call: whatever
                        // was sent meanwhile is gone.
                        Ok(None) => Notice::Missed,
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the PostgreSQL notification channel; retrying");
                            tokio::time::sleep(NOTICES_RETRY).await;
                            Notice::Missed
                        }
                    },
                };
                // A receiver that falls behind gets one `Missed` instead of a backlog.
                match sender.try_send(notice) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                        let _ = sender.send(Notice::Missed).await;
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
            drop(listener);
            own.close().await;
        });
        Ok(Some(receiver))
    }
}

/// The notification channel on which commits, schema registrations and revocations are
/// announced to every process that shares the database.
pub(super) const NOTICES: &str = "dials";

/// Notices held for a receiver that is busy before it is told it missed some.
const NOTICES_QUEUED: usize = 1024;

/// How long to wait before listening again after the channel failed.
const NOTICES_RETRY: Duration = Duration::from_secs(1);

/// Announces `notice` to every process listening, when the transaction commits (PostgreSQL
/// holds notifications back until then, and drops them with a rollback).
pub(super) async fn announce(conn: &mut PgConnection, notice: &Notice) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTICES)
        .bind(notice.payload())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
