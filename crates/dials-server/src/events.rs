//! Committed changes, fanned out to this process's watch streams with a memory bound per
//! subscriber.
//!
//! Each change is serialized once and shared by reference. Every subscriber has its own queue
//! whose size is counted in bytes; a subscriber that stops reading (a stalled client, a viewer
//! token on a slow phone) fills its queue up to [`SUBSCRIBER_BYTES`] and is then told it lagged,
//! once, and sent nothing more. Its stream ends with the revision to resume from, so memory
//! held for a stalled watcher is bounded however large or frequent the writes are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use dials_wire::WatchEvent;
use tokio::sync::mpsc;

/// How many bytes of changes may wait for one subscriber before it is dropped as lagging.
pub const SUBSCRIBER_BYTES: usize = 4 * 1024 * 1024;

/// One committed change, serialized once for every subscriber.
#[derive(Debug)]
pub struct Change {
    /// Its global revision.
    pub revision: u64,
    /// Its service.
    pub service: String,
    /// The `WatchEvent` as JSON.
    pub json: Bytes,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Note {
    /// The next change.
    Change(Arc<Change>),
    /// The subscriber fell too far behind; nothing more follows.
    Lagged,
}

#[derive(Debug)]
struct Subscriber {
    queue: mpsc::UnboundedSender<Note>,
    queued: Arc<AtomicUsize>,
    lagged: bool,
}

/// The fan-out of committed changes.
#[derive(Debug, Default)]
pub struct EventHub {
    subscribers: Mutex<Vec<Subscriber>>,
}

impl EventHub {
    /// Whether any stream listens, so writers can skip building events nobody reads.
    pub fn has_subscribers(&self) -> bool {
        !self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// A new subscription: every change published from now on, until it lags.
    pub fn subscribe(&self) -> Subscription {
        let (queue, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Subscriber {
                queue,
                queued: queued.clone(),
                lagged: false,
            });
        Subscription { receiver, queued }
    }

    /// Hands a committed change to every subscriber that has room for it.
    pub fn publish(&self, event: &WatchEvent) {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|s| !s.queue.is_closed() && !s.lagged);
        if subscribers.is_empty() {
            return;
        }
        let json = match serde_json::to_vec(event) {
            Ok(json) => Bytes::from(json),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a change for watchers");
                return;
            }
        };
        let size = json.len();
        let change = Arc::new(Change {
            revision: event.revision,
            service: event.service.clone(),
            json,
        });
        for subscriber in subscribers.iter_mut() {
            let queued = subscriber.queued.load(Ordering::Acquire);
            // An empty queue always takes the next change, however large.
            if queued > 0 && queued + size > SUBSCRIBER_BYTES {
                subscriber.lagged = true;
                let _ = subscriber.queue.send(Note::Lagged);
                continue;
            }
            subscriber.queued.fetch_add(size, Ordering::AcqRel);
            let _ = subscriber.queue.send(Note::Change(change.clone()));
        }
    }
}

/// One subscriber's end: changes in commit order, then [`Note::Lagged`] if it fell behind.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::UnboundedReceiver<Note>,
    queued: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next note, or `None` when the hub is gone.
    pub async fn recv(&mut self) -> Option<Note> {
        let note = self.receiver.recv().await?;
        if let Note::Change(change) = &note {
            self.queued.fetch_sub(change.json.len(), Ordering::AcqRel);
        }
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: u64, size: usize) -> WatchEvent {
        WatchEvent {
            revision,
            service: "tts-worker".into(),
            version: revision,
            kind: "put".into(),
            actor: "admin".into(),
            reason: None,
            at: time::OffsetDateTime::UNIX_EPOCH,
            epoch: uuid::Uuid::nil(),
            config: serde_json::json!({"blob": "x".repeat(size)}),
        }
    }

    #[tokio::test]
    async fn a_reader_gets_every_change_in_order() {
        let hub = EventHub::default();
        let mut sub = hub.subscribe();
        for rev in 1..=100 {
            hub.publish(&event(rev, 100));
        }
        for rev in 1..=100 {
            match sub.recv().await {
                Some(Note::Change(c)) => assert_eq!(c.revision, rev),
                other => panic!("expected change {rev}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_subscriber_holds_a_bounded_number_of_bytes_then_is_told_it_lagged() {
        let hub = EventHub::default();
        let mut stalled = hub.subscribe();
        let mut reader = hub.subscribe();
        let size = 200 * 1024;
        for rev in 1..=400 {
            hub.publish(&event(rev, size));
            // The reader keeps up; the stalled one reads nothing.
            assert!(matches!(reader.recv().await, Some(Note::Change(_))));
        }
        assert!(stalled.queued.load(Ordering::Acquire) <= SUBSCRIBER_BYTES);
        let mut received = 0;
        loop {
            match stalled.recv().await {
                Some(Note::Change(c)) => {
                    received += 1;
                    assert_eq!(c.revision, received);
                }
                Some(Note::Lagged) => break,
                None => panic!("the hub is alive"),
            }
        }
        assert!(
            received * (size as u64) <= SUBSCRIBER_BYTES as u64 + size as u64,
            "{received} changes queued"
        );
        assert!(received < 400);
        // Dropped from the hub: later changes are not queued for it.
        hub.publish(&event(401, 10));
        assert_eq!(stalled.queued.load(Ordering::Acquire), 0);
        assert!(matches!(reader.recv().await, Some(Note::Change(c)) if c.revision == 401));
    }

    #[test]
    fn subscribers_that_went_away_are_forgotten() {
        let hub = EventHub::default();
        let sub = hub.subscribe();
        assert!(hub.has_subscribers());
        drop(sub);
        hub.publish(&event(1, 1));
        assert!(!hub.has_subscribers());
    }
}
