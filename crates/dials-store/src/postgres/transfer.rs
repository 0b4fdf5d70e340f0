//! A whole installation in and out: one repeatable-read snapshot out, one transaction in.

use super::instances::instance_report;
use super::profiles::profile_record;
use super::secrets::secret_record;
use super::security::{audit_record, session_record, token_record};
use super::*;
use crate::{Dump, OutboxRow, Transfer, tables};

#[async_trait]
impl Transfer for PgStore {
    async fn export(&self) -> Result<Dump> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let conn: &mut PgConnection = &mut tx;
        let all = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision")
            .fetch_one(&mut *conn)
            .await?;
        let epoch: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_one(&mut *conn)
            .await?;
        let epoch = Epoch(
            Uuid::parse_str(&epoch)
                .map_err(|e| StoreError::Corrupt(format!("epoch {epoch:?}: {e}")))?,
        );
        let services = all(tables::SERVICES.select()).fetch_all(&mut *conn).await?;
        let changes = all(tables::CHANGES.select()).fetch_all(&mut *conn).await?;
        let history = all(tables::HISTORY.select()).fetch_all(&mut *conn).await?;
        let outbox = all(tables::OUTBOX.select()).fetch_all(&mut *conn).await?;
        let schemas = all(tables::SCHEMAS.select()).fetch_all(&mut *conn).await?;
        let secrets = all(tables::SECRETS.select()).fetch_all(&mut *conn).await?;
        let tokens = all(tables::TOKENS.select()).fetch_all(&mut *conn).await?;
        let sessions = all(tables::SESSIONS.select()).fetch_all(&mut *conn).await?;
        let profiles = all(tables::PROFILES.select()).fetch_all(&mut *conn).await?;
        let instances = all(tables::INSTANCES.select())
            .fetch_all(&mut *conn)
            .await?;
        let audit = all(tables::AUDIT.select()).fetch_all(&mut *conn).await?;
        tx.commit().await?;
        Ok(Dump {
            epoch,
            revision: from_i64(revision)?,
            services: services.iter().map(service_state).collect::<Result<_>>()?,
            changes: changes.iter().map(version_record).collect::<Result<_>>()?,
            history: history.iter().map(history_record).collect::<Result<_>>()?,
            outbox: outbox.iter().map(outbox_row).collect::<Result<_>>()?,
            schemas: schemas.iter().map(schema_record).collect::<Result<_>>()?,
            secrets: secrets.iter().map(secret_record).collect::<Result<_>>()?,
            tokens: tokens.iter().map(token_record).collect::<Result<_>>()?,
            sessions: sessions.iter().map(session_record).collect::<Result<_>>()?,
            profiles: profiles.iter().map(profile_record).collect::<Result<_>>()?,
            instances: instances
                .iter()
                .map(instance_report)
                .collect::<Result<_>>()?,
            audit: audit.iter().map(audit_record).collect::<Result<_>>()?,
        })
    }

    async fn import_all(&self, dump: &Dump) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Holding the revision row keeps every commit out until the import is in.
        let current: i64 = sqlx::query_scalar("SELECT value FROM revision FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
        let held: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM services) + (SELECT COUNT(*) FROM changes) \
             + (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM audit) \
             + (SELECT COUNT(*) FROM profiles) + (SELECT COUNT(*) FROM secrets)",
        )
        .fetch_one(&mut *tx)
        .await?;
        if held > 0 || current > 0 {
            return Err(StoreError::Aborted(
                "the target database is not empty: it already holds services, tokens or an \
                 access log"
                    .into(),
            ));
        }
        let conn: &mut PgConnection = &mut tx;
        for c in &dump.changes {
            sqlx::query(
                "INSERT INTO changes (revision, service, version, kind, document, actor, reason, \
                 at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(to_i64(c.revision.0)?)
            .bind(c.service.as_str())
            .bind(to_i64(c.version.0)?)
            .bind(c.kind.as_str())
            .bind(c.document.as_ref().map(document_json))
            .bind(&c.actor)
            .bind(&c.reason)
            .bind(c.at)
            .execute(&mut *conn)
            .await?;
        }
        for s in &dump.services {
            sqlx::query(
                "INSERT INTO services (name, version, revision, document, updated_at, \
                 updated_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(s.name.as_str())
            .bind(to_i64(s.version.0)?)
            .bind(to_i64(s.revision.0)?)
            .bind(s.document.as_ref().map(document_json))
            .bind(s.updated_at)
            .bind(&s.updated_by)
            .execute(&mut *conn)
            .await?;
        }
        for h in &dump.history {
            sqlx::query(
                "INSERT INTO history (id, revision, service, version, key, kind, old_value, \
                 new_value, actor, reason, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(h.id)
            .bind(to_i64(h.revision.0)?)
            .bind(h.service.as_str())
            .bind(to_i64(h.version.0)?)
            .bind(&h.key)
            .bind(h.kind.as_str())
            .bind(h.old.as_ref().map(JsonText))
            .bind(h.new.as_ref().map(JsonText))
            .bind(&h.actor)
            .bind(&h.reason)
            .bind(h.at)
            .execute(&mut *conn)
            .await?;
        }
        for o in &dump.outbox {
            sqlx::query(
                "INSERT INTO outbox (id, revision, service, version, created_at, published_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(o.id)
            .bind(to_i64(o.revision.0)?)
            .bind(o.service.as_str())
            .bind(to_i64(o.version.0)?)
            .bind(o.created_at)
            .bind(o.published_at)
            .execute(&mut *conn)
            .await?;
        }
        for s in &dump.schemas {
            super::configs::upsert_schema(conn, s).await?;
        }
        for s in &dump.secrets {
            sqlx::query(
                "INSERT INTO secrets (service, key, version, key_id, nonce, ciphertext, \
                 created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s.service.as_str())
            .bind(&s.key)
            .bind(to_i64(s.version.0)?)
            .bind(&s.key_id)
            .bind(&s.nonce)
            .bind(&s.ciphertext)
            .bind(s.created_at)
            .bind(&s.created_by)
            .execute(&mut *conn)
            .await?;
        }
        for t in &dump.tokens {
            sqlx::query(
                "INSERT INTO tokens (id, name, role, service, hash, created_at, created_by, \
                 expires_at, last_used_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(t.id)
            .bind(&t.name)
            .bind(&t.role)
            .bind(&t.service)
            .bind(&t.hash[..])
            .bind(t.created_at)
            .bind(&t.created_by)
            .bind(t.expires_at)
            .bind(t.last_used_at)
            .bind(t.revoked_at)
            .execute(&mut *conn)
            .await?;
        }
        for s in &dump.sessions {
            sqlx::query(
                "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&s.hash[..])
            .bind(s.token_id)
            .bind(&s.csrf)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *conn)
            .await?;
        }
        for p in &dump.profiles {
            super::profiles::upsert_profile_in(conn, p, false).await?;
        }
        for r in &dump.instances {
            sqlx::query(
                "INSERT INTO instances (service, instance, version, status, error, schema_hash, \
                 overrides, reported_at, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.service.as_str())
            .bind(&r.instance)
            .bind(to_i64(r.version.0)?)
            .bind(&r.status)
            .bind(&r.error)
            .bind(&r.schema_hash)
            .bind(r.overrides.as_ref().map(JsonText))
            .bind(r.reported_at)
            .bind(r.received_at)
            .execute(&mut *conn)
            .await?;
        }
        for a in &dump.audit {
            sqlx::query(
                "INSERT INTO audit (id, at, actor, action, target, address, outcome, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(a.id)
            .bind(a.at)
            .bind(&a.actor)
            .bind(&a.action)
            .bind(&a.target)
            .bind(&a.address)
            .bind(&a.outcome)
            .bind(&a.reason)
            .execute(&mut *conn)
            .await?;
        }
        // New rows continue after the ids brought in, and new commits after their revision.
        for table in ["history", "outbox", "audit"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 GREATEST((SELECT MAX(id) FROM {table}), 1), \
                 (SELECT MAX(id) FROM {table}) IS NOT NULL)"
            )))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("UPDATE revision SET value = $1")
            .bind(to_i64(dump.revision)?)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE meta SET value = $1 WHERE key = 'epoch'")
            .bind(dump.epoch.to_string())
            .execute(&mut *conn)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn outbox_row(row: &PgRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        revision: Revision(from_i64(row.try_get("revision")?)?),
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        created_at: row.try_get("created_at")?,
        published_at: row.try_get("published_at")?,
    })
}
