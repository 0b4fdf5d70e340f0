//! Profiles (one row each, members as JSON) and the import, which writes schemas, config
//! changes and profiles in one transaction.

use serde_json::{Value, json};

use super::configs::upsert_schema;
use super::*;
use crate::{ImportBatch, ProfileMember, ProfileRecord, ProfileStore};

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn save_profile(&self, profile: &ProfileRecord, overwrite: bool) -> Result<bool> {
        let profile = profile.clone();
        self.writer
            .write(move |conn| upsert_profile_in(conn, &profile, overwrite))
            .await
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
        let name = name.to_owned();
        self.writer
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM profiles WHERE name = ?1")?
                    .execute([&name])?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn import(&self, batch: ImportBatch) -> Result<Vec<Committed>> {
        let ImportBatch {
            schemas,
            changes,
            profiles,
        } = batch;
        self.commit_all(changes, move |conn| {
            for record in &schemas {
                upsert_schema(conn, record)?;
            }
            for profile in &profiles {
                upsert_profile_in(conn, profile, true)?;
            }
            Ok(())
        })
        .await
    }
}

/// Inserts a profile, or replaces one of its name when `overwrite`; `false` when one exists and
/// may not be replaced.
pub(super) fn upsert_profile_in(
    conn: &rusqlite::Connection,
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
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET \
         description = excluded.description, members = excluded.members, \
         created_at = excluded.created_at, created_by = excluded.created_by"
    } else {
        "INSERT INTO profiles (name, description, members, created_at, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING"
    };
    let done = conn.prepare_cached(sql)?.execute(rusqlite::params![
        profile.name,
        profile.description,
        Value::Array(members).to_string(),
        to_micros(profile.created_at),
        profile.created_by,
    ])?;
    Ok(done > 0)
}

pub(super) fn profile_record(row: &SqliteRow) -> Result<ProfileRecord> {
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
