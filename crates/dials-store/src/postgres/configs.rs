//! Configs, versions, schemas, history and the change log: the compare-and-swap commit and
//! the schema registration, each one transaction.

use super::security::insert_audit_in;
use super::*;

const STATE: &str =
    "SELECT name, version, revision, document, updated_at, updated_by FROM services";
const VERSION: &str =
    "SELECT service, version, revision, kind, document, actor, reason, at FROM changes";

#[async_trait]
impl ConfigReads for PgStore {
    async fn service(&self, name: &ServiceName) -> Result<Option<ServiceState>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{STATE} WHERE name = $1")))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| service_state(&r)).transpose()
    }

    async fn services(&self) -> Result<Vec<ServiceState>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{STATE} ORDER BY name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(service_state).collect()
    }

    async fn version(&self, name: &ServiceName, version: Version) -> Result<Option<VersionRecord>> {
        // A number past what the database can hold names no version: not found, not corrupt.
        let Ok(version) = i64::try_from(version.0) else {
            return Ok(None);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{VERSION} WHERE service = $1 AND version = $2"
        )))
        .bind(name.as_str())
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| version_record(&r)).transpose()
    }

    async fn version_at(
        &self,
        name: &ServiceName,
        at: OffsetDateTime,
    ) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{VERSION} WHERE service = $1 AND at <= $2 ORDER BY version DESC LIMIT 1"
        )))
        .bind(name.as_str())
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| version_record(&r)).transpose()
    }

    async fn schema(&self, name: &ServiceName) -> Result<Option<SchemaRecord>> {
        let row = sqlx::query(
            "SELECT service, schema, hash, updated_at, updated_by FROM schemas WHERE service = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| schema_record(&r)).transpose()
    }

    async fn schemas(&self) -> Result<Vec<SchemaRecord>> {
        let rows = sqlx::query(
            "SELECT service, schema, hash, updated_at, updated_by FROM schemas ORDER BY service",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schema_record).collect()
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Vec<HistoryRecord>> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT id, revision, service, version, key, kind, old_value, new_value, actor, \
             reason, at FROM history WHERE TRUE",
        );
        if let Some(service) = &query.service {
            sql.push(" AND service = ")
                .push_bind(service.as_str().to_owned());
        }
        if let Some(key) = &query.key {
            sql.push(" AND (key = ").push_bind(key.clone());
            sql.push(" OR starts_with(key, ")
                .push_bind(format!("{key}/"))
                .push("))");
        }
        if let Some(since) = query.since {
            sql.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            sql.push(" AND at < ").push_bind(until);
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(before) = query.before_id {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(history_record).collect()
    }

    async fn latest_revision(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM revision")
            .fetch_one(&self.pool)
            .await?;
        from_i64(v)
    }

    async fn changes_since(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{VERSION} WHERE revision > $1 ORDER BY revision LIMIT $2"
        )))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_record).collect()
    }
}

#[async_trait]
impl ConfigWrites for PgStore {
    async fn commit(&self, change: NewChange) -> Result<Committed> {
        let mut committed = self.commit_all(vec![change], &[], &[]).await?;
        Ok(committed.remove(0))
    }

    async fn commit_many(&self, changes: Vec<NewChange>) -> Result<Vec<Committed>> {
        self.commit_all(changes, &[], &[]).await
    }

    async fn put_schema(
        &self,
        record: &SchemaRecord,
        migration: Option<NewChange>,
        redaction: Option<&Redaction<'_>>,
    ) -> Result<Option<Committed>> {
        let services: Vec<ServiceName> = migration.iter().map(|c| c.service.clone()).collect();
        let written = async {
            let mut tx = self.pool.begin().await?;
            // Taken first, as a commit takes it: a schema lands between two commits, never
            // beside one (a redaction must see every version there is).
            let mut revision = RevisionLock::take(&mut tx).await?;
            let committed = match &migration {
                Some(change) => Some(commit_in(&mut tx, &mut revision, change).await?),
                None => None,
            };
            revision.release(&mut tx).await?;
            let redacted = match redaction {
                Some(redaction) => redact_in(&mut tx, &record.service, redaction).await?,
                None => 0,
            };
            upsert_schema(&mut tx, record).await?;
            super::announce(&mut tx, &Notice::Schema(record.service.to_string())).await?;
            tx.commit().await?;
            Ok((committed, redacted))
        }
        .await;
        let (committed, redacted) = self.settle(written, &services).await?;
        if redacted > 0 {
            // The old contents live on in dead row versions until they are vacuumed: reclaim
            // them now rather than whenever autovacuum comes by.
            sqlx::query("VACUUM changes, history")
                .execute(&self.pool)
                .await?;
        }
        Ok(committed)
    }
}

