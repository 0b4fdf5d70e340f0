//! Profiles (one row each, members as JSON) and the import, which writes schemas, config
//! changes and profiles in one transaction.

use serde_json::{Value, json};

use super::configs::commit_in;
use super::*;
use crate::{ImportBatch, ProfileMember, ProfileRecord, ProfileStore};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn save_profile(&self, profile: &ProfileRecord, overwrite: bool) -> Result<bool> {
        self.check_file()?;
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            let saved = upsert_profile_in(&mut tx, profile, overwrite).await?;
            tx.commit().await?;
            Ok(saved)
        }
        .await;
        self.written(result)
    }

    async fn profiles(&self) -> Result<Vec<ProfileRecord>> {
        let rows = sqlx::query(
            "SELECT name, description, members, created_at, created_by FROM profiles \
             ORDER BY name",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(profile_record).collect()
    }

    async fn profile(&self, name: &str) -> Result<Option<ProfileRecord>> {
        let row = sqlx::query(
            "SELECT name, description, members, created_at, created_by FROM profiles \
             WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|r| profile_record(&r)).transpose()
    }

    async fn delete_profile(&self, name: &str) -> Result<bool> {
        self.check_file()?;
        let result = async {
            let done = sqlx::query("DELETE FROM profiles WHERE name = ?")
                .bind(name)
                .execute(&self.writer)
                .await?;
            Ok(done.rows_affected() > 0)
        }
        .await;
        self.written(result)
    }

    async fn import(&self, batch: ImportBatch) -> Result<Vec<Committed>> {
        self.check_file()?;
        let result = async {
            let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
            for record in &batch.schemas {
                sqlx::query(
                    "INSERT INTO schemas (service, schema, hash, updated_at, updated_by) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT (service) DO UPDATE SET \
                     schema = excluded.schema, hash = excluded.hash, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(record.service.as_str())
                .bind(record.schema.to_string())
                .bind(&record.hash)
                .bind(to_micros(record.updated_at))
                .bind(&record.updated_by)
                .execute(&mut *tx)
                .await?;
            }
            let mut committed = Vec::with_capacity(batch.changes.len());
            for change in &batch.changes {
                committed.push(commit_in(&mut tx, change).await?);
            }
            for profile in &batch.profiles {
                upsert_profile_in(&mut tx, profile, true).await?;
            }
            tx.commit().await?;
            Ok(committed)
        }
        .await;
        self.written(result)
    }
}

/// Inserts a profile, or replaces one of its name when `overwrite`; `false` when one exists and
/// may not be replaced.
async fn upsert_profile_in(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    profile: &ProfileRecord,
    overwrite: bool,
) -> Result<bool> {
    let members: Vec<Value> = profile
        .members
        .iter()
        .map(|m| {
            json!({
                "service": m.service.as_str(),
                "version": m.version.0,
                "document": m.document,
            })
        })
        .collect();
    let sql = if overwrite {
        "INSERT INTO profiles (name, description, members, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
         description = excluded.description, members = excluded.members, \
         created_at = excluded.created_at, created_by = excluded.created_by"
    } else {
        "INSERT INTO profiles (name, description, members, created_at, created_by) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING"
    };
    let done = sqlx::query(sql)
        .bind(&profile.name)
        .bind(&profile.description)
        .bind(Value::Array(members).to_string())
        .bind(to_micros(profile.created_at))
        .bind(&profile.created_by)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

fn profile_record(row: &SqliteRow) -> Result<ProfileRecord> {
    let text: String = row.try_get("members")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("stored profile members: {what}"));
    let members: Vec<Value> = serde_json::from_str(&text).map_err(|e| corrupt(&e.to_string()))?;
    let members = members
        .into_iter()
        .map(|m| {
            let service = m["service"].as_str().ok_or_else(|| corrupt("service"))?;
            let version = m["version"].as_u64().ok_or_else(|| corrupt("version"))?;
            let document =
                Document::from_value(m["document"].clone()).map_err(|e| corrupt(&e.to_string()))?;
            Ok(ProfileMember {
                service: service_name(service.to_owned())?,
                version: Version(version),
                document,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProfileRecord {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        members,
        created_at: from_micros(row.try_get("created_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}
