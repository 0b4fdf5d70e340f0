//! What running instances report, recorded in bounded batches.

use super::*;

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn record_instances(
        &self,
        reports: &[InstanceReport],
        limits: &InstanceLimits,
    ) -> Result<RecordedReports> {
        if reports.is_empty() {
            return Ok(RecordedReports::default());
        }
        let (reports, limits) = (reports.to_vec(), *limits);
        self.writer
            .write(move |conn| record_instances_in(conn, &reports, &limits))
            .await
    }

    async fn instances(
        &self,
        service: &ServiceName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(
            "SELECT service, instance, version, status, error, schema_hash, overrides, \
             reported_at, received_at FROM instances WHERE service = ? AND instance > ? \
             ORDER BY instance LIMIT ?",
        )
        .bind(service.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(instance_report).collect()
    }

    async fn forget_instance(&self, service: &ServiceName, instance: &str) -> Result<bool> {
        let (service, instance) = (service.to_string(), instance.to_owned());
        self.writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM instances WHERE service = ?1 AND instance = ?2")?
                    .execute([&service, &instance])?
                    > 0)
            })
            .await
    }

    async fn all_instances(&self) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(
            "SELECT service, instance, version, status, error, schema_hash, overrides, \
             reported_at, received_at FROM instances ORDER BY service, instance",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(instance_report).collect()
    }
}