/// The global revision row, locked by the transaction that holds this: the next revisions
/// this transaction writes are counted here and stored once, before it commits.
pub(super) struct RevisionLock {
    next: i64,
    start: i64,
}

impl RevisionLock {
    /// Locks the revision row until the transaction ends, so that commits on every process take
    /// revisions in the order they commit.
    pub(super) async fn take(conn: &mut PgConnection) -> Result<Self> {
        let current: i64 = sqlx::query_scalar("SELECT value FROM revision FOR UPDATE")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Self {
            next: current,
            start: current,
        })
    }

    fn next(&mut self) -> i64 {
        self.next += 1;
        self.next
    }

    /// Stores the revisions taken (the lock stays until the transaction ends) and announces
    /// the commit to the other processes, in one round trip.
    pub(super) async fn release(self, conn: &mut PgConnection) -> Result<()> {
        if self.next != self.start {
            sqlx::query("WITH taken AS (UPDATE revision SET value = $1) SELECT pg_notify($2, $3)")
                .bind(self.next)
                .bind(super::NOTICES)
                .bind(Notice::Changed.payload())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

pub(super) async fn upsert_schema(conn: &mut PgConnection, record: &SchemaRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO schemas (service, schema, hash, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service) DO UPDATE SET \
         schema = excluded.schema, hash = excluded.hash, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(record.service.as_str())
    .bind(JsonText(&record.schema))
    .bind(&record.hash)
    .bind(record.updated_at)
    .bind(&record.updated_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One change inside an open transaction that holds the revision row: the compare-and-swap on
/// the version, the change row, the service row, its history rows, its sealed secrets, its
/// outbox row and its access-log row.
pub(super) async fn commit_in(
    conn: &mut PgConnection,
    revision: &mut RevisionLock,
    change: &NewChange,
) -> Result<Committed> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT version FROM services WHERE name = $1 FOR UPDATE")
            .bind(change.service.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let current = Version(from_i64(current.unwrap_or(0))?);
    if current != change.base_version {
        return Err(StoreError::Conflict { current });
    }
    let version = current.next();
    for secret in &change.secrets {
        if secret.version != version || secret.service != change.service {
            return Err(StoreError::Corrupt(format!(
                "a secret of {} version {} cannot be stored with {} version {version}",
                secret.service, secret.version, change.service
            )));
        }
    }
    let stored_version = to_i64(version.0)?;
    let rev = revision.next();
    let document = change.document.as_ref().map(document_json);
    let service = change.service.as_str();
    let kind = change.kind.as_str();
    sqlx::query(
        "INSERT INTO changes (revision, service, version, kind, document, actor, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(rev)
    .bind(service)
    .bind(stored_version)
    .bind(kind)
    .bind(document)
    .bind(&change.actor)
    .bind(&change.reason)
    .bind(change.at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO services (name, version, revision, document, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
         revision = excluded.revision, document = excluded.document, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(service)
    .bind(stored_version)
    .bind(rev)
    .bind(document)
    .bind(change.at)
    .bind(&change.actor)
    .execute(&mut *conn)
    .await?;
    if !change.changes.is_empty() {
        let keys: Vec<&str> = change.changes.iter().map(|c| c.key.as_str()).collect();
        let olds: Vec<Option<JsonText<&serde_json::Value>>> = change
            .changes
            .iter()
            .map(|c| c.old.as_ref().map(JsonText))
            .collect();
        let news: Vec<Option<JsonText<&serde_json::Value>>> = change
            .changes
            .iter()
            .map(|c| c.new.as_ref().map(JsonText))
            .collect();
        sqlx::query(
            "INSERT INTO history (revision, service, version, key, kind, old_value, new_value, \
             actor, reason, at) \
             SELECT $1, $2, $3, h.key, $4, h.old, h.new, $5, $6, $7 \
             FROM unnest($8::text[], $9::json[], $10::json[]) WITH ORDINALITY \
             AS h(key, old, new, n) ORDER BY h.n",
        )
        .bind(rev)
        .bind(service)
        .bind(stored_version)
        .bind(kind)
        .bind(&change.actor)
        .bind(&change.reason)
        .bind(change.at)
        .bind(keys)
        .bind(olds)
        .bind(news)
        .execute(&mut *conn)
        .await?;
    }
    for secret in &change.secrets {
        sqlx::query(
            "INSERT INTO secrets (service, key, version, key_id, nonce, ciphertext, created_at, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(secret.service.as_str())
        .bind(&secret.key)
        .bind(to_i64(secret.version.0)?)
        .bind(&secret.key_id)
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .bind(secret.created_at)
        .bind(&secret.created_by)
        .execute(&mut *conn)
        .await?;
    }
    let outbox: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (revision, service, version, created_at) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(rev)
    .bind(service)
    .bind(stored_version)
    .bind(change.at)
    .fetch_one(&mut *conn)
    .await?;
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
    )
    .await?;
    if change.document.is_none() {
        sqlx::query("DELETE FROM schemas WHERE service = $1")
            .bind(service)
            .execute(&mut *conn)
            .await?;
    }
    Ok(Committed {
        version,
        revision: Revision(from_i64(rev)?),
        outbox,
    })
}

/// Rewrites a service's older versions and history inside an open transaction; returns how
/// many rows changed.
async fn redact_in(
    conn: &mut PgConnection,
    service: &ServiceName,
    redaction: &Redaction<'_>,
) -> Result<u64> {
    let mut changed = 0;
    let versions: Vec<(i64, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT revision, document FROM changes WHERE service = $1 AND document IS NOT NULL",
    )
    .bind(service.as_str())
    .fetch_all(&mut *conn)
    .await?;
    for (revision, document) in versions {
        let Some(document) = parse_document(document)? else {
            continue;
        };
        if let Some(new) = (redaction.document)(&document) {
            sqlx::query("UPDATE changes SET document = $1 WHERE revision = $2")
                .bind(document_json(&new))
                .bind(revision)
                .execute(&mut *conn)
                .await?;
            changed += 1;
        }
    }
    type Entry = (
        i64,
        String,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    );
    let entries: Vec<Entry> =
        sqlx::query_as("SELECT id, key, old_value, new_value FROM history WHERE service = $1")
            .bind(service.as_str())
            .fetch_all(&mut *conn)
            .await?;
    for (id, key, old, new) in entries {
        let mut rewritten = false;
        let mut values = Vec::with_capacity(2);
        for value in [old, new] {
            let new = value.as_ref().and_then(|v| (redaction.value)(&key, v));
            rewritten |= new.is_some();
            values.push(new.or(value));
        }
        if rewritten {
            sqlx::query("UPDATE history SET old_value = $1, new_value = $2 WHERE id = $3")
                .bind(values[0].as_ref().map(JsonText))
                .bind(values[1].as_ref().map(JsonText))
                .bind(id)
                .execute(&mut *conn)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

impl PgStore {
    /// Commits `changes` in one transaction, each through [`commit_in`], then registers
    /// `schemas` and saves `profiles` (overwriting): all of it or nothing.
    pub(super) async fn commit_all(
        &self,
        changes: Vec<NewChange>,
        schemas: &[SchemaRecord],
        profiles: &[crate::ProfileRecord],
    ) -> Result<Vec<Committed>> {
        let services: Vec<ServiceName> = changes.iter().map(|c| c.service.clone()).collect();
        let written = async {
            let mut tx = self.pool.begin().await?;
            let mut revision = RevisionLock::take(&mut tx).await?;
            let mut committed = Vec::with_capacity(changes.len());
            for change in &changes {
                committed.push(commit_in(&mut tx, &mut revision, change).await?);
            }
            revision.release(&mut tx).await?;
            for record in schemas {
                upsert_schema(&mut tx, record).await?;
                super::announce(&mut tx, &Notice::Schema(record.service.to_string())).await?;
            }
            for profile in profiles {
                super::profiles::upsert_profile_in(&mut tx, profile, true).await?;
            }
            tx.commit().await?;
            Ok(committed)
        }
        .await;
        self.settle(written, &services).await
    }

    /// A write that lost a race to another process's transaction answers as a lost
    /// compare-and-swap does: with the version the service is at now.
    async fn settle<T>(&self, written: Result<T>, services: &[ServiceName]) -> Result<T> {
        match written {
            Err(e) if lost_race(&e) => {
                let mut current = Version(0);
                for service in services {
                    if let Some(state) = self.service(service).await? {
                        current = state.version;
                        break;
                    }
                }
                Err(StoreError::Conflict { current })
            }
            other => other,
        }
    }
}
