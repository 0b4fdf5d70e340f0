//! Applied reports under a budget of their own.
//!
//! Anyone who can publish to the broker can send reports, so they must never compete with config
//! writes for the database's single writer. A received report is checked against what the
//! publisher knows of each service (which services live, at which version), coalesced with any
//! report of the same instance still waiting (only the newest is kept), and written in batches,
//! one transaction each, at a bounded rate, by a task of its own. What does not fit is dropped
//! and counted; drops are logged as a summary at most once per [`LOG_EVERY`].
//!
//! [`Budget`] is the state machine (no I/O, no clock of its own); [`run_writer`] is the task.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dials_domain::ServiceName;
use dials_store::{InstanceLimits, InstanceReport, RecordedReports};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Most instances the manager keeps per service. When a service is full, a report from a new
/// instance takes the place of the instance heard from least recently if that one is stale
/// (silent for [`STALE_AFTER`]); otherwise the report is dropped. This is also the largest page
/// of `GET /api/v1/services/{s}/instances`.
pub const MAX_INSTANCES_PER_SERVICE: u32 = 1000;

/// An instance silent this long may be evicted to make room for a new one.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Most reports waiting to be written, all services together (each at most
/// [`dials_wire::mqtt::MAX_REPORT_BYTES`], so the wait holds a bounded amount of memory).
const MAX_PENDING: usize = 4096;

/// Most reports written in one transaction.
const BATCH_MAX: usize = 256;

/// Least time after a full batch before the next: under a flood, with [`BATCH_MAX`], at most
/// 2,560 reports a second reach the database, in at most 10 short transactions. A batch that
/// was not full is followed by no pause: the next report is written as soon as it arrives.
const BATCH_EVERY: Duration = Duration::from_millis(100);

/// Drops are logged as one summary at most this often.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(60);

/// What happened to applied reports since start, as `/api/v1/status` shows it.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ReportCounters {
    /// Reports received on `config/applied/+/+`.
    pub received: u64,
    /// Reports written to the database.
    pub recorded: u64,
    /// Reports replaced by a newer report of the same instance before they were written.
    pub superseded: u64,
    /// Reports dropped: unreadable, for an unknown service or an impossible version, for a new
    /// instance of a full service, or arriving faster than they can be written.
    pub dropped: u64,
}

/// Why a report was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Not a report (bad topic, body or size).
    Malformed,
    /// For a service without a document (never written, or deleted).
    UnknownService,
    /// Version 0, or above the service's current version.
    ImpossibleVersion,
    /// The wait is full (all services, or this service's share).
    Full,
    /// The database refused it (service gone, or full of fresh instances) or failed.
    Refused,
}

/// Drops since the last summary, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DropSummary {
    pub malformed: u64,
    pub unknown_service: u64,
    pub impossible_version: u64,
    pub full: u64,
    pub refused: u64,
}

impl DropSummary {
    fn add(&mut self, why: Dropped, n: u64) {
        match why {
            Dropped::Malformed => self.malformed += n,
            Dropped::UnknownService => self.unknown_service += n,
            Dropped::ImpossibleVersion => self.impossible_version += n,
            Dropped::Full => self.full += n,
            Dropped::Refused => self.refused += n,
        }
    }

    fn total(&self) -> u64 {
        self.malformed + self.unknown_service + self.impossible_version + self.full + self.refused
    }
}

type Key = (ServiceName, String);

/// The reports' state machine: known services, the coalesced wait, the counters.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    /// Each service's latest version and whether it has a document, as last published or read.
    known: HashMap<ServiceName, (u64, bool)>,
    /// The newest waiting report of each instance.
    pending: HashMap<Key, InstanceReport>,
    /// Waiting instances, first come first written.
    order: VecDeque<Key>,
    /// Waiting instances per service.
    per_service: HashMap<ServiceName, usize>,
    counters: ReportCounters,
    unlogged: DropSummary,
    last_log: Option<Instant>,
}

impl Budget {
    /// Learns a service's version (only ever forward: an older one is ignored).
    pub(crate) fn service_at(&mut self, service: &ServiceName, version: u64, live: bool) {
        match self.known.get_mut(service) {
            Some(known) if known.0 > version => {}
            Some(known) => *known = (version, live),
            None => {
                self.known.insert(service.clone(), (version, live));
            }
        }
    }

