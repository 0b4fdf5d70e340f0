//! Tokens (hashes only), browser sessions and the access log.

use super::*;

#[async_trait]
impl SecurityStore for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let token = token.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO tokens (id, name, role, service, hash, created_at, created_by, \
                     expires_at, last_used_at, revoked_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(rusqlite::params![
                    token.id.to_string(),
                    token.name,
                    token.role,
                    token.service,
                    &token.hash[..],
                    to_micros(token.created_at),
                    token.created_by,
                    token.expires_at.map(to_micros),
                    token.last_used_at.map(to_micros),
                    token.revoked_at.map(to_micros),
                ])?;
                Ok(())
            })
            .await
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
        self.writer
            .write(move |conn| {
                let id = id.to_string();
                let done = conn
                    .prepare_cached(
                        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                    )?
                    .execute(rusqlite::params![to_micros(at), id])?
                    > 0;
                conn.prepare_cached("DELETE FROM sessions WHERE token_id = ?1")?
                    .execute([&id])?;
                Ok(done)
            })
            .await
    }
    async fn touch_token(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2")?
                    .execute(rusqlite::params![to_micros(at), id.to_string()])?;
                Ok(())
            })
            .await
    }
    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let session = session.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(rusqlite::params![
                    &session.hash[..],
                    session.token_id.to_string(),
                    session.csrf,
                    to_micros(session.created_at),
                    to_micros(session.expires_at),
                ])?;
                Ok(())
            })
            .await
    }
    async fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT hash, token_id, csrf, created_at, expires_at FROM sessions WHERE hash = ?",
        )
        .bind(&hash[..])
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| session_record(&r)).transpose()
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        let hash = *hash;
        self.writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM sessions WHERE hash = ?1")?
                    .execute([&hash[..]])?;
                Ok(())
            })
            .await
    }
    async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        let record = record.clone();
        self.writer
            .write(move |conn| insert_audit_in(conn, &record))
            .await
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
        rows.iter().map(audit_record).collect()
    }

    async fn prune(&self, before: OffsetDateTime, keep_at_most: u64) -> Result<u64> {
        self.writer
            .write(move |conn| {
                let mut audit = conn
                    .prepare_cached("DELETE FROM audit WHERE at < ?1")?
                    .execute([to_micros(before)])? as u64;
                audit += conn
                    .prepare_cached(
                        "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC \
                         LIMIT 1 OFFSET ?1)",
                    )?
                    .execute([i64::try_from(keep_at_most).unwrap_or(i64::MAX)])?
                    as u64;
                conn.prepare_cached("DELETE FROM sessions WHERE expires_at < ?1")?
                    .execute([to_micros(OffsetDateTime::now_utc())])?;
                Ok(audit)
            })
            .await
    }
}

pub(super) fn insert_audit_in(conn: &rusqlite::Connection, record: &AuditRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, address, outcome, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(rusqlite::params![
        to_micros(record.at),
        record.actor,
        record.action,
        record.target,
        record.address,
        record.outcome,
        record.reason,
    ])?;
    Ok(())
}

pub(super) fn session_record(r: &SqliteRow) -> Result<SessionRecord> {
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
}

pub(super) fn audit_record(r: &SqliteRow) -> Result<AuditRecord> {
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
}

/// An access-log entry with the id it already has (a transfer keeps ids).
pub(super) fn insert_audit_with_id(
    conn: &rusqlite::Connection,
    record: &AuditRecord,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (id, at, actor, action, target, address, outcome, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(rusqlite::params![
        record.id,
        to_micros(record.at),
        record.actor,
        record.action,
        record.target,
        record.address,
        record.outcome,
        record.reason,
    ])?;
    Ok(())
}

pub(super) fn token_record(row: &SqliteRow) -> Result<TokenRecord> {
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
