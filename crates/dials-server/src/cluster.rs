//! Several replicas on one database (PostgreSQL): which one publishes, and how each one follows
//! what the others commit.
//!
//! - **The publisher's lease.** Exactly one replica drains the outbox over MQTT: the one that
//!   holds the `publisher` lease, a row in the database with an expiry by the database's clock.
//!   The holder renews it every [`LEASE_RENEW`] for [`LEASE_TTL`]; the others try to take it
//!   at the same pace and get it only once it has expired, so a replica that dies is replaced
//!   within [`LEASE_TTL`] plus one try. A holder that cannot renew stops publishing a full try
//!   before its lease can have expired, so two replicas never publish at once while their
//!   clocks run at the same rate. A replica that stops cleanly gives the lease up at once. The
//!   new holder connects, republishes every service's latest envelope (as after any connect)
//!   and publishes the outbox from its first unpublished row: what the dead one had in flight
//!   is published again, never lost.
//! - **Following.** Every replica listens for the database's notices (a commit, a schema, a
//!   revoked token) and reads the change log after the last revision it has seen, on each
//!   notice, on each of its own commits, and every [`CATCH_UP_EVERY`] in case a notice was
//!   lost. Each change moves the config cache on (never back), rebuilds the search index, goes
//!   to this replica's watch streams in revision order, and tells the publisher the outbox has
//!   rows it was not handed. Schemas and tokens, which the change log does not carry, are
//!   checked against the database every [`RECHECK_EVERY`] and whenever notices were lost.
//!
//! On a database of its own (SQLite) none of this runs: this process is the only writer, always
//! publishes, and learns of every change from its own commits.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dials_domain::ServiceName;
use dials_store::{Notice, Store, VersionRecord};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::AppState;

/// The name of the lease whose holder publishes.
pub const PUBLISHER_LEASE: &str = "publisher";

/// How long a claim of the lease lasts.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// How often the lease is renewed by its holder, and tried by the others.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);

/// How often the change log is read even without a notice.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(2);

/// How often schemas and tokens are checked against the database.
pub const RECHECK_EVERY: Duration = Duration::from_secs(30);

/// Changes read from the log at a time.
const PAGE: u32 = 256;

/// This process among the replicas that share its database.
#[derive(Debug)]
pub struct Replica {
    /// Its name in logs and `/api/v1/status`: host, process id and a random suffix.
    pub id: String,
    /// Whether the database is shared with other replicas.
    pub shared: bool,
    leading: watch::Receiver<bool>,
    /// The latest revision this replica's caches and watchers have caught up with.
    followed: AtomicU64,
    /// Poked by this replica's own commits, so the follower does not wait for their notice.
    poke: Notify,
    lease: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl Replica {
    /// The only process on its database: it always publishes.
    pub fn single() -> Self {
        Self {
            id: replica_id(),
            shared: false,
            leading: watch::channel(true).1,
            followed: AtomicU64::new(0),
            poke: Notify::new(),
            lease: Mutex::new(None),
        }
    }

    /// Joins the replicas of `store`: when it is shared, starts trying for the publisher's
    /// lease in the background.
    pub fn join(store: Arc<dyn Store>) -> Self {
        if !store.shared() {
            return Self::single();
        }
        let id = replica_id();
        let (lead, leading) = watch::channel(false);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(hold_lease(store, id.clone(), lead, stopped));
        tracing::info!(replica = %id, "sharing the database with other replicas");
        Self {
            id,
            shared: true,
            leading,
            followed: AtomicU64::new(0),
            poke: Notify::new(),
            lease: Mutex::new(Some((stop, task))),
        }
    }

    /// Whether this replica publishes now, as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Whether this replica publishes now.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// The latest revision this replica has followed.
    pub fn followed(&self) -> u64 {
        self.followed.load(Ordering::Acquire)
    }

    /// Called after each of this replica's own commits.
    pub fn committed_here(&self) {
        self.poke.notify_one();
    }

    /// Gives the publisher's lease up (the publisher has stopped), so another replica takes
    /// over at its next try rather than after the lease expires.
    pub async fn leave(&self) {
        let lease = self.lease.lock().ok().and_then(|mut lease| lease.take());
        if let Some((stop, task)) = lease {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
    }
}

/// `host-pid-xxxx`: whom the lease names, readable in the database and the logs.
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dials".to_owned());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..4];
    format!("{host}-{}-{suffix}", std::process::id())
}

/// Claims or renews the publisher's lease every [`LEASE_RENEW`] until told to stop, and says
/// through `lead` whether this replica may publish.
async fn hold_lease(
    store: Arc<dyn Store>,
    id: String,
    lead: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut held_until: Option<Instant> = None;
    loop {
        let asked = Instant::now();
        let claim = tokio::time::timeout(
            LEASE_RENEW,
            store.claim_lease(PUBLISHER_LEASE, &id, LEASE_TTL),
        )
        .await;
        match claim {
            Ok(Ok(true)) => held_until = Some(asked + LEASE_TTL),
            Ok(Ok(false)) => held_until = None,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the publisher's lease"),
            Err(_) => tracing::warn!("the database did not answer the publisher's lease in time"),
        }
        // Measured from before the claim was sent, so this replica's view of its lease ends
        // before the database's does, and it stops a full try ahead of that.
        let leading = held_until.is_some_and(|until| Instant::now() + LEASE_RENEW < until);
        if *lead.borrow() != leading {
            if leading {
                tracing::info!(replica = %id, "this replica publishes now (it holds the publisher's lease)");
            } else {
                tracing::info!(replica = %id, "this replica no longer holds the publisher's lease");
            }
            lead.send_replace(leading);
        }
        tokio::select! {
            () = tokio::time::sleep(LEASE_RENEW) => {}
            _ = stop.changed() => break,
        }
    }
    lead.send_replace(false);
    if held_until.is_some()
        && let Err(e) = store.release_lease(PUBLISHER_LEASE, &id).await
    {
        tracing::warn!(error = %e, "cannot give the publisher's lease up; it expires by itself");
    }
}

/// Follows what every replica commits, until the process stops. Does nothing on a database of
/// its own.
pub async fn follow_forever(state: AppState) {
    if !state.replica.shared {
        return;
    }
    let mut stopping = state.stopping.subscribe();
    let mut notices = listen(&state).await;
    let mut last = loop {
        match state.store.latest_revision().await {
            Ok(revision) => break revision,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the latest revision; retrying");
                tokio::select! {
                    () = tokio::time::sleep(CATCH_UP_EVERY) => {}
                    _ = stopping.changed() => return,
                }
            }
        }
    };
    state.replica.followed.store(last, Ordering::Release);
    let mut catch_up = tokio::time::interval(CATCH_UP_EVERY);
    catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval_at(Instant::now() + RECHECK_EVERY, RECHECK_EVERY);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopping.changed() => return,
            notice = next_notice(&mut notices) => match notice {
                Some(Notice::Changed) => {}
                Some(Notice::Schema(service)) => schema_changed(&state, &service).await,
                Some(Notice::TokenRevoked(id)) => state.tokens.forget(id),
                Some(Notice::Missed) => recheck_all(&state).await,
                None => {
                    tracing::warn!("the database's notices stopped; following by polling until they are back");
                    notices = None;
                }
            },
            () = state.replica.poke.notified() => {}
            _ = catch_up.tick() => {}
            _ = recheck.tick() => {
                recheck_all(&state).await;
                if notices.is_none() {
                    notices = listen(&state).await;
                }
            }
        }
        catch_up_changes(&state, &mut last).await;
    }
}

