//! What running instances report, recorded in bounded batches.

use std::collections::{HashMap, HashSet};

use super::*;

const REPORT: &str = "SELECT service, instance, version, status, error, schema_hash, overrides, \
                      reported_at, received_at FROM instances";

#[async_trait]
impl InstanceStore for PgStore {
    async fn record_instances(
        &self,
        reports: &[InstanceReport],
        limits: &InstanceLimits,
    ) -> Result<RecordedReports> {
        if reports.is_empty() {
            return Ok(RecordedReports::default());
        }
        let mut tx = self.pool.begin().await?;
        let out = record_instances_in(&mut tx, reports, limits).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn instances(
        &self,
        service: &ServiceName,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REPORT} WHERE service = $1 AND instance > $2 ORDER BY instance LIMIT $3"
        )))
        .bind(service.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_report).collect()
    }

    async fn all_instances(&self) -> Result<Vec<InstanceReport>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REPORT} ORDER BY service, instance"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(instance_report).collect()
    }

    async fn forget_instance(&self, service: &ServiceName, instance: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM instances WHERE service = $1 AND instance = $2")
            .bind(service.as_str())
            .bind(instance)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A batch of reports in one transaction and a handful of statements whatever its size. The
/// services the batch names are locked (an advisory lock each, in name order) so that two
/// processes recording instances of one service keep it within its bound together.
async fn record_instances_in(
    conn: &mut PgConnection,
    reports: &[InstanceReport],
    limits: &InstanceLimits,
) -> Result<RecordedReports> {
    let mut out = RecordedReports::default();
    // An instance gone: the row keeps what it last reported and is marked offline; an instance
    // never recorded stays unknown.
    let (offline, reports): (Vec<&InstanceReport>, Vec<&InstanceReport>) =
        reports.iter().partition(|r| r.status == OFFLINE);
    for r in offline {
        let marked = sqlx::query(
            "UPDATE instances SET status = $3, error = NULL, reported_at = $4, \
             received_at = $5 WHERE service = $1 AND instance = $2",
        )
        .bind(r.service.as_str())
        .bind(&r.instance)
        .bind(OFFLINE)
        .bind(r.reported_at)
        .bind(r.received_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if marked > 0 {
            out.recorded += 1;
        } else {
            out.refused += 1;
        }
    }
    // The last report of each instance wins; the earlier ones count as written and replaced.
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
    if order.is_empty() {
        return Ok(out);
    }
    let mut services: Vec<&str> = order
        .iter()
        .map(|(s, _)| *s)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    services.sort_unstable();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('dials.instances.' || s, 0)) \
         FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n) ORDER BY n",
    )
    .bind(&services)
    .execute(&mut *conn)
    .await?;
    let current: HashMap<String, i64> = sqlx::query_as(
        "SELECT name, version FROM services WHERE document IS NOT NULL AND name = ANY($1)",
    )
    .bind(&services)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
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
    let (names, instances): (Vec<&str>, Vec<&str>) = valid
        .iter()
        .map(|r| (r.service.as_str(), r.instance.as_str()))
        .unzip();
    let existing: HashSet<(String, String)> = sqlx::query_as(
        "SELECT i.service, i.instance FROM unnest($1::text[], $2::text[]) AS k(s, n) \
         JOIN instances AS i ON i.service = k.s AND i.instance = k.n",
    )
    .bind(&names)
    .bind(&instances)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let counts: HashMap<String, i64> = sqlx::query_as(
        "SELECT service, COUNT(*) FROM instances WHERE service = ANY($1) GROUP BY service",
    )
    .bind(&services)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
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
    let mut evict: Vec<(String, String)> = Vec::new();
    let mut services_new: Vec<(&str, Vec<&InstanceReport>)> = new_by_service.into_iter().collect();
    services_new.sort_by_key(|(service, _)| *service);
    for (service, new) in services_new {
        let mut room = free(service).min(new.len());
        if new.len() > free(service) {
            let wanted = new.len() - free(service);
            // Instances this batch updates are fresh, so enough are fetched to skip them.
            let updated = accepted
                .iter()
                .filter(|r| r.service.as_str() == service)
                .count();
            let stalest: Vec<String> = sqlx::query_scalar(
                "SELECT instance FROM instances WHERE service = $1 AND received_at < $2 \
                 ORDER BY received_at, instance LIMIT $3",
            )
            .bind(service)
            .bind(limits.stale_before)
            .bind(i64::try_from(wanted + updated).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
            let gone: Vec<String> = stalest
                .into_iter()
                .filter(|i| !existing.contains(&(service.to_owned(), i.clone())))
                .take(wanted)
                .collect();
            room += gone.len();
            evict.extend(gone.into_iter().map(|i| (service.to_owned(), i)));
        }
        out.refused += (new.len() - room) as u64;
        accepted.extend(new.into_iter().take(room));
    }
    if !evict.is_empty() {
        let (s, i): (Vec<&str>, Vec<&str>) =
            evict.iter().map(|(s, i)| (s.as_str(), i.as_str())).unzip();
        sqlx::query(
            "DELETE FROM instances WHERE (service, instance) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))",
        )
        .bind(&s)
        .bind(&i)
        .execute(&mut *conn)
        .await?;
        out.evicted = evict.len() as u64;
    }
    let mut columns = Columns::default();
    for r in &accepted {
        columns.push(r)?;
    }
    sqlx::query(
        "INSERT INTO instances (service, instance, version, status, error, schema_hash, \
         overrides, reported_at, received_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
         $6::text[], $7::json[], $8::timestamptz[], $9::timestamptz[]) \
         ON CONFLICT (service, instance) DO UPDATE SET version = excluded.version, \
         status = excluded.status, error = excluded.error, \
         schema_hash = excluded.schema_hash, overrides = excluded.overrides, \
         reported_at = excluded.reported_at, received_at = excluded.received_at",
    )
    .bind(columns.service)
    .bind(columns.instance)
    .bind(columns.version)
    .bind(columns.status)
    .bind(columns.error)
    .bind(columns.schema_hash)
    .bind(columns.overrides)
    .bind(columns.reported_at)
    .bind(columns.received_at)
    .execute(&mut *conn)
    .await?;
    out.recorded += accepted.len() as u64;
    Ok(out)
}

