//! Profiles (one row each, members as `json`) and the import, which writes schemas, config
//! changes and profiles in one transaction.

use serde_json::{Value, json};

use super::*;
use crate::{ImportBatch, ProfileMember, ProfileRecord, ProfileStore};

const PROFILE: &str = "SELECT name, description, members, created_at, created_by FROM profiles";

#[async_trait]
impl ProfileStore for PgStore {
    async fn save_profile(&self, profile: &ProfileRecord, overwrite: bool) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        upsert_profile_in(&mut conn, profile, overwrite).await
    }

    async fn profiles(&self) -> Result<Vec<ProfileRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{PROFILE} ORDER BY name")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(profile_record).collect()
    }

    async fn profile(&self, name: &str) -> Result<Option<ProfileRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{PROFILE} WHERE name = $1")))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| profile_record(&r)).transpose()
    }

    async fn delete_profile(&self, name: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM profiles WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn import(&self, batch: ImportBatch) -> Result<Vec<Committed>> {
        let ImportBatch {
            schemas,
            changes,
            profiles,
        } = batch;
        self.commit_all(changes, &schemas, &profiles).await
    }
}

/// Inserts a profile, or replaces one of its name when `overwrite`; `false` when one exists and
/// may not be replaced.
pub(super) async fn upsert_profile_in(
    conn: &mut PgConnection,
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
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
         description = excluded.description, members = excluded.members, \
         created_at = excluded.created_at, created_by = excluded.created_by"
    } else {
        "INSERT INTO profiles (name, description, members, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING"
    };
    let done = sqlx::query(sql)
        .bind(&profile.name)
        .bind(&profile.description)
        .bind(JsonText(Value::Array(members)))
        .bind(profile.created_at)
        .bind(&profile.created_by)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) fn profile_record(row: &PgRow) -> Result<ProfileRecord> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("stored profile members: {what}"));
    let members: Value = row.try_get("members")?;
    let Value::Array(members) = members else {
        return Err(corrupt("not an array"));
    };
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
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
