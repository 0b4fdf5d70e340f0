//! The transactional outbox: pending changes in order, marked published after the broker
//! acknowledged them.

use super::*;

#[async_trait]
impl OutboxStore for PgStore {
    async fn outbox_backlog(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        from_i64(v)
    }

    async fn pending_outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT o.id, o.revision, o.service, o.version, c.kind, c.document, c.actor, c.at \
             FROM outbox o JOIN changes c ON c.revision = o.revision \
             WHERE o.published_at IS NULL AND o.id > $1 ORDER BY o.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    async fn pending_services(&self) -> Result<Vec<ServiceName>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT service FROM outbox WHERE published_at IS NULL ORDER BY service",
        )
        .fetch_all(&self.pool)
        .await?;
        names.into_iter().map(service_name).collect()
    }

    async fn mark_published(&self, ids: &[i64], at: OffsetDateTime) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id = ANY($2)",
        )
        .bind(at)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
