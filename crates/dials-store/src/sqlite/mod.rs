//! The SQLite backend: WAL journal, `synchronous=FULL` so that an acknowledged write survives a
//! power cut, one writer connection (`BEGIN IMMEDIATE`) and a small pool of readers.

use std::str::FromStr;
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
    AuditQuery, AuditRecord, ChangeRecord, Committed, HistoryQuery, HistoryRecord, InstanceReport,
    NewChange, OutboxItem, Redaction, ResealFn, Result, SchemaRecord, SecretRecord, ServiceState,
    SessionRecord, Store, StoreError, TokenRecord, VersionRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Readers run beside the one writer; WAL lets them read while it writes.
const READERS: u32 = 4;

/// A [`Store`] on one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    epoch: Epoch,
    created: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite://PATH` URL, brings its schema
    /// up to date and reads or creates its epoch.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed wherever that costs no extra I/O; a
            // redaction turns it fully on (see `put_schema`).
            .pragma("secure_delete", "FAST");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let (epoch, created) = ensure_epoch(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            readers,
            epoch,
            created,
        })
    }

    /// The schema registration itself: the migration, the redaction and the schema row in one
    /// transaction.
    async fn put_schema_in(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let committed = match &migration {
            Some(change) => Some(commit_in(&mut tx, change).await?),
            None => None,
        };
        let redacted = match redaction {
            Some(redaction) => redact_in(&mut tx, &record.service, redaction).await?,
            None => 0,
        };
        sqlx::query(
            "INSERT INTO schemas (service, schema, hash, updated_at, updated_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (service) DO UPDATE SET \
             schema = excluded.schema, hash = excluded.hash, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(record.service.as_str())
        .bind(record.schema.to_string())
        .bind(&record.hash)
        .bind(to_micros(record.updated_at))
        .bind(&record.updated_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if redacted > 0 {
            // secure_delete zeroed the old contents inside the database's pages; checkpointing
            // into the main file and truncating the log removes the frames that still held them.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.writer)
                .await?;
        }
        Ok(committed)
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

#[async_trait]
impl Store for SqliteStore {
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
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn service(&self, name: &ServiceName) -> Result<Option<ServiceState>> {
        let row = sqlx::query(
            "SELECT name, version, revision, document, updated_at, updated_by \
             FROM services WHERE name = ?",
        )
        .bind(name.as_str())
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| service_state(&r)).transpose()
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let rows = sqlx::query(
            "SELECT name, version, revision, document, updated_at, updated_by \
             FROM services ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(service_state).collect()
    }

    async fn version(&self, name: &ServiceName, version: Version) -> Result<Option<VersionRecord>> {
        // A version past what the column holds was never written: asked for, it is absent.
        if i64::try_from(version.0).is_err() {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT service, version, revision, kind, document, actor, reason, at \
             FROM changes WHERE service = ? AND version = ?",
        )
        .bind(name.as_str())
        .bind(to_i64(version.0)?)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| version_record(&r)).transpose()
    }

    async fn version_at(
        &self,
        name: &ServiceName,
        at: OffsetDateTime,
    ) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(
            "SELECT service, version, revision, kind, document, actor, reason, at \
             FROM changes WHERE service = ? AND at <= ? ORDER BY version DESC LIMIT 1",
        )
        .bind(name.as_str())
        .bind(to_micros(at))
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| version_record(&r)).transpose()
    }

    async fn commit(&self, change: NewChange) -> Result<Committed> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let committed = commit_in(&mut tx, &change).await?;
        tx.commit().await?;
        Ok(committed)
    }

    async fn schema(&self, name: &ServiceName) -> Result<Option<SchemaRecord>> {
        let row = sqlx::query(
            "SELECT service, schema, hash, updated_at, updated_by FROM schemas WHERE service = ?",
        )
        .bind(name.as_str())
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| schema_record(&r)).transpose()
    }

    async fn schemas(&self) -> Result<Vec<SchemaRecord>> {
        let rows = sqlx::query(
            "SELECT service, schema, hash, updated_at, updated_by FROM schemas ORDER BY service",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(schema_record).collect()
    }

    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        if redaction.is_some() {
            // Rewritten values must not stay behind in freed pages either. The writer pool has
            // one connection, so the pragma holds for the transaction below.
            sqlx::query("PRAGMA secure_delete = ON")
                .execute(&self.writer)
                .await?;
        }
        let result = self.put_schema_in(record, migration, redaction).await;
        if redaction.is_some() {
            sqlx::query("PRAGMA secure_delete = FAST")
                .execute(&self.writer)
                .await?;
        }
        result
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, revision, service, version, key, kind, old_value, new_value, actor, \
             reason, at FROM history WHERE 1 = 1",
        );
        if let Some(service) = &query.service {
            sql.push(" AND service = ")
                .push_bind(service.as_str().to_owned());
        }
        if let Some(key) = &query.key {
            sql.push(" AND (key = ").push_bind(key.clone());
            sql.push(" OR substr(key, 1, ")
                .push_bind(key.len() as i64 + 1);
            sql.push(") = ").push_bind(format!("{key}/")).push(")");
        }
        if let Some(since) = query.since {
            sql.push(" AND at >= ").push_bind(to_micros(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND at < ").push_bind(to_micros(until));
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(before) = query.before_id {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.readers).await?;
        rows.iter().map(history_record).collect()
    }

    async fn latest_revision(&self) -> Result<u64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(revision) FROM changes")
            .fetch_one(&self.readers)
            .await?;
        from_i64(v.unwrap_or(0))
    }

    async fn outbox_backlog(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.readers)
            .await?;
        from_i64(v)
    }

    async fn pending_outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT o.id, o.revision, o.service, o.version, c.kind, c.document, c.actor, c.at \
             FROM outbox o JOIN changes c ON c.revision = o.revision \
             WHERE o.published_at IS NULL AND o.id > ? ORDER BY o.id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxItem {
                    id: row.try_get("id")?,
                    revision: Revision(from_i64(row.try_get("revision")?)?),
                    service: service_name(row.try_get("service")?)?,
                    version: Version(from_i64(row.try_get("version")?)?),
                    kind: change_kind(row.try_get("kind")?)?,
                    document: parse_document(row.try_get("document")?)?,
                    actor: row.try_get("actor")?,
                    at: from_micros(row.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn pending_services(&self) -> Result<Vec<ServiceName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT service FROM outbox WHERE published_at IS NULL ORDER BY service",
        )
        .fetch_all(&self.readers)
        .await?;
        names.into_iter().map(service_name).collect()
    }

    async fn mark_published(&self, ids: &[i64], at: OffsetDateTime) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in ids.chunks(500) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE outbox SET published_at = ");
            update
                .push_bind(to_micros(at))
                .push(" WHERE published_at IS NULL AND id IN (");
            let mut list = update.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            update.push(")");
            update.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        // No revision comes after one past what the column holds.
        if i64::try_from(after).is_err() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT service, version, revision, kind, document, actor, reason, at \
             FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(to_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(version_record).collect()
    }

    async fn record_instance(&self, report: &InstanceReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (service, instance, version, status, error, schema_hash, \
             overrides, reported_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (service, instance) DO UPDATE SET version = excluded.version, \
             status = excluded.status, error = excluded.error, \
             schema_hash = excluded.schema_hash, overrides = excluded.overrides, \
             reported_at = excluded.reported_at, received_at = excluded.received_at",
        )
        .bind(report.service.as_str())
        .bind(&report.instance)
        .bind(to_i64(report.version.0)?)
        .bind(&report.status)
        .bind(&report.error)
        .bind(&report.schema_hash)
        .bind(report.overrides.as_ref().map(|v| v.to_string()))
        .bind(to_micros(report.reported_at))
        .bind(to_micros(report.received_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn instances(&self, service: &ServiceName) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(
            "SELECT service, instance, version, status, error, schema_hash, overrides, \
             reported_at, received_at FROM instances WHERE service = ? ORDER BY instance",
        )
        .bind(service.as_str())
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(instance_report).collect()
    }

    async fn all_instances(&self) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(
            "SELECT service, instance, version, status, error, schema_hash, overrides, \
             reported_at, received_at FROM instances ORDER BY service, instance",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(instance_report).collect()
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, name, role, service, hash, created_at, created_by, \
             expires_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.service)
        .bind(&token.hash[..])
        .bind(to_micros(token.created_at))
        .bind(&token.created_by)
        .bind(token.expires_at.map(to_micros))
        .bind(token.last_used_at.map(to_micros))
        .bind(token.revoked_at.map(to_micros))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn token_by_id(&self, id: Uuid) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, name, role, service, hash, created_at, created_by, expires_at, \
             last_used_at, revoked_at FROM tokens WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| token_record(&r)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, role, service, hash, created_at, created_by, expires_at, \
             last_used_at, revoked_at FROM tokens ORDER BY created_at, id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(&self, id: Uuid, at: OffsetDateTime) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(to_micros(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        sqlx::query("DELETE FROM sessions WHERE token_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn touch_token(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = ? WHERE id = ?")
            .bind(to_micros(at))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.hash[..])
        .bind(session.token_id.to_string())
        .bind(&session.csrf)
        .bind(to_micros(session.created_at))
        .bind(to_micros(session.expires_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT hash, token_id, csrf, created_at, expires_at FROM sessions WHERE hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get("hash")?;
            let token_id: String = r.try_get("token_id")?;
            Ok(SessionRecord {
                hash: hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("session hash is not 32 bytes".into()))?,
                token_id: Uuid::parse_str(&token_id)
                    .map_err(|e| StoreError::Corrupt(format!("session token id: {e}")))?,
                csrf: r.try_get("csrf")?,
                created_at: from_micros(r.try_get("created_at")?)?,
                expires_at: from_micros(r.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?")
            .bind(&hash[..])
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        insert_audit_in(&self.writer, record).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "SELECT id, at, actor, action, target, address, outcome, reason FROM audit WHERE 1 = 1",
        );
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &query.action {
            sql.push(" AND substr(action, 1, ")
                .push_bind(action.len() as i64);
            sql.push(") = ").push_bind(action.clone());
        }
        if let Some(outcome) = &query.outcome {
            sql.push(" AND outcome = ").push_bind(outcome.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND at >= ").push_bind(to_micros(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND at < ").push_bind(to_micros(until));
        }
        if let Some(before) = query.before_id {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.readers).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: from_micros(r.try_get("at")?)?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    address: r.try_get("address")?,
                    outcome: r.try_get("outcome")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    async fn prune(&self, before: OffsetDateTime) -> Result<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let audit = sqlx::query("DELETE FROM audit WHERE at < ?")
            .bind(to_micros(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(to_micros(OffsetDateTime::now_utc()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(audit)
    }

    async fn secrets(
        &self,
        service: &ServiceName,
        places: &[(String, Version)],
    ) -> Result<Vec<SecretRecord>> {
        let mut out = Vec::with_capacity(places.len());
        // A service holds a handful of secrets: one statement per chunk of places.
        for chunk in places.chunks(200) {
            let mut sql = QueryBuilder::<Sqlite>::new(
                "SELECT service, key, version, key_id, nonce, ciphertext, created_at, created_by \
                 FROM secrets WHERE service = ",
            );
            sql.push_bind(service.as_str().to_owned()).push(" AND (");
            for (i, (key, version)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("(key = ")
                    .push_bind(key.clone())
                    .push(" AND version = ")
                    .push_bind(to_i64(version.0)?)
                    .push(")");
            }
            sql.push(")");
            let rows = sql.build().fetch_all(&self.readers).await?;
            for row in &rows {
                out.push(secret_record(row)?);
            }
        }
        Ok(out)
    }

    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT key_id, COUNT(*) AS n FROM secrets GROUP BY key_id ORDER BY key_id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key_id")?, from_i64(r.try_get("n")?)?)))
            .collect()
    }

    async fn reseal_secrets(&self, reseal: &ResealFn<'_>) -> Result<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "SELECT service, key, version, key_id, nonce, ciphertext, created_at, created_by \
             FROM secrets ORDER BY service, key, version",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut changed = 0;
        for row in &rows {
            let record = secret_record(row)?;
            let Some(new) = reseal(&record).map_err(StoreError::Aborted)? else {
                continue;
            };
            sqlx::query(
                "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? \
                 WHERE service = ? AND key = ? AND version = ?",
            )
            .bind(&new.key_id)
            .bind(&new.nonce)
            .bind(&new.ciphertext)
            .bind(record.service.as_str())
            .bind(&record.key)
            .bind(to_i64(record.version.0)?)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, name, role, service, hash, created_at, created_by, expires_at, \
             last_used_at, revoked_at FROM tokens WHERE hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| token_record(&r)).transpose()
    }
}

/// One change inside an open write transaction: the compare-and-swap on the version, the
/// change row, the service row, its history rows and its outbox row.
async fn commit_in(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    change: &NewChange,
) -> Result<Committed> {
    let current: Option<i64> = sqlx::query_scalar("SELECT version FROM services WHERE name = ?")
        .bind(change.service.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    let current = Version(from_i64(current.unwrap_or(0))?);
    if current != change.base_version {
        return Err(StoreError::Conflict { current });
    }
    let version = current.next();
    let at = to_micros(change.at);
    let document = change.document.as_ref().map(document_text).transpose()?;
    let revision: i64 = sqlx::query_scalar(
        "INSERT INTO changes (service, version, kind, document, actor, reason, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING revision",
    )
    .bind(change.service.as_str())
    .bind(to_i64(version.0)?)
    .bind(change.kind.as_str())
    .bind(&document)
    .bind(&change.actor)
    .bind(&change.reason)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO services (name, version, revision, document, updated_at, updated_by) \
         VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
         revision = excluded.revision, document = excluded.document, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(change.service.as_str())
    .bind(to_i64(version.0)?)
    .bind(revision)
    .bind(&document)
    .bind(at)
    .bind(&change.actor)
    .execute(&mut **tx)
    .await?;
    // One statement for all history rows: each statement costs a hop to SQLite's worker
    // thread, and a first write can carry dozens of keys. Chunks stay under SQLite's limit
    // of 32,766 bound parameters.
    for chunk in change.changes.chunks(1000) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO history (revision, service, version, key, kind, old_value, \
             new_value, actor, reason, at) ",
        );
        insert.push_values(chunk, |mut row, c| {
            row.push_bind(revision)
                .push_bind(change.service.as_str())
                .push_bind(version.0 as i64)
                .push_bind(c.key.as_str())
                .push_bind(change.kind.as_str())
                .push_bind(c.old.as_ref().map(|v| v.to_string()))
                .push_bind(c.new.as_ref().map(|v| v.to_string()))
                .push_bind(&change.actor)
                .push_bind(&change.reason)
                .push_bind(at);
        });
        insert.build().execute(&mut **tx).await?;
    }
    for secret in &change.secrets {
        if secret.version != version || secret.service != change.service {
            return Err(StoreError::Corrupt(format!(
                "a secret of {} version {} cannot be stored with {} version {version}",
                secret.service, secret.version, change.service
            )));
        }
        sqlx::query(
            "INSERT INTO secrets (service, key, version, key_id, nonce, ciphertext, created_at, \
             created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(secret.service.as_str())
        .bind(&secret.key)
        .bind(to_i64(secret.version.0)?)
        .bind(&secret.key_id)
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .bind(to_micros(secret.created_at))
        .bind(&secret.created_by)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("INSERT INTO outbox (revision, service, version, created_at) VALUES (?, ?, ?, ?)")
        .bind(revision)
        .bind(change.service.as_str())
        .bind(to_i64(version.0)?)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    insert_audit_in(
        &mut **tx,
        &AuditRecord {
            id: 0,
            at: change.at,
            actor: change.actor.clone(),
            action: format!("config.{}", change.kind.as_str()),
            target: Some(change.service.to_string()),
            address: change.origin.clone(),
            outcome: "ok".into(),
            reason: Some(format!("version {version}")),
        },
    )
    .await?;
    if change.document.is_none() {
        sqlx::query("DELETE FROM schemas WHERE service = ?")
            .bind(change.service.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(Committed {
        version,
        revision: Revision(from_i64(revision)?),
    })
}

/// Rewrites a service's older versions and history inside an open write transaction; returns
/// how many rows changed.
async fn redact_in(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    service: &ServiceName,
    redaction: &Redaction<'_>,
) -> Result<u64> {
    let mut changed = 0;
    let versions = sqlx::query(
        "SELECT revision, document FROM changes WHERE service = ? AND document IS NOT NULL",
    )
    .bind(service.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for row in &versions {
        let revision: i64 = row.try_get("revision")?;
        let Some(document) = parse_document(row.try_get("document")?)? else {
            continue;
        };
        if let Some(new) = (redaction.document)(&document) {
            sqlx::query("UPDATE changes SET document = ? WHERE revision = ?")
                .bind(document_text(&new)?)
                .bind(revision)
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
    }
    let entries =
        sqlx::query("SELECT id, key, old_value, new_value FROM history WHERE service = ?")
            .bind(service.as_str())
            .fetch_all(&mut **tx)
            .await?;
    for row in &entries {
        let id: i64 = row.try_get("id")?;
        let key: String = row.try_get("key")?;
        let mut rewritten = false;
        let mut values = Vec::with_capacity(2);
        for column in ["old_value", "new_value"] {
            let value = parse_value(row.try_get(column)?)?;
            let new = value.as_ref().and_then(|v| (redaction.value)(&key, v));
            rewritten |= new.is_some();
            values.push(new.or(value).map(|v| v.to_string()));
        }
        if rewritten {
            sqlx::query("UPDATE history SET old_value = ?, new_value = ? WHERE id = ?")
                .bind(&values[0])
                .bind(&values[1])
                .bind(id)
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

async fn insert_audit_in<'e, E>(executor: E, record: &AuditRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, address, outcome, reason) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(to_micros(record.at))
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(&record.address)
    .bind(&record.outcome)
    .bind(&record.reason)
    .execute(executor)
    .await?;
    Ok(())
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

fn instance_report(row: &SqliteRow) -> Result<InstanceReport> {
    Ok(InstanceReport {
        service: service_name(row.try_get("service")?)?,
        instance: row.try_get("instance")?,
        version: Version(from_i64(row.try_get("version")?)?),
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        schema_hash: row.try_get("schema_hash")?,
        overrides: parse_value(row.try_get("overrides")?)?,
        reported_at: from_micros(row.try_get("reported_at")?)?,
        received_at: from_micros(row.try_get("received_at")?)?,
    })
}

fn secret_record(row: &SqliteRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        service: service_name(row.try_get("service")?)?,
        key: row.try_get("key")?,
        version: Version(from_i64(row.try_get("version")?)?),
        key_id: row.try_get("key_id")?,
        nonce: row.try_get("nonce")?,
        ciphertext: row.try_get("ciphertext")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}

fn token_record(row: &SqliteRow) -> Result<TokenRecord> {
    let id: String = row.try_get("id")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    let opt_time = |col: &str| -> Result<Option<OffsetDateTime>> {
        row.try_get::<Option<i64>, _>(col)?
            .map(from_micros)
            .transpose()
    };
    Ok(TokenRecord {
        id: Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(format!("token id: {e}")))?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        service: row.try_get("service")?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?,
        created_at: from_micros(row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
        expires_at: opt_time("expires_at")?,
        last_used_at: opt_time("last_used_at")?,
        revoked_at: opt_time("revoked_at")?,
    })
}

fn service_name(raw: String) -> Result<ServiceName> {
    ServiceName::parse(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
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
