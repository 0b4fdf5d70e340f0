//! What the publisher records for `/metrics`: publishes, PUBACK latency, connects, reconnects
//! and lost connections, and applied reports by status. Names are registered through the
//! `metrics` facade with static labels, so recording allocates nothing; the server owns the
//! recorder and renders them.

use std::collections::HashMap;

use dials_wire::mqtt::AppliedStatus;
use tokio::time::Instant;

/// When each in-flight publish was written, by packet id, so its PUBACK can be timed.
#[derive(Debug, Default)]
pub(crate) struct PublishClock {
    sent: HashMap<u16, Instant>,
    /// Successful connections of the publishing connection so far.
    connects: u64,
}

impl PublishClock {
    /// The publishing connection is up: a connect, and a reconnect unless it is the first.
    pub fn connected(&mut self) {
        self.sent.clear();
        self.connects += 1;
        metrics::counter!("dials_mqtt_connects_total").increment(1);
        if self.connects > 1 {
            metrics::counter!("dials_mqtt_reconnects_total").increment(1);
        }
    }

    /// The publishing connection was lost (`was_up`: it had been connected).
    pub fn disconnected(&mut self, was_up: bool) {
        self.sent.clear();
        if was_up {
            metrics::counter!("dials_mqtt_disconnects_total").increment(1);
        }
    }

    /// A publish was written to the broker under `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        metrics::counter!("dials_mqtt_publishes_total").increment(1);
        if pkid != 0 {
            self.sent.insert(pkid, Instant::now());
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn acknowledged(&mut self, pkid: u16) {
        if let Some(at) = self.sent.remove(&pkid) {
            metrics::histogram!("dials_mqtt_puback_duration_seconds").record(at.elapsed());
        }
    }
}

/// Counts an applied report as it arrives; `None` for one that could not be read.
pub(crate) fn report(status: Option<AppliedStatus>) {
    let counter = match status {
        Some(AppliedStatus::Applied) => {
            metrics::counter!("dials_applied_reports_total", "status" => "applied")
        }
        Some(AppliedStatus::Rejected) => {
            metrics::counter!("dials_applied_reports_total", "status" => "rejected")
        }
        Some(AppliedStatus::Failed) => {
            metrics::counter!("dials_applied_reports_total", "status" => "failed")
        }
        Some(AppliedStatus::Offline) => {
            metrics::counter!("dials_applied_reports_total", "status" => "offline")
        }
        None => metrics::counter!("dials_applied_reports_total", "status" => "malformed"),
    };
    counter.increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_puback_is_timed_once_and_a_reconnect_forgets_what_was_in_flight() {
        let mut clock = PublishClock::default();
        clock.connected();
        clock.sent(1);
        clock.sent(2);
        clock.acknowledged(1);
        clock.acknowledged(1);
        assert_eq!(clock.sent.len(), 1);
        clock.disconnected(true);
        assert!(clock.sent.is_empty());
        clock.connected();
        assert_eq!(clock.connects, 2);
    }
}
