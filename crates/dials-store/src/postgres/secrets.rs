//! Sealed secret values: stored with their change, found by place, resealed together.

use super::*;

const SECRET: &str = "SELECT service, key, version, key_id, nonce, ciphertext, created_at, \
                      created_by FROM secrets";

#[async_trait]
impl SecretStore for PgStore {
    async fn secrets(
        &self,
        service: &ServiceName,
        places: &[(String, Version)],
    ) -> Result<Vec<SecretRecord>> {
        if places.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = places.iter().map(|(k, _)| k.as_str()).collect();
        let versions = places
            .iter()
            .map(|(_, v)| to_i64(v.0))
            .collect::<Result<Vec<i64>>>()?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SECRET} WHERE service = $1 AND (key, version) IN \
             (SELECT * FROM unnest($2::text[], $3::bigint[]))"
        )))
        .bind(service.as_str())
        .bind(keys)
        .bind(versions)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(secret_record).collect()
    }

    async fn secret_key_ids(&self) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key_id, COUNT(*) FROM secrets GROUP BY key_id ORDER BY key_id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, n)| Ok((id, from_i64(n)?)))
            .collect()
    }

    async fn reseal_secrets(&self, reseal: &ResealFn<'_>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SECRET} ORDER BY service, key, version FOR UPDATE"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let records = rows.iter().map(secret_record).collect::<Result<Vec<_>>>()?;
        let mut changed = 0;
        for record in &records {
            // An error drops the transaction unfinished: it rolls back.
            let Some(new) = reseal(record).map_err(StoreError::Aborted)? else {
                continue;
            };
            sqlx::query(
                "UPDATE secrets SET key_id = $1, nonce = $2, ciphertext = $3 \
                 WHERE service = $4 AND key = $5 AND version = $6",
            )
            .bind(&new.key_id)
            .bind(&new.nonce)
            .bind(&new.ciphertext)
            .bind(record.service.as_str())
            .bind(&record.key)
            .bind(to_i64(record.version.0)?)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

pub(super) fn secret_record(row: &PgRow) -> Result<SecretRecord> {
    Ok(SecretRecord {
        service: service_name(row.try_get("service")?)?,
        key: row.try_get("key")?,
        version: Version(from_i64(row.try_get("version")?)?),
        key_id: row.try_get("key_id")?,
        nonce: row.try_get("nonce")?,
        ciphertext: row.try_get("ciphertext")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
