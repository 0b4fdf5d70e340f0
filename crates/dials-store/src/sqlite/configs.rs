//! Configs, versions, schemas, history and the change log: the compare-and-swap commit and
//! the schema registration, each one transaction.

use super::security::insert_audit_in;
use super::*;

#[async_trait]
impl ConfigReads for SqliteStore {
    async fn service(&self, name: &ServiceName) -> Result<Option<ServiceState>> {
        if let Some(state) = self.heads.get(name) {
            return Ok(Some(state));
        }
        let row = sqlx::query(
            "SELECT name, version, revision, document, updated_at, updated_by \
             FROM services WHERE name = ?",
        )
        .bind(name.as_str())
        .fetch_optional(&self.readers)
        .await?;
        let state = row.map(|r| service_state(&r)).transpose()?;
        if let Some(state) = &state {
            self.heads.offer(state.clone());
        }
        Ok(state)
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
        self.queue_commit(change).await
    }

    fn enqueue(&self, change: NewChange) -> std::result::Result<QueuedCommit, Box<NewChange>> {
        // The writer thread takes jobs in the order they are sent, and this sends now.
        Ok(Box::pin(self.queue_commit(change)))
    }

    async fn commit_many(&self, changes: Vec<NewChange>) -> Result<Vec<Committed>> {
        self.commit_all(changes, |_| Ok(())).await
    }

    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        let Some(redaction) = redaction else {
            let record = record.clone();
            let committed = self
                .writer
                .write(move |conn| {
                    let committed = match migration {
                        Some(change) => {
                            let committed = commit_in(conn, &change)?;
                            Some((committed, head_of(change, committed)))
                        }
                        None => None,
                    };
                    upsert_schema(conn, &record)?;
                    Ok(committed)
                })
                .await?;
            return Ok(committed.map(|(committed, state)| {
                self.heads.offer(state);
                committed
            }));
        };
        // A redaction calls back into the caller for every old value: it borrows the writer's
        // connection and runs here, alone.
        let mut lease = self.writer.exclusive().await?;
        check_file(&self.file)?;
        let result = redact_and_put(lease.conn(), record, migration.as_ref(), redaction);
        if result.is_err() {
            lease.poison();
        }
        drop(lease);
        if let (Ok(Some(committed)), Some(change)) = (&result, migration) {
            self.heads.offer(head_of(change, *committed));
        }
        result
    }
}

/// The state of a service right after `change` was committed, exactly as reading it back would
/// give it (times are stored to the microsecond).
fn head_of(change: NewChange, committed: Committed) -> ServiceState {
    let at = to_micros(change.at);
    ServiceState {
        name: change.service,
        version: committed.version,
        revision: committed.revision,
        document: change.document,
        updated_at: from_micros(at).unwrap_or(change.at),
        updated_by: change.actor,
    }
}

/// A schema registration that rewrites the service's past, on a connection of its own: the
/// migration, the redaction and the schema row in one transaction, with every freed page zeroed
/// and the log truncated afterwards so no old value stays behind in the files.
fn redact_and_put(
    conn: &mut rusqlite::Connection,
    record: &SchemaRecord,
    migration: Option<&NewChange>,
    redaction: &Redaction<'_>,
) -> Result<Option<Committed>> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    let result = (|| -> Result<(Option<Committed>, u64)> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let committed = migration.map(|change| commit_in(&tx, change)).transpose()?;
        let redacted = redact_in(&tx, &record.service, redaction)?;
        upsert_schema(&tx, record)?;
        tx.commit()?;
        Ok((committed, redacted))
    })();
    conn.pragma_update(None, "secure_delete", "FAST")?;
    let (committed, redacted) = result?;
    if redacted > 0 {
        // secure_delete zeroed the old contents inside the database's pages; checkpointing
        // into the main file and truncating the log removes the frames that still held them.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(committed)
}