    /// Takes a received report into the wait, or says why not.
    pub(crate) fn offer(&mut self, report: InstanceReport) -> Result<(), Dropped> {
        self.counters.received += 1;
        let verdict = self.admit(&report);
        match verdict {
            Ok(()) => {
                let key = (report.service.clone(), report.instance.clone());
                if self.pending.insert(key.clone(), report).is_some() {
                    self.counters.superseded += 1;
                } else {
                    *self.per_service.entry(key.0.clone()).or_default() += 1;
                    self.order.push_back(key);
                }
            }
            Err(why) => self.drop(why, 1),
        }
        verdict
    }

    fn admit(&self, report: &InstanceReport) -> Result<(), Dropped> {
        match self.known.get(&report.service) {
            Some(&(current, true)) => {
                // An instance gone (its last will) names no version; the store keeps the last.
                let offline = report.status == dials_wire::mqtt::AppliedStatus::Offline.as_str();
                if !offline && (report.version.0 == 0 || report.version.0 > current) {
                    return Err(Dropped::ImpossibleVersion);
                }
            }
            _ => return Err(Dropped::UnknownService),
        }
        let key = (report.service.clone(), report.instance.clone());
        if self.pending.contains_key(&key) {
            return Ok(());
        }
        let waiting = self.per_service.get(&report.service).copied().unwrap_or(0);
        if self.pending.len() >= MAX_PENDING || waiting >= MAX_INSTANCES_PER_SERVICE as usize {
            return Err(Dropped::Full);
        }
        Ok(())
    }

    /// Counts a report that could not even be read.
    pub(crate) fn malformed(&mut self) {
        self.counters.received += 1;
        self.drop(Dropped::Malformed, 1);
    }

    fn drop(&mut self, why: Dropped, n: u64) {
        self.counters.dropped += n;
        self.unlogged.add(why, n);
    }

    /// The next batch to write, oldest first.
    pub(crate) fn take(&mut self, max: usize) -> Vec<InstanceReport> {
        let mut batch = Vec::with_capacity(max.min(self.order.len()));
        while batch.len() < max {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(count) = self.per_service.get_mut(&key.0) {
                *count -= 1;
                if *count == 0 {
                    self.per_service.remove(&key.0);
                }
            }
            if let Some(report) = self.pending.remove(&key) {
                batch.push(report);
            }
        }
        batch
    }

    /// Counts what became of a written batch.
    pub(crate) fn written(&mut self, outcome: RecordedReports) {
        self.counters.recorded += outcome.recorded;
        self.drop(Dropped::Refused, outcome.refused);
    }

    /// Counts a batch the database could not take.
    pub(crate) fn failed(&mut self, n: usize) {
        self.drop(Dropped::Refused, n as u64);
    }

