//! Tokens (hashes only), browser sessions and the access log.

use super::*;

const TOKEN: &str = "SELECT id, name, role, service, hash, created_at, created_by, expires_at, \
                     last_used_at, revoked_at FROM tokens";

#[async_trait]
impl SecurityStore for PgStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, name, role, service, hash, created_at, created_by, \
             expires_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(token.id)
        .bind(&token.name)
        .bind(&token.role)
        .bind(&token.service)
        .bind(&token.hash[..])
        .bind(token.created_at)
        .bind(&token.created_by)
        .bind(token.expires_at)
        .bind(token.last_used_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{TOKEN} WHERE hash = $1")))
            .bind(&hash[..])
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| token_record(&r)).transpose()
    }

    async fn token_by_id(&self, id: Uuid) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{TOKEN} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| token_record(&r)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{TOKEN} ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_record).collect()
    }

    async fn revoke_token(&self, id: Uuid, at: OffsetDateTime) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        sqlx::query("DELETE FROM sessions WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done {
            super::announce(&mut tx, &crate::Notice::TokenRevoked(id)).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn touch_token(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.hash[..])
        .bind(session.token_id)
        .bind(&session.csrf)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT hash, token_id, csrf, created_at, expires_at FROM sessions WHERE hash = $1",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_record(&r)).transpose()
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE hash = $1")
            .bind(&hash[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit_in(&mut conn, record).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor, action, target, address, outcome, reason FROM audit WHERE TRUE",
        );
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &query.action {
            sql.push(" AND starts_with(action, ")
                .push_bind(action.clone())
                .push(")");
        }
        if let Some(outcome) = &query.outcome {
            sql.push(" AND outcome = ").push_bind(outcome.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            sql.push(" AND at < ").push_bind(until);
        }
        if let Some(before) = query.before_id {
            sql.push(" AND id < ").push_bind(before);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_record).collect()
    }

    async fn prune(&self, before: OffsetDateTime, keep_at_most: u64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let mut audit = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        audit += sqlx::query(
            "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC \
             LIMIT 1 OFFSET $1)",
        )
        .bind(i64::try_from(keep_at_most).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(OffsetDateTime::now_utc())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(audit)
    }
}

pub(super) async fn insert_audit_in(conn: &mut PgConnection, record: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, address, outcome, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.at)
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.target)
    .bind(&record.address)
    .bind(&record.outcome)
    .bind(&record.reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) fn audit_record(r: &PgRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        address: r.try_get("address")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
    })
}

pub(super) fn session_record(r: &PgRow) -> Result<SessionRecord> {
    let hash: Vec<u8> = r.try_get("hash")?;
    Ok(SessionRecord {
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("session hash is not 32 bytes".into()))?,
        token_id: r.try_get("token_id")?,
        csrf: r.try_get("csrf")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

pub(super) fn token_record(row: &PgRow) -> Result<TokenRecord> {
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        service: row.try_get("service")?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
