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
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let rows = sqlx::query(
                "SELECT service, key, version, key_id, nonce, ciphertext, created_at, created_by \
                 FROM secrets ORDER BY service, key, version",
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut changed = 0;
            for row in &rows {
                let record = secret_record(row)?;
                let Some(new) = reseal(&record).map_err(StoreError::Aborted)? else {
                    continue;
                };
                sqlx::query(
                    "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? \
                     WHERE service = ? AND key = ? AND version = ?",
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
        .await;
        self.written(result)
    }
}

fn secret_record(row: &SqliteRow) -> Result<SecretRecord> {
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