/// A batch of reports in a handful of statements whatever its size, so that it holds the writer
/// briefly: the batch travels as one JSON array that `json_each` unrolls.
fn record_instances_in(
    conn: &rusqlite::Connection,
    reports: &[InstanceReport],
    limits: &InstanceLimits,
) -> Result<RecordedReports> {
    let mut out = RecordedReports::default();
    // An instance gone: the row keeps what it last reported and is marked offline; an instance
    // never recorded stays unknown.
    let (offline, reports): (Vec<&InstanceReport>, Vec<&InstanceReport>) =
        reports.iter().partition(|r| r.status == OFFLINE);
    for r in offline {
        let marked = conn
            .prepare_cached(
                "UPDATE instances SET status = ?3, error = NULL, reported_at = ?4, \
                 received_at = ?5 WHERE service = ?1 AND instance = ?2",
            )?
            .execute(rusqlite::params![
                r.service.as_str(),
                r.instance,
                OFFLINE,
                to_micros(r.reported_at),
                to_micros(r.received_at),
            ])?;
        if marked > 0 {
            out.recorded += 1;
        } else {
            out.refused += 1;
        }
    }
    // The last report of each instance wins; the earlier ones count as written and replaced.
    let kept: Vec<InstanceReport> = reports.into_iter().cloned().collect();
    let reports: &[InstanceReport] = &kept;
    let mut latest: HashMap<(&str, &str), &InstanceReport> = HashMap::new();
    let mut order = Vec::new();
    for r in reports {
        let key = (r.service.as_str(), r.instance.as_str());
        if latest.insert(key, r).is_some() {
            out.recorded += 1;
        } else {
            order.push(key);
        }
    }
    let services: HashSet<&str> = order.iter().map(|(s, _)| *s).collect();
    let names = serde_json::to_string(&services).map_err(corrupt)?;
    let current: HashMap<String, i64> = pairs(
        conn,
        "SELECT name, version FROM services \
         WHERE document IS NOT NULL AND name IN (SELECT value FROM json_each(?1))",
        &[&names],
    )?;
    let mut valid = Vec::with_capacity(order.len());
    for key in order {
        let report = latest[&key];
        let version = to_i64(report.version.0)?;
        match current.get(key.0) {
            Some(&now) if (1..=now).contains(&version) => valid.push(report),
            _ => out.refused += 1,
        }
    }
    if valid.is_empty() {
        return Ok(out);
    }
    let keys: Vec<(&str, &str)> = valid
        .iter()
        .map(|r| (r.service.as_str(), r.instance.as_str()))
        .collect();
    let existing: HashSet<(String, String)> = pairs(
        conn,
        "SELECT i.service, i.instance FROM json_each(?1) AS j JOIN instances AS i \
         ON i.service = json_extract(j.value, '$[0]') \
         AND i.instance = json_extract(j.value, '$[1]')",
        &[&serde_json::to_string(&keys).map_err(corrupt)?],
    )?;
    let counts: HashMap<String, i64> = pairs(
        conn,
        "SELECT service, COUNT(*) FROM instances \
         WHERE service IN (SELECT value FROM json_each(?1)) GROUP BY service",
        &[&names],
    )?;
    // New instances per service, in arrival order, and the updates that must not be evicted.
    let mut new_by_service: HashMap<&str, Vec<&InstanceReport>> = HashMap::new();
    let mut accepted = Vec::with_capacity(valid.len());
    for report in valid {
        let key = (report.service.to_string(), report.instance.clone());
        if existing.contains(&key) {
            accepted.push(report);
        } else {
            new_by_service
                .entry(report.service.as_str())
                .or_default()
                .push(report);
        }
    }
    // How many stale instances each full service must give up for its newcomers.
    let cap = i64::from(limits.per_service);
    let free = |service: &str| {
        let held = counts.get(service).copied().unwrap_or(0);
        usize::try_from((cap - held).max(0)).unwrap_or(0)
    };
    let wanted: HashMap<&str, usize> = new_by_service
        .iter()
        .filter(|(service, new)| new.len() > free(service))
        .map(|(service, new)| (*service, new.len() - free(service)))
        .collect();
    // The stalest instances of every full service in one query; instances this batch updates
    // are fresh, so enough are fetched to skip them.
    let mut stale: HashMap<String, Vec<String>> = HashMap::new();
    if !wanted.is_empty() {
        let mut fetch: HashMap<&str, usize> = wanted.clone();
        for r in &accepted {
            if let Some(n) = fetch.get_mut(r.service.as_str()) {
                *n += 1;
            }
        }
        let rows: Vec<(String, String)> = pairs(
            conn,
            "SELECT r.service, r.instance FROM (SELECT service, instance, ROW_NUMBER() OVER \
             (PARTITION BY service ORDER BY received_at, instance) AS n FROM instances \
             WHERE service IN (SELECT key FROM json_each(?1)) AND received_at < ?2) AS r \
             JOIN json_each(?1) AS w ON w.key = r.service WHERE r.n <= w.value \
             ORDER BY r.service, r.n",
            &[
                &serde_json::to_string(&fetch).map_err(corrupt)?,
                &to_micros(limits.stale_before),
            ],
        )?;
        for (service, instance) in rows {
            if !existing.contains(&(service.clone(), instance.clone())) {
                stale.entry(service).or_default().push(instance);
            }
        }
    }
    let mut evict: Vec<(String, String)> = Vec::new();
    for (service, new) in new_by_service {
        let mut room = free(service).min(new.len());
        if let Some(&wanted) = wanted.get(service) {
            let gone = stale.remove(service).unwrap_or_default();
            let gone = &gone[..wanted.min(gone.len())];
            room += gone.len();
            evict.extend(gone.iter().map(|i| (service.to_owned(), i.clone())));
        }
        out.refused += (new.len() - room) as u64;
        accepted.extend(new.into_iter().take(room));
    }
    if !evict.is_empty() {
        conn.prepare_cached(
            "DELETE FROM instances WHERE (service, instance) IN \
             (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))",
        )?
        .execute([serde_json::to_string(&evict).map_err(corrupt)?])?;
        out.evicted = evict.len() as u64;
    }
    let rows = accepted
        .iter()
        .map(|r| {
            Ok(serde_json::json!([
                r.service.as_str(),
                r.instance,
                to_i64(r.version.0)?,
                r.status,
                r.error,
                r.schema_hash,
                r.overrides.as_ref().map(|v| v.to_string()),
                to_micros(r.reported_at),
                to_micros(r.received_at),
            ]))
        })
        .collect::<Result<Vec<_>>>()?;
    conn.prepare_cached(
        "INSERT INTO instances (service, instance, version, status, error, schema_hash, \
         overrides, reported_at, received_at) \
         SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
         json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
         json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'), \
         json_extract(value, '$[8]') FROM json_each(?1) WHERE true \
         ON CONFLICT (service, instance) DO UPDATE SET version = excluded.version, \
         status = excluded.status, error = excluded.error, \
         schema_hash = excluded.schema_hash, overrides = excluded.overrides, \
         reported_at = excluded.reported_at, received_at = excluded.received_at",
    )?
    .execute([serde_json::Value::Array(rows).to_string()])?;
    out.recorded += accepted.len() as u64;
    Ok(out)
}

/// The status of an instance that is gone (`dials_wire::mqtt::AppliedStatus::Offline`).
const OFFLINE: &str = "offline";

/// The rows of a two-column query, collected.
fn pairs<A, B, C>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<C>
where
    A: rusqlite::types::FromSql,
    B: rusqlite::types::FromSql,
    C: FromIterator<(A, B)>,
{
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<C>>()?)
}

pub(super) fn instance_report(row: &SqliteRow) -> Result<InstanceReport> {
    Ok(InstanceReport {
        service: service_name(row.try_get("service")?)?,
        instance: row.try_get("instance")?,
        version: Version(from_i64(row.try_get("version")?)?),
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        schema_hash: row.try_get("schema_hash")?,
        overrides: parse_value(row.try_get("overrides")?)?,
        reported_at: from_micros(row.try_get("reported_at")?)?,
        received_at: from_micros(row.try_get("received_at")?)?,
    })
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