/// Reports as columns, for one `unnest` insert.
#[derive(Default)]
struct Columns<'a> {
    service: Vec<&'a str>,
    instance: Vec<&'a str>,
    version: Vec<i64>,
    status: Vec<&'a str>,
    error: Vec<Option<&'a str>>,
    schema_hash: Vec<Option<&'a str>>,
    overrides: Vec<Option<JsonText<&'a serde_json::Value>>>,
    reported_at: Vec<OffsetDateTime>,
    received_at: Vec<OffsetDateTime>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, r: &'a InstanceReport) -> Result<()> {
        self.service.push(r.service.as_str());
        self.instance.push(&r.instance);
        self.version.push(to_i64(r.version.0)?);
        self.status.push(&r.status);
        self.error.push(r.error.as_deref());
        self.schema_hash.push(r.schema_hash.as_deref());
        self.overrides.push(r.overrides.as_ref().map(JsonText));
        self.reported_at.push(r.reported_at);
        self.received_at.push(r.received_at);
        Ok(())
    }
}

/// The status of an instance that is gone (`dials_wire::mqtt::AppliedStatus::Offline`).
const OFFLINE: &str = "offline";

pub(super) fn instance_report(row: &PgRow) -> Result<InstanceReport> {
    Ok(InstanceReport {
        service: service_name(row.try_get("service")?)?,
        instance: row.try_get("instance")?,
        version: Version(from_i64(row.try_get("version")?)?),
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        schema_hash: row.try_get("schema_hash")?,
        overrides: row.try_get("overrides")?,
        reported_at: row.try_get("reported_at")?,
        received_at: row.try_get("received_at")?,
    })
}