pub(super) fn upsert_schema(conn: &rusqlite::Connection, record: &SchemaRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO schemas (service, schema, hash, updated_at, updated_by) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (service) DO UPDATE SET \
         schema = excluded.schema, hash = excluded.hash, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )?
    .execute(rusqlite::params![
        record.service.as_str(),
        record.schema.to_string(),
        record.hash,
        to_micros(record.updated_at),
        record.updated_by,
    ])?;
    Ok(())
}

/// One change inside an open write transaction: the compare-and-swap on the version, the
/// change row, the service row, its history rows, its sealed secrets, its outbox row and its
/// access-log row. It checks first: a refusal comes before its first write.
pub(super) fn commit_in(conn: &rusqlite::Connection, change: &NewChange) -> Result<Committed> {
    use rusqlite::{OptionalExtension, params};
    let current: Option<i64> = conn
        .prepare_cached("SELECT version FROM services WHERE name = ?1")?
        .query_row([change.service.as_str()], |r| r.get(0))
        .optional()?;
    let current = Version(from_i64(current.unwrap_or(0))?);
    if current != change.base_version {
        return Err(StoreError::Conflict { current });
    }
    let version = current.next();
    let stored_version = to_i64(version.0)?;
    // Everything that can refuse the change is checked before its first write: the writer
    // runs a single commit without a savepoint (see `writer`).
    if let Some(secret) = change
        .secrets
        .iter()
        .find(|s| s.version != version || s.service != change.service)
    {
        return Err(StoreError::Corrupt(format!(
            "a secret of {} version {} cannot be stored with {} version {version}",
            secret.service, secret.version, change.service
        )));
    }
    let at = to_micros(change.at);
    let document = change.document.as_ref().map(document_text).transpose()?;
    let service = change.service.as_str();
    let kind = change.kind.as_str();
    let revision: i64 = conn
        .prepare_cached(
            "INSERT INTO changes (service, version, kind, document, actor, reason, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING revision",
        )?
        .query_row(
            params![
                service,
                stored_version,
                kind,
                document,
                change.actor,
                change.reason,
                at
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached(
        "INSERT INTO services (name, version, revision, document, updated_at, updated_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
         revision = excluded.revision, document = excluded.document, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )?
    .execute(params![
        service,
        stored_version,
        revision,
        document,
        at,
        change.actor
    ])?;
    let mut history = conn.prepare_cached(
        "INSERT INTO history (revision, service, version, key, kind, old_value, new_value, \
         actor, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for c in &change.changes {
        history.execute(params![
            revision,
            service,
            stored_version,
            c.key.as_str(),
            kind,
            c.old.as_ref().map(|v| v.to_string()),
            c.new.as_ref().map(|v| v.to_string()),
            change.actor,
            change.reason,
            at,
        ])?;
    }
    for secret in &change.secrets {
        conn.prepare_cached(
            "INSERT INTO secrets (service, key, version, key_id, nonce, ciphertext, created_at, \
             created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            secret.service.as_str(),
            secret.key,
            to_i64(secret.version.0)?,
            secret.key_id,
            secret.nonce,
            secret.ciphertext,
            to_micros(secret.created_at),
            secret.created_by,
        ])?;
    }
    let outbox: i64 = conn
        .prepare_cached(
            "INSERT INTO outbox (revision, service, version, created_at) VALUES (?1, ?2, ?3, ?4) \
             RETURNING id",
        )?
        .query_row(params![revision, service, stored_version, at], |r| r.get(0))?;
    insert_audit_in(
        conn,
        &AuditRecord {
            id: 0,
            at: change.at,
            actor: change.actor.clone(),
            action: format!("config.{kind}"),
            target: Some(change.service.to_string()),
            address: change.origin.clone(),
            outcome: "ok".into(),
            reason: Some(format!("version {version}")),
        },
    )?;
    if change.document.is_none() {
        conn.prepare_cached("DELETE FROM schemas WHERE service = ?1")?
            .execute([service])?;
    }
    Ok(Committed {
        version,
        revision: Revision(from_i64(revision)?),
        outbox,
    })
}

/// Rewrites a service's older versions and history inside an open write transaction; returns
/// how many rows changed.
fn redact_in(
    conn: &rusqlite::Connection,
    service: &ServiceName,
    redaction: &Redaction<'_>,
) -> Result<u64> {
    let mut changed = 0;
    let versions: Vec<(i64, Option<String>)> = conn
        .prepare(
            "SELECT revision, document FROM changes WHERE service = ?1 AND document IS NOT NULL",
        )?
        .query_map([service.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (revision, document) in versions {
        let Some(document) = parse_document(document)? else {
            continue;
        };
        if let Some(new) = (redaction.document)(&document) {
            conn.execute(
                "UPDATE changes SET document = ?1 WHERE revision = ?2",
                rusqlite::params![document_text(&new)?, revision],
            )?;
            changed += 1;
        }
    }
    type Entry = (i64, String, Option<String>, Option<String>);
    let entries: Vec<Entry> = conn
        .prepare("SELECT id, key, old_value, new_value FROM history WHERE service = ?1")?
        .query_map([service.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (id, key, old, new) in entries {
        let mut rewritten = false;
        let mut values = Vec::with_capacity(2);
        for raw in [old, new] {
            let value = parse_value(raw)?;
            let new = value.as_ref().and_then(|v| (redaction.value)(&key, v));
            rewritten |= new.is_some();
            values.push(new.or(value).map(|v| v.to_string()));
        }
        if rewritten {
            conn.execute(
                "UPDATE history SET old_value = ?1, new_value = ?2 WHERE id = ?3",
                rusqlite::params![values[0], values[1], id],
            )?;
            changed += 1;
        }
    }
    Ok(changed)
}

impl SqliteStore {
    /// Commits `changes` in one job of the writer, each through [`commit_in`], then whatever
    /// `more` writes, all in one savepoint: all of it or nothing. Keeps the services' states.
    pub(super) async fn commit_all<F>(
        &self,
        changes: Vec<NewChange>,
        more: F,
    ) -> Result<Vec<Committed>>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<()> + Send + 'static,
    {
        let services: Vec<ServiceName> = changes.iter().map(|c| c.service.clone()).collect();
        let written = self
            .writer
            .write(move |conn| {
                let mut committed = Vec::with_capacity(changes.len());
                for change in &changes {
                    committed.push(commit_in(conn, change)?);
                }
                more(conn)?;
                Ok(changes
                    .into_iter()
                    .zip(committed)
                    .map(|(change, committed)| (committed, head_of(change, committed)))
                    .collect::<Vec<_>>())
            })
            .await;
        match written {
            Ok(done) => Ok(done
                .into_iter()
                .map(|(committed, state)| {
                    self.heads.offer(state);
                    committed
                })
                .collect()),
            Err(e) => {
                for service in &services {
                    self.heads.forget(service);
                }
                Err(e)
            }
        }
    }
}

impl SqliteStore {
    /// Sends `change` to the writer now; the future answers once it is durable, keeping the
    /// known state of its service up to date.
    fn queue_commit(
        &self,
        change: NewChange,
    ) -> impl std::future::Future<Output = Result<Committed>> + Send + 'static {
        let service = change.service.clone();
        let heads = self.heads.clone();
        let queued = self.writer.queue_checked(move |conn| {
            let committed = commit_in(conn, &change)?;
            Ok((committed, head_of(change, committed)))
        });
        async move {
            match Writer::answer(queued?).await {
                Ok((committed, state)) => {
                    heads.offer(state);
                    Ok(committed)
                }
                Err(e) => {
                    // A lost compare-and-swap means the known state is behind (a commit whose
                    // caller went away before it was noted): the next read asks the database.
                    heads.forget(&service);
                    Err(e)
                }
            }
        }
    }
}
