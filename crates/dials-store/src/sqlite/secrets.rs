//! Sealed secret values: stored with their change, found by place, resealed together.

use super::*;

#[async_trait]
impl SecretStore for SqliteStore {
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
        // The callback is the caller's: the writer's connection is borrowed and used here.
        let mut lease = self.writer.exclusive().await?;
        check_file(&self.file)?;
        let result = reseal_in(lease.conn(), reseal);
        if matches!(&result, Err(e) if !matches!(e, StoreError::Aborted(_))) {
            lease.poison();
        }
        result
    }
}

/// Every secret value sealed again in one transaction; an error from `reseal` rolls it back.
fn reseal_in(conn: &mut rusqlite::Connection, reseal: &ResealFn<'_>) -> Result<u64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let records = {
        let mut select = tx.prepare(
            "SELECT service, key, version, key_id, nonce, ciphertext, created_at, created_by \
             FROM secrets ORDER BY service, key, version",
        )?;
        let rows = select.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (service, key, version, key_id, nonce, ciphertext, created_at, created_by) = row?;
            records.push(SecretRecord {
                service: service_name(service)?,
                key,
                version: Version(from_i64(version)?),
                key_id,
                nonce,
                ciphertext,
                created_at: from_micros(created_at)?,
                created_by,
            });
        }
        records
    };
    let mut changed = 0;
    for record in &records {
        let Some(new) = reseal(record).map_err(StoreError::Aborted)? else {
            continue;
        };
        tx.prepare_cached(
            "UPDATE secrets SET key_id = ?1, nonce = ?2, ciphertext = ?3 \
             WHERE service = ?4 AND key = ?5 AND version = ?6",
        )?
        .execute(rusqlite::params![
            new.key_id,
            new.nonce,
            new.ciphertext,
            record.service.as_str(),
            record.key,
            to_i64(record.version.0)?,
        ])?;
        changed += 1;
    }
    tx.commit()?;
    Ok(changed)
}

pub(super) fn secret_record(row: &SqliteRow) -> Result<SecretRecord> {
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