async fn listen(state: &AppState) -> Option<mpsc::Receiver<Notice>> {
    match state.store.notices().await {
        Ok(notices) => notices,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for the database's notices; following by polling");
            None
        }
    }
}

async fn next_notice(notices: &mut Option<mpsc::Receiver<Notice>>) -> Option<Notice> {
    match notices {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the change log after `last` and shows every change, in revision order.
async fn catch_up_changes(state: &AppState, last: &mut u64) {
    loop {
        let page = match state.store.changes_since(*last, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the change log; trying again later");
                return;
            }
        };
        let full = page.len() >= PAGE as usize;
        if !page.is_empty()
            && let Some(publisher) = &state.publisher
        {
            publisher.store_changed();
        }
        for record in page {
            *last = record.revision.0;
            show_change(state, record).await;
        }
        state.replica.followed.store(*last, Ordering::Release);
        if !full {
            return;
        }
    }
}

/// One change, committed here or by another replica: watchers always get it (a stream drops
/// what it has sent already); the cache moves on when it holds an older version.
async fn show_change(state: &AppState, record: VersionRecord) {
    // An instance's override is neither cached nor watched here, as on a database of its own.
    if record.service.is_instance_layer() {
        return;
    }
    let schema = match crate::schemas::schema_of(state, &record.service).await {
        Ok(schema) => schema,
        Err(e) => {
            tracing::warn!(service = %record.service, error = %e, "cannot read the schema of a followed change");
            None
        }
    };
    crate::ops::tell_watchers(state, &record, schema.as_deref());
    let behind = state
        .configs
        .get(&record.service)
        .is_none_or(|entry| entry.version < record.version.0);
    if !behind {
        // Shown here already; only a search index built since may predate it.
        state.schemas.invalidate_search();
    } else if let Err(e) = crate::ops::show(state, record, schema.as_deref(), false) {
        tracing::warn!(error = %e, "cannot cache a followed change");
    }
}

/// Another replica registered a schema: compile it as this one would have, and show the
/// defaults it brings.
async fn schema_changed(state: &AppState, service: &str) {
    let Ok(service) = ServiceName::parse(service) else {
        return;
    };
    if let Err(e) = reload_schema(state, &service).await {
        tracing::warn!(%service, error = %e, "cannot follow a schema registered by another replica");
    }
}

async fn reload_schema(state: &AppState, service: &ServiceName) -> Result<(), crate::ApiError> {
    let compiled = match state.store.schema(service).await? {
        Some(record) => dials_schema::CompiledSchema::compile(&record.schema)
            .ok()
            .map(Arc::new),
        None => None,
    };
    state.schemas.set(service, compiled);
    crate::ops::refresh_cache(state, service).await
}

/// Checks every cached schema against the database and forgets every checked token, for what
/// notices could not be trusted to bring.
async fn recheck_all(state: &AppState) {
    state.tokens.clear();
    let stored = match state.store.schemas().await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the schemas to recheck them");
            return;
        }
    };
    for record in stored {
        if state
            .schemas
            .cached_hash(&record.service)
            .is_some_and(|hash| hash != Some(record.hash.clone()))
            && let Err(e) = reload_schema(state, &record.service).await
        {
            tracing::warn!(service = %record.service, error = %e, "cannot follow a schema registered by another replica");
        }
    }
}
