//! A whole installation in and out: one read transaction out, one write transaction in.

use super::instances::instance_report;
use super::profiles::{profile_record, upsert_profile_in};
use super::secrets::secret_record;
use super::security::{audit_record, insert_audit_with_id, session_record, token_record};
use super::*;
use crate::{Dump, OutboxRow, Transfer, tables};

#[async_trait]
impl Transfer for SqliteStore {
    async fn export(&self) -> Result<Dump> {
        // One read transaction: WAL gives it one snapshot of the file throughout.
        let mut tx = self.readers.begin().await?;
        let conn: &mut sqlx::SqliteConnection = &mut tx;
        let all = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
        let epoch: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'epoch'")
            .fetch_one(&mut *conn)
            .await?;
        let epoch = Epoch(
            Uuid::parse_str(&epoch)
                .map_err(|e| StoreError::Corrupt(format!("epoch {epoch:?}: {e}")))?,
        );
        let revision: Option<i64> = sqlx::query_scalar("SELECT MAX(revision) FROM changes")
            .fetch_one(&mut *conn)
            .await?;
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
            revision: from_i64(revision.unwrap_or(0))?,
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
        let dump = dump.clone();
        self.writer.write(move |conn| import_in(conn, &dump)).await
    }
}

fn import_in(conn: &rusqlite::Connection, dump: &Dump) -> Result<()> {
    use rusqlite::params;
    let held: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM services) + (SELECT COUNT(*) FROM changes) \
         + (SELECT COUNT(*) FROM tokens) + (SELECT COUNT(*) FROM audit) \
         + (SELECT COUNT(*) FROM profiles) + (SELECT COUNT(*) FROM secrets)",
        [],
        |r| r.get(0),
    )?;
    if held > 0 {
        return Err(StoreError::Aborted(
            "the target database is not empty: it already holds services, tokens or an access \
             log"
            .into(),
        ));
    }
    let text = |d: &Option<Document>| d.as_ref().map(document_text).transpose();
    let value = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    for c in &dump.changes {
        conn.prepare_cached(
            "INSERT INTO changes (revision, service, version, kind, document, actor, reason, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            to_i64(c.revision.0)?,
            c.service.as_str(),
            to_i64(c.version.0)?,
            c.kind.as_str(),
            text(&c.document)?,
            c.actor,
            c.reason,
            to_micros(c.at),
        ])?;
    }
    for s in &dump.services {
        conn.prepare_cached(
            "INSERT INTO services (name, version, revision, document, updated_at, updated_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            s.name.as_str(),
            to_i64(s.version.0)?,
            to_i64(s.revision.0)?,
            text(&s.document)?,
            to_micros(s.updated_at),
            s.updated_by,
        ])?;
    }
    for h in &dump.history {
        conn.prepare_cached(
            "INSERT INTO history (id, revision, service, version, key, kind, old_value, \
             new_value, actor, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            h.id,
            to_i64(h.revision.0)?,
            h.service.as_str(),
            to_i64(h.version.0)?,
            h.key,
            h.kind.as_str(),
            value(&h.old),
            value(&h.new),
            h.actor,
            h.reason,
            to_micros(h.at),
        ])?;
    }
    for o in &dump.outbox {
        conn.prepare_cached(
            "INSERT INTO outbox (id, revision, service, version, created_at, published_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            o.id,
            to_i64(o.revision.0)?,
            o.service.as_str(),
            to_i64(o.version.0)?,
            to_micros(o.created_at),
            o.published_at.map(to_micros),
        ])?;
    }
    for s in &dump.schemas {
        super::configs::upsert_schema(conn, s)?;
    }
    for s in &dump.secrets {
        conn.prepare_cached(
            "INSERT INTO secrets (service, key, version, key_id, nonce, ciphertext, created_at, \
             created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            s.service.as_str(),
            s.key,
            to_i64(s.version.0)?,
            s.key_id,
            s.nonce,
            s.ciphertext,
            to_micros(s.created_at),
            s.created_by,
        ])?;
    }
    for t in &dump.tokens {
        conn.prepare_cached(
            "INSERT INTO tokens (id, name, role, service, hash, created_at, created_by, \
             expires_at, last_used_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            t.id.to_string(),
            t.name,
            t.role,
            t.service,
            &t.hash[..],
            to_micros(t.created_at),
            t.created_by,
            t.expires_at.map(to_micros),
            t.last_used_at.map(to_micros),
            t.revoked_at.map(to_micros),
        ])?;
    }
    for s in &dump.sessions {
        conn.prepare_cached(
            "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            &s.hash[..],
            s.token_id.to_string(),
            s.csrf,
            to_micros(s.created_at),
            to_micros(s.expires_at),
        ])?;
    }
    for p in &dump.profiles {
        upsert_profile_in(conn, p, false)?;
    }
    for r in &dump.instances {
        conn.prepare_cached(
            "INSERT INTO instances (service, instance, version, status, error, schema_hash, \
             overrides, reported_at, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            r.service.as_str(),
            r.instance,
            to_i64(r.version.0)?,
            r.status,
            r.error,
            r.schema_hash,
            value(&r.overrides),
            to_micros(r.reported_at),
            to_micros(r.received_at),
        ])?;
    }
    for a in &dump.audit {
        insert_audit_with_id(conn, a)?;
    }
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'epoch'")?
        .execute([dump.epoch.to_string()])?;
    Ok(())
}

fn outbox_row(row: &SqliteRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.try_get("id")?,
        revision: Revision(from_i64(row.try_get("revision")?)?),
        service: service_name(row.try_get("service")?)?,
        version: Version(from_i64(row.try_get("version")?)?),
        created_at: from_micros(row.try_get("created_at")?)?,
        published_at: row
            .try_get::<Option<i64>, _>("published_at")?
            .map(from_micros)
            .transpose()?,
    })
}
