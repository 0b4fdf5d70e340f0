//! Whose turn it is to write a service, and the writes queued behind one another.
//!
//! Writes to one service take turns, in arrival order (tokio's mutex is fair), from the read of
//! the current state to the hand-over of the change to the store. Most writes keep their turn
//! until the change is durable and the rest of the process has heard of it. An ordinary write
//! (a PUT or PATCH with no precondition, to a service without secrets) may instead give its
//! turn up as soon as its change is queued in the store: the next write of the service is then
//! computed on top of the queued one (the service's *pending* state) and queued behind it, so
//! many writers of one service share a transaction instead of taking one each. The queued
//! writes then finish — caches, watchers, the publisher — in the order they were queued, each
//! waiting for the one before it; and any write that needs the service's durable state (a
//! precondition, a secret, a schema, a batch) waits for the queued ones to finish first.

use std::collections::HashMap;
use std::sync::Mutex as SyncMutex;

use dials_domain::ServiceName;
use dials_store::ServiceState;
use tokio::sync::{Mutex, MutexGuard, watch};

/// Lock stripes: writes to services hashing to one stripe wait for each other.
const STRIPES: usize = 64;

/// Serialises the writes to each service (see the module). Writers to different services
/// rarely share a stripe, so they proceed in parallel. Memory is fixed however many services a
/// caller names.
#[derive(Debug)]
pub struct WriteLocks {
    stripes: Box<[Stripe]>,
}

#[derive(Debug, Default)]
struct Stripe {
    turn: Mutex<()>,
    queue: SyncMutex<Queue>,
}

/// The writes of a stripe that gave up their turn before finishing.
#[derive(Debug, Default)]
struct Queue {
    /// Finishes once the last queued write (and so every one before it) has finished.
    tail: Option<Finished>,
    /// Per service, the state its last queued write will leave if it commits, and that write's
    /// ticket number.
    pending: HashMap<ServiceName, (u64, ServiceState)>,
    tickets: u64,
}

/// Resolves when a queued write has finished (or was abandoned).
#[derive(Debug, Clone)]
struct Finished(watch::Receiver<bool>);

impl Finished {
    async fn wait(mut self) {
        // A dropped sender (a write abandoned) counts as finished too.
        let _ = self.0.wait_for(|done| *done).await;
    }
}

impl Default for WriteLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }
}

impl WriteLocks {
    /// Waits for the right to write `service` with every earlier write of it finished.
    pub async fn lock(&self, service: &ServiceName) -> MutexGuard<'_, ()> {
        let stripe = self.stripe(service);
        let turn = stripe.turn.lock().await;
        stripe.drain().await;
        turn
    }

    /// Waits for the right to write every service named, each with its earlier writes
    /// finished, taking their stripes in one order (ascending) so two writers of overlapping
    /// sets cannot wait on each other.
    pub async fn lock_all(&self, services: &[ServiceName]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = services.iter().map(stripe_of).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut turns = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            let stripe = &self.stripes[stripe];
            turns.push(stripe.turn.lock().await);
            stripe.drain().await;
        }
        turns
    }

    /// Waits for the right to write `service`, while earlier writes may still be queued.
    pub async fn turn<'a>(&'a self, service: &'a ServiceName) -> Turn<'a> {
        let stripe = self.stripe(service);
        Turn {
            _guard: stripe.turn.lock().await,
            stripe,
            service,
        }
    }

    fn stripe(&self, service: &ServiceName) -> &Stripe {
        &self.stripes[stripe_of(service)]
    }
}

fn stripe_of(service: &ServiceName) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(service.as_str());
    (hash % STRIPES as u64) as usize
}

impl Stripe {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every queued write of the stripe has finished. Called with the turn held,
    /// so no write joins the queue meanwhile.
    async fn drain(&self) {
        let tail = self.queue().tail.clone();
        if let Some(tail) = tail {
            tail.wait().await;
            self.queue().tail = None;
        }
    }
}

/// The right to write one service (see [`WriteLocks::turn`]).
#[derive(Debug)]
pub struct Turn<'a> {
    _guard: MutexGuard<'a, ()>,
    stripe: &'a Stripe,
    service: &'a ServiceName,
}

