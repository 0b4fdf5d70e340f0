//! Tokens (hashes only), browser sessions and the access log.

use super::*;

#[async_trait]
impl SecurityStore for SqliteStore {
    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        let result = async {
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
        .await;
        self.written(result)
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
        let result = async {
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
        .await;
        self.written(result)
    }

    async fn touch_token(&self, id: Uuid, at: OffsetDateTime) -> Result<()> {
        let result = async {
            sqlx::query("UPDATE tokens SET last_used_at = ? WHERE id = ?")
                .bind(to_micros(at))
                .bind(id.to_string())
                .execute(&self.writer)
                .await?;
            Ok(())
        }
        .await;
        self.written(result)
    }

    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        let result = async {
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
        .await;
        self.written(result)
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
        let result = async {
            sqlx::query("DELETE FROM sessions WHERE hash = ?")
                .bind(&hash[..])
                .execute(&self.writer)
                .await?;
            Ok(())
        }
        .await;
        self.written(result)
    }

    async fn insert_audit(&self, record: &AuditRecord) -> Result<()> {
        let result = async { insert_audit_in(&self.writer, record).await }.await;
        self.written(result)
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

    async fn prune(&self, before: OffsetDateTime, keep_at_most: u64) -> Result<u64> {
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let mut audit = sqlx::query("DELETE FROM audit WHERE at < ?")
                .bind(to_micros(before))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            audit += sqlx::query(
                "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC \
                 LIMIT 1 OFFSET ?)",
            )
            .bind(i64::try_from(keep_at_most).unwrap_or(i64::MAX))
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
        .await;
        self.written(result)
    }
}

pub(super) async fn insert_audit_in<'e, E>(executor: E, record: &AuditRecord) -> Result<()>
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
