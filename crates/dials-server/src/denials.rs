//! Denied requests (401/403) for the access log, aggregated so that no one can fill the disk
//! with them.
//!
//! Every distinct denial — by actor, address and reason — is logged the first time it happens
//! in a [`WINDOW`]; repeats inside the window are counted and logged as one summary row when it
//! ends. On top of that, at most [`ROWS_PER_WINDOW`] first-time rows are written per window;
//! beyond that, denials are only counted, and one row says how many were not logged one by one.
//! A LAN peer sending thousands of bad requests a second so adds a few rows a minute, not
//! thousands. Pure bookkeeping: the caller writes what it is handed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dials_store::AuditRecord;
use time::OffsetDateTime;

/// How long repeats of one denial are folded into one summary.
pub const WINDOW: Duration = Duration::from_secs(10);
/// First-time denial rows written per window at most.
pub const ROWS_PER_WINDOW: u32 = 100;
/// Distinct denials tracked at once; beyond this they are only counted.
const MAX_TRACKED: usize = 1024;
/// Longest `action` (method and path) kept in a row.
const MAX_ACTION: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    actor: String,
    address: Option<String>,
    reason: String,
}

#[derive(Debug)]
struct Repeats {
    since: Instant,
    count: u64,
    last_action: String,
}

#[derive(Debug)]
struct Inner {
    repeats: HashMap<Key, Repeats>,
    window_start: Instant,
    written: u32,
    suppressed: u64,
}

/// The aggregation state; one per process.
#[derive(Debug)]
pub struct DenialLog {
    inner: Mutex<Inner>,
}

impl Default for DenialLog {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                repeats: HashMap::new(),
                window_start: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }
}

impl DenialLog {
    /// Notes one denial; returns the row to write now, if this one gets its own.
    pub fn note(&self, mut record: AuditRecord, now: Instant) -> Option<AuditRecord> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(inner.window_start) >= WINDOW {
            // A new window for the budget; what was suppressed is reported by `due`.
            inner.window_start = now;
            inner.written = 0;
        }
        truncate(&mut record.action, MAX_ACTION);
        let key = Key {
            actor: record.actor.clone(),
            address: record.address.clone(),
            reason: record.reason.clone().unwrap_or_default(),
        };
        if let Some(repeats) = inner.repeats.get_mut(&key)
            && now.duration_since(repeats.since) < WINDOW
        {
            repeats.count += 1;
            repeats.last_action = record.action;
            return None;
        }
        if inner.written >= ROWS_PER_WINDOW
            || (inner.repeats.len() >= MAX_TRACKED && !inner.repeats.contains_key(&key))
        {
            inner.suppressed += 1;
            return None;
        }
        inner.written += 1;
        inner.repeats.insert(
            key,
            Repeats {
                since: now,
                count: 0,
                last_action: record.action.clone(),
            },
        );
        Some(record)
    }

    /// The summary rows of windows that have ended: one per repeated denial, and one for the
    /// denials not logged one by one.
    pub fn due(&self, now: Instant) -> Vec<AuditRecord> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let at = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        inner.repeats.retain(|key, repeats| {
            if now.duration_since(repeats.since) < WINDOW {
                return true;
            }
            if repeats.count > 0 {
                out.push(AuditRecord {
                    id: 0,
                    at,
                    actor: key.actor.clone(),
                    action: repeats.last_action.clone(),
                    target: None,
                    address: key.address.clone(),
                    outcome: "denied".into(),
                    reason: Some(format!(
                        "{} more denied within {} s: {}",
                        repeats.count,
                        WINDOW.as_secs(),
                        key.reason
                    )),
                });
            }
            false
        });
        if inner.suppressed > 0 && now.duration_since(inner.window_start) >= WINDOW {
            out.push(AuditRecord {
                id: 0,
                at,
                actor: "dials".into(),
                action: "audit.suppressed".into(),
                target: None,
                address: None,
                outcome: "denied".into(),
                reason: Some(format!(
                    "{} denied requests were not logged one by one (over {ROWS_PER_WINDOW} \
                     distinct denials in {} s)",
                    inner.suppressed,
                    WINDOW.as_secs()
                )),
            });
            inner.suppressed = 0;
        }
        out
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(address: &str, reason: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: OffsetDateTime::now_utc(),
            actor: "anonymous".into(),
            action: "GET /api/v1/services".into(),
            target: None,
            address: Some(address.into()),
            outcome: "denied".into(),
            reason: Some(reason.into()),
        }
    }

    #[test]
    fn repeats_of_one_denial_become_one_row_and_one_summary() {
        let log = DenialLog::default();
        let t0 = Instant::now();
        let written: Vec<_> = (0..2000)
            .filter_map(|i| {
                log.note(
                    denial("10.0.0.9", "no token"),
                    t0 + Duration::from_micros(i),
                )
            })
            .collect();
        assert_eq!(written.len(), 1);
        assert!(
            log.due(t0 + Duration::from_secs(1)).is_empty(),
            "the window is still open"
        );
        let summary = log.due(t0 + WINDOW);
        assert_eq!(summary.len(), 1);
        assert_eq!(
            summary[0].reason.as_deref(),
            Some("1999 more denied within 10 s: no token")
        );
        assert!(log.due(t0 + WINDOW * 2).is_empty());
    }

    #[test]
    fn distinct_denials_beyond_the_budget_are_counted_in_one_row() {
        let log = DenialLog::default();
        let t0 = Instant::now();
        let written = (0..5000)
            .filter(|i| {
                log.note(
                    denial(&format!("10.0.{}.{}", i / 256, i % 256), "bad token"),
                    t0,
                )
                .is_some()
            })
            .count();
        assert_eq!(written, ROWS_PER_WINDOW as usize);
        let rows = log.due(t0 + WINDOW);
        let suppressed: Vec<_> = rows
            .iter()
            .filter(|r| r.action == "audit.suppressed")
            .collect();
        assert_eq!(suppressed.len(), 1);
        assert!(
            suppressed[0]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("4900 denied requests"),
            "{:?}",
            suppressed[0].reason
        );
    }

    #[test]
    fn a_long_path_is_cut_short() {
        let log = DenialLog::default();
        let mut long = denial("10.0.0.1", "no token");
        long.action = format!("GET /{}", "é".repeat(5000));
        let row = log.note(long, Instant::now()).unwrap();
        assert!(row.action.len() <= MAX_ACTION + '…'.len_utf8());
    }
}