impl<'a> Turn<'a> {
    /// The state the service's queued writes will leave, if any are queued.
    pub fn pending(&self) -> Option<ServiceState> {
        let queue = self.stripe.queue();
        queue.pending.get(self.service).map(|(_, s)| s.clone())
    }

    /// Waits for the queued writes to finish, keeping the turn.
    pub async fn drain(&self) {
        self.stripe.drain().await;
    }

    /// Records that this write's change is queued in the store and will leave `after` when it
    /// commits, and gives the turn up: the next write may build on `after`.
    pub fn queued(self, after: ServiceState) -> Queued<'a> {
        let (done, finished) = watch::channel(false);
        let mut queue = self.stripe.queue();
        queue.tickets += 1;
        let ticket = queue.tickets;
        queue.pending.insert(self.service.clone(), (ticket, after));
        let before = queue.tail.replace(Finished(finished));
        drop(queue);
        Queued {
            stripe: self.stripe,
            service: self.service,
            ticket,
            before,
            done,
        }
    }
}

/// A write whose change is queued in the store (see [`Turn::queued`]). Dropping it marks it
/// finished, whatever became of it.
#[derive(Debug)]
pub struct Queued<'a> {
    stripe: &'a Stripe,
    service: &'a ServiceName,
    ticket: u64,
    before: Option<Finished>,
    done: watch::Sender<bool>,
}

impl Queued<'_> {
    /// Waits for the write queued before this one to finish, so writes finish in order.
    pub async fn in_order(&mut self) {
        if let Some(before) = &self.before {
            before.clone().wait().await;
            self.before = None;
        }
    }

    /// The change was not committed: the writes queued on top of it will fail their
    /// compare-and-swap, and the next one computes from the service's durable state.
    pub fn failed(&self) {
        self.stripe.queue().pending.remove(self.service);
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut queue = self.stripe.queue();
        if queue
            .pending
            .get(self.service)
            .is_some_and(|(ticket, _)| *ticket == self.ticket)
        {
            queue.pending.remove(self.service);
        }
        drop(queue);
        self.done.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn state(name: &ServiceName, version: u64) -> ServiceState {
        ServiceState {
            name: name.clone(),
            version: dials_domain::Version(version),
            revision: dials_domain::Revision(version),
            document: Some(dials_domain::Document::new()),
            updated_at: time::OffsetDateTime::UNIX_EPOCH,
            updated_by: "test".into(),
        }
    }

    #[tokio::test]
    async fn a_queued_write_leaves_its_state_to_the_next_until_it_finishes() {
        let locks = WriteLocks::default();
        let svc = ServiceName::parse("stt").unwrap();
        let turn = locks.turn(&svc).await;
        assert!(turn.pending().is_none());
        let first = turn.queued(state(&svc, 1));
        let turn = locks.turn(&svc).await;
        assert_eq!(turn.pending().map(|s| s.version.0), Some(1));
        let second = turn.queued(state(&svc, 2));
        drop(first);
        // The later write's state stays pending until it finishes too.
        assert_eq!(
            locks.turn(&svc).await.pending().map(|s| s.version.0),
            Some(2)
        );
        drop(second);
        assert!(locks.turn(&svc).await.pending().is_none());
    }

    #[tokio::test]
    async fn a_failed_write_sends_the_next_one_to_the_durable_state() {
        let locks = WriteLocks::default();
        let svc = ServiceName::parse("stt").unwrap();
        let first = locks.turn(&svc).await.queued(state(&svc, 1));
        let _second = locks.turn(&svc).await.queued(state(&svc, 2));
        first.failed();
        assert!(locks.turn(&svc).await.pending().is_none());
    }

    #[tokio::test]
    async fn queued_writes_finish_in_order_and_a_full_lock_waits_for_them() {
        let locks = Arc::new(WriteLocks::default());
        let svc = ServiceName::parse("stt").unwrap();
        let first = locks.turn(&svc).await.queued(state(&svc, 1));
        let mut second = locks.turn(&svc).await.queued(state(&svc, 2));
        // The second may not finish before the first has.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.in_order())
                .await
                .is_err()
        );
        // A write needing the durable state waits for both.
        let waiting = {
            let locks = locks.clone();
            let svc = svc.clone();
            tokio::spawn(async move {
                let _turn = locks.lock(&svc).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(first);
        second.in_order().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second is not finished yet");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the full lock is granted once both finished")
            .unwrap();
    }
}
