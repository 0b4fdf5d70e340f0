//! Configs, versions, schemas, history and the change log: the compare-and-swap commit and
//! the schema registration, each one transaction.

use super::security::insert_audit_in;
use super::*;

#[async_trait]
impl ConfigReads for SqliteStore {
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
        // A number past what the database can hold names no version: not found, not corrupt.
        let Ok(version) = i64::try_from(version.0) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT service, version, revision, kind, document, actor, reason, at \
             FROM changes WHERE service = ? AND version = ?",
        )
        .bind(name.as_str())
        .bind(version)
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

    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT service, version, revision, kind, document, actor, reason, at \
             FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(version_record).collect()
    }
}

#[async_trait]
impl ConfigWrites for SqliteStore {
    async fn commit(&self, change: NewChange) -> Result<Committed> {
        self.check_file()?;
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let committed = commit_in(&mut tx, &change).await?;
            tx.commit().await?;
            Ok(committed)
        }
        .await;
        self.written(result)
    }

    async fn commit_many(&self, changes: Vec<NewChange>) -> Result<Vec<Committed>> {
        self.commit_many_in(&changes).await
    }

    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        self.check_file()?;
        let result = async {
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
        .await;
        self.written(result)
    }
}

impl SqliteStore {
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

/// One change inside an open write transaction: the compare-and-swap on the version, the
/// change row, the service row, its history rows and its outbox row.
pub(super) async fn commit_in(
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

impl SqliteStore {
    /// [`ConfigWrites::commit_many`]: every change through [`commit_in`] inside one
    /// transaction.
    pub(super) async fn commit_many_in(&self, changes: &[NewChange]) -> Result<Vec<Committed>> {
        self.check_file()?;
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let mut committed = Vec::with_capacity(changes.len());
            for change in changes {
                committed.push(commit_in(&mut tx, change).await?);
            }
            tx.commit().await?;
            Ok(committed)
        }
        .await;
        self.written(result)
    }
}