    pub(crate) fn counters(&self) -> ReportCounters {
        self.counters
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// The drops to log now, if there are any and the last summary is [`LOG_EVERY`] old.
    pub(crate) fn drops_to_log(&mut self, now: Instant) -> Option<DropSummary> {
        if self.unlogged.total() == 0 || self.last_log.is_some_and(|t| now - t < LOG_EVERY) {
            return None;
        }
        self.last_log = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// The budget shared by the publisher (which offers) and the writer (which takes).
#[derive(Debug, Default)]
pub(crate) struct Reports {
    budget: Mutex<Budget>,
    ready: Notify,
}

impl Reports {
    pub(crate) fn budget(&self) -> MutexGuard<'_, Budget> {
        // A panic while holding the lock leaves plain counters and maps: still usable.
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a report and wakes the writer; logs a summary of drops when one is due.
    pub(crate) fn offer(&self, report: InstanceReport) {
        let mut budget = self.budget();
        if budget.offer(report).is_ok() {
            self.ready.notify_one();
        } else {
            log_drops(&mut budget);
        }
    }

    pub(crate) fn malformed(&self) {
        let mut budget = self.budget();
        budget.malformed();
        log_drops(&mut budget);
    }

    pub(crate) fn counters(&self) -> ReportCounters {
        self.budget().counters()
    }
}

fn log_drops(budget: &mut Budget) {
    if let Some(d) = budget.drops_to_log(Instant::now()) {
        let c = budget.counters();
        tracing::warn!(
            dropped = d.total(),
            malformed = d.malformed,
            unknown_service = d.unknown_service,
            impossible_version = d.impossible_version,
            over_budget = d.full,
            refused = d.refused,
            received_total = c.received,
            recorded_total = c.recorded,
            "dropped applied reports (a summary, at most one a minute)"
        );
    }
}

/// The limits a batch is written under, as of `now`.
pub(crate) fn limits(now: OffsetDateTime) -> InstanceLimits {
    InstanceLimits {
        per_service: MAX_INSTANCES_PER_SERVICE,
        stale_before: now - STALE_AFTER,
    }
}

/// Writes waiting reports with `write`, as soon as they arrive, in batches of at most
/// [`BATCH_MAX`], a full batch followed by a pause of [`BATCH_EVERY`], until `stop` turns true. Reports still waiting then are lost; instances publish
/// their reports retained, so the broker hands them over again at the next start.
pub(crate) async fn run_writer<W, F>(
    reports: Arc<Reports>,
    mut write: W,
    mut stop: watch::Receiver<bool>,
) where
    W: FnMut(Vec<InstanceReport>) -> F,
    F: Future<Output = Result<RecordedReports, String>>,
{
    let mut tick = tokio::time::interval(LOG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = reports.ready.notified() => {}
            _ = tick.tick() => {
                log_drops(&mut reports.budget());
                continue;
            }
        }
        loop {
            let batch = reports.budget().take(BATCH_MAX);
            if batch.is_empty() {
                break;
            }
            let n = batch.len();
            let outcome = write(batch).await;
            {
                let mut budget = reports.budget();
                match outcome {
                    Ok(outcome) => budget.written(outcome),
                    Err(e) => {
                        tracing::warn!(error = %e, reports = n, "cannot record applied reports");
                        budget.failed(n);
                    }
                }
                log_drops(&mut budget);
            }
            if n < BATCH_MAX {
                // Not a flood: what arrived meanwhile goes in the next batch, at once.
                continue;
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(BATCH_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dials_domain::Version;

    fn name(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    fn report(service: &str, instance: &str, version: u64) -> InstanceReport {
        let now = OffsetDateTime::now_utc();
        InstanceReport {
            service: name(service),
            instance: instance.into(),
            version: Version(version),
            status: "applied".into(),
            error: None,
            schema_hash: None,
            overrides: None,
            reported_at: now,
            received_at: now,
        }
    }

    fn budget_with(services: &[(&str, u64)]) -> Budget {
        let mut b = Budget::default();
        for (s, v) in services {
            b.service_at(&name(s), *v, true);
        }
        b
    }

    #[test]
    fn only_the_newest_report_of_an_instance_waits() {
        let mut b = budget_with(&[("tts", 3)]);
        b.offer(report("tts", "pi-1", 1)).unwrap();
        b.offer(report("tts", "pi-2", 1)).unwrap();
        b.offer(report("tts", "pi-1", 3)).unwrap();
        let batch = b.take(10);
        let got: Vec<_> = batch
            .iter()
            .map(|r| (r.instance.as_str(), r.version.0))
            .collect();
        assert_eq!(got, [("pi-1", 3), ("pi-2", 1)], "first come, newest kept");
        let c = b.counters();
        assert_eq!((c.received, c.superseded, c.dropped), (3, 1, 0));
        assert!(b.take(10).is_empty());
    }

    #[test]
    fn reports_for_unknown_services_and_impossible_versions_are_dropped() {
        let mut b = budget_with(&[("tts", 3)]);
        b.service_at(&name("gone"), 4, false);
        assert_eq!(
            b.offer(report("ghost", "pi", 1)),
            Err(Dropped::UnknownService)
        );
        assert_eq!(
            b.offer(report("gone", "pi", 4)),
            Err(Dropped::UnknownService)
        );
        assert_eq!(
            b.offer(report("tts", "pi", 4)),
            Err(Dropped::ImpossibleVersion)
        );
        assert_eq!(
            b.offer(report("tts", "pi", 0)),
            Err(Dropped::ImpossibleVersion)
        );
        assert_eq!(b.counters().dropped, 4);
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn a_service_only_moves_forward_and_comes_back_when_written_again() {
        let mut b = budget_with(&[("tts", 5)]);
        b.service_at(&name("tts"), 2, true);
        assert!(
            b.offer(report("tts", "pi", 5)).is_ok(),
            "older news ignored"
        );
        b.service_at(&name("tts"), 6, false);
        assert_eq!(
            b.offer(report("tts", "pi", 5)),
            Err(Dropped::UnknownService)
        );
        b.service_at(&name("tts"), 7, true);
        assert!(b.offer(report("tts", "pi", 7)).is_ok());
    }

    #[test]
    fn a_flood_of_new_instances_is_bounded_per_service_and_in_all() {
        let mut b = budget_with(&[("crowded", 1), ("tts", 1)]);
        let per_service = MAX_INSTANCES_PER_SERVICE as usize;
        for i in 0..per_service + 10 {
            let _ = b.offer(report("crowded", &format!("fake-{i}"), 1));
        }
        assert_eq!(b.waiting(), per_service);
        assert_eq!(b.counters().dropped, 10);
        // Another service still has its share, and a waiting instance can still be updated.
        assert!(b.offer(report("tts", "pi-1", 1)).is_ok());
        assert!(b.offer(report("crowded", "fake-0", 1)).is_ok());
        // In all, the wait never exceeds its bound.
        for s in 0..MAX_PENDING / per_service + 1 {
            let service = format!("s{s}");
            b.service_at(&name(&service), 1, true);
            for i in 0..per_service {
                let _ = b.offer(report(&service, &format!("i{i}"), 1));
            }
        }
        assert_eq!(b.waiting(), MAX_PENDING);
        // Taking makes room again.
        assert_eq!(b.take(BATCH_MAX).len(), BATCH_MAX);
        assert!(b.offer(report("tts", "pi-2", 1)).is_ok());
    }

    #[test]
    fn what_the_database_refuses_counts_as_dropped() {
        let mut b = budget_with(&[("tts", 1)]);
        b.offer(report("tts", "pi-1", 1)).unwrap();
        b.offer(report("tts", "pi-2", 1)).unwrap();
        b.offer(report("tts", "pi-3", 1)).unwrap();
        b.take(10);
        b.written(RecordedReports {
            recorded: 2,
            refused: 1,
            evicted: 0,
        });
        b.failed(4);
        let c = b.counters();
        assert_eq!((c.recorded, c.dropped), (2, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn drops_are_summarised_at_most_once_a_minute() {
        let mut b = budget_with(&[]);
        assert_eq!(b.drops_to_log(Instant::now()), None, "nothing to say");
        b.malformed();
        let first = b
            .drops_to_log(Instant::now())
            .expect("the first drop is told");
        assert_eq!(first.malformed, 1);
        for _ in 0..1000 {
            let _ = b.offer(report("ghost", "pi", 1));
        }
        assert_eq!(b.drops_to_log(Instant::now()), None);
        tokio::time::advance(LOG_EVERY - Duration::from_millis(1)).await;
        assert_eq!(b.drops_to_log(Instant::now()), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        let next = b
            .drops_to_log(Instant::now())
            .expect("a summary a minute later");
        assert_eq!((next.unknown_service, next.total()), (1000, 1000));
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_writes_bounded_batches_at_a_bounded_rate() {
        let reports = Arc::new(Reports::default());
        // 3,000 reports: three services, each with as many instances as it may keep.
        for s in ["tts", "stt", "llm"] {
            reports.budget().service_at(&name(s), 1, true);
            for i in 0..MAX_INSTANCES_PER_SERVICE {
                reports.offer(report(s, &format!("pi-{i}"), 1));
            }
        }
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let (stop_tx, stop) = watch::channel(false);
        let writer = tokio::spawn(run_writer(
            reports.clone(),
            move |batch: Vec<InstanceReport>| {
                seen.lock().unwrap().push((Instant::now(), batch.len()));
                let n = batch.len() as u64;
                async move {
                    Ok(RecordedReports {
                        recorded: n,
                        ..RecordedReports::default()
                    })
                }
            },
            stop,
        ));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(450)).await;
        {
            let seen = batches.lock().unwrap();
            assert_eq!(seen.len(), 5, "one batch now, then one per 100 ms");
            assert!(seen.iter().all(|(_, n)| *n == BATCH_MAX));
            assert!(seen.windows(2).all(|w| w[1].0 - w[0].0 >= BATCH_EVERY));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(reports.counters().recorded, 3000, "all written in the end");
        let last = batches.lock().unwrap().last().copied().unwrap();
        assert_eq!(last.0 - start, BATCH_EVERY * 11, "12 batches for 3,000");
        // A lone report later is written at once.
        reports.offer(report("tts", "late", 1));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(reports.counters().recorded, 3001);
        // And so is the next one right after it: only a full batch makes the writer pause
        // (a UI waiting on "applied" after each save must not wait out a timer).
        reports.budget().service_at(&name("vad"), 1, true);
        reports.offer(report("vad", "pi-0", 1));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(reports.counters().recorded, 3002);
        stop_tx.send(true).unwrap();
        writer.await.unwrap();
    }
}
