//! The publisher: one task that owns the manager's two MQTT connections and drains the outbox.
//!
//! Why one task: the task numbers each publish as it encodes it, and the broker acknowledges
//! by packet id. Owning the queue and handling every event of both connections in one task lets
//! us tag each packet id with the outbox row it carries without any locking, and know for
//! certain that a row is marked published only after its PUBACK. Each connection has a small
//! driver task of its own (`link` for the publishing one; a rumqttc event loop for the
//! subscribing one) that only hands its events over, in order, so that a connect in progress is
//! never cancelled by the other connection's events.
//!
//! Why two connections: the *publishing* connection only publishes (envelopes, audit, health,
//! repairs) and carries the last will; the *subscribing* connection only receives (applied
//! reports, and the manager's own retained topics for `repair`). On one connection, the broker's
//! PUBACK for an envelope was a small segment the manager had nothing to answer with, so the
//! manager's kernel delayed its TCP ACK (40 ms on Linux); a broker that keeps Nagle's algorithm
//! on its sockets (Mosquitto's default) then held the applied report that followed until that
//! ACK came. Apart, every message the broker sends on the subscribing connection is a QoS 1
//! publish that the manager answers at once with a PUBACK, which carries the TCP ACK, and what
//! the publishing connection receives (PUBACKs) is never followed by anything that waits for
//! them. The broker counts as connected in `/api/v1/status` only while both are up and the
//! subscriptions acknowledged.
//!
//! Both connections use a clean session. On every (re)connect of the publishing one nothing is
//! in flight: the task flushes what was acknowledged, republishes every service's latest
//! envelope (brokers may lose retained messages when they restart), then re-sends every row
//! still pending, oldest first. Rows are published in outbox order, which is version order per
//! service; duplicates are possible (at-least-once) and receivers drop versions they already
//! hold. The subscribing connection subscribes only once the publishing one has told `repair`
//! what its topics should hold, and keeps its subscriptions across the other's reconnects.
//!
//! A committed change reaches the task in memory ([`PublisherHandle::committed`]), so the common
//! case publishes without reading the store; the outbox row stays the durable record, and the
//! task reads the store whenever memory cannot vouch for the order (after a restart or a
//! reconnect, or when a change committed before another has not been handed over yet).
//!
//! What arrives on the subscriptions is judged by `repair` (the retained topics, repaired when
//! another client overwrites them) or handed to the report budget, whose own task writes it
//! (see `reports`): neither ever waits on the database in this loop.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dials_store::{OutboxItem, PublisherStore};
use dials_wire::EnvelopeSigner;
use dials_wire::mqtt::{AppliedReport, AuditEvent, Health, HealthDatabase, HealthMode};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS,
    SubscribeFilter,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::link::{self, BACKOFF_MAX, BACKOFF_MIN, LinkEvent, LinkOptions};
use crate::repair::{Kind, Repair, Retained};
use crate::reports::{self, ReportCounters, Reports};
use crate::window::{Msg, Tag, Window};
use crate::{BrokerChoice, Topics};

/// Publishes allowed in flight (sent, not yet acknowledged) at once.
const WINDOW: usize = 256;
/// How long acknowledged rows may wait before being marked published in one batch.
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// How often health is republished while connected.
const HEALTH_EVERY: Duration = Duration::from_secs(30);
/// The publishing connection's keep-alive: it pings the broker this often.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The largest packet either connection sends or takes.
const MAX_PACKET: usize = 2 * 1024 * 1024;
/// Committed changes held in memory for the task at most; past that it reads the store.
const FRESH_MAX: usize = 4096;
/// How often the outbox is read even when no change was handed over: a change whose writer
/// went away between its commit and the hand-over is published within this.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a change handed over in memory waits for one committed before it that has not
/// been handed over yet (its writer is still on its way, on the other core) before the outbox
/// is read instead. Concurrent writers hand over in whatever order their tasks run; reading the
/// store at every such gap would read and sign again what is about to arrive signed.
const GAP_WAIT: Duration = Duration::from_millis(50);
/// How often repairs that had to wait are looked at.
const REPAIR_TICK: Duration = Duration::from_millis(250);

/// What the publisher needs to know.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Where to connect (not `Disabled`).
    pub choice: BrokerChoice,
    /// MQTT client id.
    pub client_id: String,
    /// Topic names.
    pub topics: Topics,
    /// The database's epoch, stamped on every envelope.
    pub epoch: Uuid,
    /// PEM of the CA to trust for `mqtts://` instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Other messages the manager keeps retained (topic, payload) — the signing-key rotation
    /// chain — published again after every connect.
    pub retained_extras: Vec<(String, Vec<u8>)>,
}

/// The broker connection as `/api/v1/status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerState {
    /// `embedded` or `external`.
    pub mode: &'static str,
    /// Where it connects, without credentials.
    pub url: Option<String>,
    /// Whether the manager is connected now: its publishing connection up, and its subscribing
    /// connection up with its subscriptions acknowledged.
    pub connected: bool,
    /// The last connection error, if any.
    pub last_error: Option<String>,
    /// Outbox rows acknowledged by the broker since start.
    pub published: u64,
    /// Applied reports since start: received, recorded, superseded before being written, and
    /// dropped (see `MAX_INSTANCES_PER_SERVICE`).
    pub reports: ReportCounters,
    /// Whether this process publishes: it holds the publisher's lease (always, on a database
    /// of its own). Replicas that do not stand by, unconnected.
    pub publishing: bool,
    /// Retained messages of other clients on the manager's topics that were set right since
    /// start.
    pub repairs: u64,
}

/// Committed changes handed over in memory, by outbox id, waiting for the task.
#[derive(Debug, Default)]
struct Fresh {
    items: BTreeMap<i64, Handed>,
    /// Set when changes were dropped for want of room, or were committed by another process:
    /// the store holds them.
    dropped: bool,
    /// Retained topics to clear (an empty retained message), e.g. a forgotten instance's report.
    clears: Vec<String>,
    /// Set when the manager's mode changed: health goes out at once, not at the next tick.
    health: bool,
}

/// A change handed over, with its envelope when the writer signed it already.
#[derive(Debug)]
struct Handed {
    item: OutboxItem,
    envelope: Option<Vec<u8>>,
}

/// What handing a committed change over takes: the signer, and the publisher's memory.
struct HandOver {
    signer: Arc<EnvelopeSigner>,
    epoch: Uuid,
    fresh: Arc<Mutex<Fresh>>,
    wake: Arc<Notify>,
}

impl HandOver {
    /// Signs the change's envelope and leaves it for the publishing task.
    fn give(self, item: OutboxItem) {
        let envelope = item.document.as_ref().and_then(|doc| {
            self.signer
                .sign_to_bytes(
                    item.service.as_str(),
                    item.version.0,
                    item.revision.0,
                    doc.as_map(),
                    self.epoch,
                    OffsetDateTime::now_utc(),
                )
                .ok()
        });
        let item = Handed { item, envelope };
        if let Ok(mut fresh) = self.fresh.lock() {
            if fresh.items.len() >= FRESH_MAX {
                // The broker is away or slow: the store holds every row, and the task reads it.
                fresh.items.clear();
                fresh.dropped = true;
            }
            fresh.items.insert(item.item.id, item);
        }
        self.wake.notify_one();
    }
}

impl Fresh {
    /// The changes right after `cursor`, in outbox order, when memory holds an unbroken run of
    /// them; `None` when the store must be read instead (a gap: a change committed earlier has
    /// not been handed over, or was dropped when memory was full).
    fn take_after(&mut self, cursor: i64, limit: usize) -> Option<Vec<Handed>> {
        self.items = self.items.split_off(&(cursor + 1));
        if self.items.is_empty() {
            return Some(Vec::new());
        }
        let mut run = Vec::new();
        let mut next = cursor + 1;
        while run.len() < limit {
            match self.items.remove(&next) {
                Some(item) => run.push(item),
                None => break,
            }
            next += 1;
        }
        (!run.is_empty()).then_some(run)
    }
}

/// The running publisher: hand it each committed change, read its state, stop it.
#[derive(Debug)]
pub struct PublisherHandle {
    wake: Arc<Notify>,
    signer: Arc<EnvelopeSigner>,
    epoch: Uuid,
    fresh: Arc<Mutex<Fresh>>,
    state: watch::Receiver<BrokerState>,
    stop: watch::Sender<bool>,
    reports: Arc<Reports>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl PublisherHandle {
    /// Tells the publisher that the outbox has something new. Cheap; never waits.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Hands the publisher a change just committed (its outbox row is already durable), so it
    /// can publish without reading it back. Never waits. The envelope is signed on a task of
    /// its own: writers sign in parallel rather than in turn in the one publishing task, and
    /// the writer's answer does not wait for the signature (most of a write's CPU).
    pub fn committed(&self, item: OutboxItem) {
        let hand = HandOver {
            signer: self.signer.clone(),
            epoch: self.epoch,
            fresh: self.fresh.clone(),
            wake: self.wake.clone(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { hand.give(item) })),
            Err(_) => hand.give(item),
        }
    }

    /// Tells the publisher that the outbox holds changes it was not handed (committed by
    /// another process on a shared database): it reads them from the store. Cheap; never
    /// waits.
    pub fn store_changed(&self) {
        if let Ok(mut fresh) = self.fresh.lock() {
            fresh.dropped = true;
        }
        self.wake.notify_one();
    }

    /// Clears a retained topic (publishes an empty retained message to it) once connected:
    /// what a forgotten instance last reported, so that it is not recorded again when the
    /// subscription is made anew. Cheap; never waits.
    pub fn clear_retained(&self, topic: String) {
        if let Ok(mut fresh) = self.fresh.lock()
            && fresh.clears.len() < FRESH_MAX
        {
            fresh.clears.push(topic);
        }
        self.wake.notify_one();
    }

    /// Tells the publisher that the manager's mode changed (read-only or back): the retained
    /// health is republished at once. Cheap; never waits.
    pub fn health_changed(&self) {
        if let Ok(mut fresh) = self.fresh.lock() {
            fresh.health = true;
        }
        self.wake.notify_one();
    }

    /// The connection's state now.
    pub fn state(&self) -> BrokerState {
        let mut state = self.state.borrow().clone();
        state.reports = self.reports.counters();
        state
    }

    /// A receiver that sees every state change (tests wait on it instead of sleeping).
    pub fn watch_state(&self) -> watch::Receiver<BrokerState> {
        self.state.clone()
    }

    /// Publishes `ok:false` health, disconnects cleanly and waits for the task. What was not
    /// acknowledged stays in the outbox for the next start.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Starts publishers.
#[derive(Debug)]
pub struct Publisher;

impl Publisher {
    /// Spawns the publisher task.
    ///
    /// `lead` says whether this process may publish: always `true` on a database of its own;
    /// on one shared by several replicas, whether it holds the publisher's lease. While it is
    /// `false` the publisher stays unconnected and changes are left in the outbox.
    pub fn spawn(
        config: PublisherConfig,
        store: Arc<dyn PublisherStore>,
        signer: Arc<EnvelopeSigner>,
        lead: watch::Receiver<bool>,
    ) -> PublisherHandle {
        let wake = Arc::new(Notify::new());
        let initial = BrokerState {
            mode: config.choice.mode(),
            url: config.choice.display_url(),
            connected: false,
            last_error: None,
            published: 0,
            reports: ReportCounters::default(),
            repairs: 0,
            publishing: false,
        };
        let (state_tx, state) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let reports = Arc::new(Reports::default());
        let writer_store = store.clone();
        let writer = tokio::spawn(reports::run_writer(
            reports.clone(),
            move |batch: Vec<dials_store::InstanceReport>| {
                let store = writer_store.clone();
                async move {
                    let limits = reports::limits(OffsetDateTime::now_utc());
                    store
                        .record_instances(&batch, &limits)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
            stop_rx.clone(),
        ));
        let fresh = Arc::new(Mutex::new(Fresh::default()));
        let epoch = config.epoch;
        let task = Task::new(
            config,
            store,
            signer.clone(),
            (wake.clone(), fresh.clone()),
            state_tx,
            reports.clone(),
        );
        let handle = tokio::spawn(task.run(stop_rx, lead));
        PublisherHandle {
            wake,
            signer,
            epoch,
            fresh,
            state,
            stop,
            reports,
            tasks: Mutex::new(vec![handle, writer]),
        }
    }
}

struct Task {
    config: PublisherConfig,
    store: Arc<dyn PublisherStore>,
    signer: Arc<EnvelopeSigner>,
    wake: Arc<Notify>,
    /// Committed changes handed over in memory.
    fresh: Arc<Mutex<Fresh>>,
    /// Whether the outbox may hold rows after the cursor that memory will not hand over (after
    /// a (re)connect, a full page read, or changes dropped from memory).
    store_behind: bool,
    /// Since a gap was seen in what memory holds: when to stop waiting for it and read the
    /// outbox.
    gap_deadline: Option<tokio::time::Instant>,
    state: watch::Sender<BrokerState>,
    /// The publishing connection is up.
    connected: bool,
    /// Its writing half, while it is up.
    link: Option<link::Sender>,
    /// The subscribing connection: up, subscriptions requested, subscriptions acknowledged.
    sub: SubState,
    /// The session's queue, window and acknowledgements.
    window: Window,
    /// What the retained topics should hold.
    retained: Retained,
    /// Applied reports waiting for their writer.
    reports: Arc<Reports>,
    /// When repairs were last logged, and how many since.
    repairs_logged: (Option<tokio::time::Instant>, u64),
    /// Publish and PUBACK times, for `/metrics`.
    clock: crate::metrics::PublishClock,
}

impl Task {
    fn new(
        config: PublisherConfig,
        store: Arc<dyn PublisherStore>,
        signer: Arc<EnvelopeSigner>,
        (wake, fresh): (Arc<Notify>, Arc<Mutex<Fresh>>),
        state: watch::Sender<BrokerState>,
        reports: Arc<Reports>,
    ) -> Self {
        let retained = Retained::new(signer.verifying_key(), config.epoch);
        Self {
            config,
            store,
            signer,
            wake,
            fresh,
            store_behind: true,
            gap_deadline: None,
            state,
            connected: false,
            link: None,
            sub: SubState::default(),
            window: Window::new(WINDOW),
            retained,
            reports,
            repairs_logged: (None, 0),
            clock: Default::default(),
        }
    }

    /// The options both connections share: the broker, TLS, credentials and room for the
    /// largest message, under `client_id`.
    fn base_options(&self, client_id: String) -> MqttOptions {
        let mut options =
            crate::connection::options(&self.broker(), client_id, self.config.ca_pem.as_deref());
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        options
    }

    /// Where both connections connect.
    fn broker(&self) -> dials_wire::mqtt::BrokerUrl {
        self.config
            .choice
            .broker_url()
            .unwrap_or_else(|| dials_wire::mqtt::BrokerUrl::plain("127.0.0.1", 1883))
    }

    /// The publishing connection: the manager's client id, the last will on the health topic.
    fn link_options(&self) -> LinkOptions {
        LinkOptions {
            broker: self.broker(),
            client_id: self.config.client_id.clone(),
            keep_alive: KEEP_ALIVE,
            last_will: (
                self.config.topics.health(),
                Health::last_will(self.config.epoch).to_bytes(),
            ),
            ca_pem: self.config.ca_pem.clone(),
            max_packet: MAX_PACKET,
        }
    }

    /// The subscribing connection: its own client id, no last will (the health topic is the
    /// publishing connection's), room for the largest retained message it may receive.
    fn sub_options(&self) -> MqttOptions {
        self.base_options(format!("{}-sub", self.config.client_id))
    }

    /// Publishes while this process holds the publisher's lease (always, on a database of its
    /// own); stands by, unconnected, while another process does.
    async fn run(mut self, mut stop: watch::Receiver<bool>, mut lead: watch::Receiver<bool>) {
        loop {
            while !*lead.borrow_and_update() {
                tokio::select! {
                    _ = stop.changed() => return,
                    changed = lead.changed() => if changed.is_err() { return },
                }
            }
            self.state.send_modify(|s| s.publishing = true);
            let stopped = self.session(&mut stop, &mut lead).await;
            self.state.send_modify(|s| s.publishing = false);
            if stopped {
                return;
            }
            // The lease went to another process, which publishes from the outbox's first
            // unpublished row on: this one starts afresh if it ever leads again.
            tracing::info!("another replica publishes now; standing by");
            self.connected = false;
            self.link = None;
            self.sub = SubState::default();
            self.window.reset();
            self.store_behind = true;
            self.gap_deadline = None;
            if let Ok(mut fresh) = self.fresh.lock() {
                fresh.items.clear();
            }
            self.show_connected(None);
        }
    }

    /// One run of the publishing and subscribing connections, until the process stops (`true`)
    /// or loses the publisher's lease (`false`).
    async fn session(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        lead: &mut watch::Receiver<bool>,
    ) -> bool {
        let (mut events, driver) = link::spawn(self.link_options());
        let (subscriber, mut sub_loop) = AsyncClient::new(self.sub_options(), 16);
        // Without TCP_NODELAY the PUBACK of a report written right after the previous one
        // waits for the broker's delayed ACK (40 ms on Linux): Nagle would hold it back.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        sub_loop.set_network_options(network);
        let (mut sub_events, sub_driver) = drive(sub_loop);
        // Health goes out on every connect; the timer only refreshes it in between.
        let mut health =
            tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut repair_tick = tokio::time::interval(REPAIR_TICK);
        repair_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = self.wake.clone();
        let mut flush_at: Option<tokio::time::Instant> = None;
        let mut stopped = true;
        // Without a sender (a database of its own), the lead never changes.
        let mut lead_open = true;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                changed = lead.changed(), if lead_open => match changed {
                    Err(_) => lead_open = false,
                    Ok(()) => if !*lead.borrow_and_update() {
                        stopped = false;
                        break;
                    },
                },
                event = events.recv() => match event {
                    Some(event) => self.on_event(&subscriber, event).await,
                    None => break,
                },
                event = sub_events.recv() => match event {
                    Some(Ok(event)) => self.on_sub_event(&subscriber, event).await,
                    Some(Err(e)) => self.on_sub_disconnect(&e),
                    None => break,
                },
                _ = wake.notified(), if self.connected => {
                    // Let the hand-overs already on their way land first: under load they go
                    // out together, in one write.
                    tokio::task::yield_now().await;
                    if self.fresh.lock().map(|mut f| std::mem::take(&mut f.health)).unwrap_or(false) {
                        self.queue_health(true).await;
                    }
                    self.queue_clears();
                    self.refill_fresh().await;
                    self.pump().await;
                }
                _ = until(self.gap_deadline), if self.connected => {
                    self.gap_deadline = None;
                    self.refill().await;
                    self.pump().await;
                }
                _ = sweep.tick(), if self.connected => {
                    self.refill().await;
                    self.pump().await;
                }
                _ = health.tick(), if self.connected => {
                    self.queue_health(true).await;
                    self.pump().await;
                }
                _ = repair_tick.tick(), if self.connected && self.retained.has_due() => {
                    let repairs = self.retained.due(tokio::time::Instant::now());
                    self.queue_repairs(repairs);
                    self.pump().await;
                }
                _ = ping.tick(), if self.connected => {
                    if let Some(link) = self.link.as_mut() {
                        link.ping();
                    }
                    self.pump().await;
                }
                _ = until(flush_at) => {
                    self.flush().await;
                }
            }
            flush_at = self
                .window
                .flush_at(flush_at, tokio::time::Instant::now(), FLUSH_AFTER);
            if self.window.acked() >= WINDOW {
                self.flush().await;
                flush_at = None;
            }
        }
        self.stop_gracefully(&mut events, &subscriber, &mut sub_events, stopped)
            .await;
        driver.abort();
        sub_driver.abort();
        stopped
    }

    /// Shows in the state whether both connections are up.
    fn show_connected(&self, error: Option<String>) {
        let connected = self.connected && self.sub.subscribed;
        self.state.send_modify(|s| {
            s.connected = connected;
            if connected {
                s.last_error = None;
            }
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    /// Subscribes the subscribing connection when it is up and not subscribed yet, once the
    /// publishing connection has told `repair` what the manager's topics should hold (what
    /// arrives before that could not be judged). The broker sends each topic's retained
    /// message first, then everything published there after.
    fn subscribe(&mut self, subscriber: &AsyncClient) {
        if !self.connected || !self.sub.up || self.sub.requested {
            return;
        }
        let topics = &self.config.topics;
        let filters = [
            topics.applied_filter(),
            topics.updated_filter(),
            topics.health(),
        ]
        .into_iter()
        .map(|path| SubscribeFilter::new(path, QoS::AtLeastOnce));
        match subscriber.try_subscribe_many(filters) {
            Ok(()) => self.sub.requested = true,
            Err(e) => tracing::warn!(error = %e, "cannot subscribe"),
        }
    }

    /// An event of the subscribing connection. rumqttc answers each publish with its PUBACK as
    /// soon as it is read.
    async fn on_sub_event(&mut self, subscriber: &AsyncClient, event: Event) {
        match event {
            Event::Incoming(Incoming::ConnAck(_)) => {
                self.sub = SubState {
                    up: true,
                    ..SubState::default()
                };
                self.subscribe(subscriber);
            }
            Event::Incoming(Incoming::SubAck(_)) => {
                self.sub.subscribed = true;
                self.show_connected(None);
            }
            Event::Incoming(Incoming::Publish(publish)) => {
                self.on_publish(&publish.topic, &publish.payload).await;
            }
            _ => {}
        }
    }

    fn on_sub_disconnect(&mut self, error: &ConnectionError) {
        if self.sub.up {
            tracing::warn!(error = %error, "lost the MQTT broker's subscriptions; reports wait until they are back");
        }
        self.sub = SubState::default();
        // While the publishing connection is down too, its own error is the one to show: both
        // usually fail for the same reason, and the two would take turns in the status.
        self.show_connected(self.connected.then(|| error.to_string()));
    }

    /// An event of the publishing connection.
    async fn on_event(&mut self, subscriber: &AsyncClient, event: LinkEvent) {
        match event {
            LinkEvent::Up(link) => {
                tracing::info!(broker = ?self.config.choice.display_url(), "connected to the MQTT broker");
                self.flush().await;
                self.window.reset();
                self.connected = true;
                self.link = Some(link);
                self.clock.connected();
                self.show_connected(None);
                self.queue_health(true).await;
                self.queue_extras();
                self.queue_clears();
                self.queue_latest().await;
                self.refill().await;
                self.pump().await;
                self.subscribe(subscriber);
            }
            LinkEvent::PubAck(pkid) => {
                self.clock.acknowledged(pkid);
                if self.window.acknowledged(pkid).is_some() {
                    self.state.send_modify(|s| s.published += 1);
                }
                if self.window.queued() < WINDOW {
                    self.refill_fresh().await;
                }
                self.pump().await;
            }
            LinkEvent::Down(why) => self.on_disconnect(&why).await,
        }
    }

    async fn on_disconnect(&mut self, error: &str) {
        if self.connected {
            tracing::warn!(error = %error, "lost the MQTT broker; writes continue and wait in the outbox");
        } else {
            tracing::debug!(error = %error, "MQTT broker not reachable");
        }
        self.clock.disconnected(self.connected);
        self.connected = false;
        self.link = None;
        self.window.reset();
        self.flush().await;
        self.show_connected(Some(error.to_string()));
    }

    /// Sends queued messages while the window has room: all of them in one write.
    async fn pump(&mut self) {
        // Only the subscribing connection may be up; the next session republishes what counts.
        let Some(link) = self.link.as_mut() else {
            return;
        };
        while let Some(msg) = self.window.next() {
            let tag = msg.tag;
            match link.publish(msg.topic, msg.payload, msg.retain) {
                Ok(pkid) => {
                    self.window.sent(tag, pkid);
                    self.clock.sent(pkid);
                }
                // Never an envelope (a document is far smaller); an outbox row stays pending.
                Err(e) => tracing::error!(error = %e, "a message was not published"),
            }
        }
        if let Err(e) = link.flush().await {
            // Dropping the sender ends the connection; its driver reports it and connects
            // again, and the next session re-sends what was not acknowledged.
            tracing::debug!(error = %e, "publishing failed");
            self.link = None;
        }
    }

    /// Queues the changes handed over in memory when they follow on from what is queued; reads
    /// the store when memory cannot vouch for the order or may lack rows. A gap (a change
    /// committed earlier not handed over yet) is waited for up to [`GAP_WAIT`] first.
    async fn refill_fresh(&mut self) {
        if !self.connected {
            return;
        }
        let run = match self.fresh.lock() {
            Ok(mut fresh) => {
                self.store_behind |= std::mem::take(&mut fresh.dropped);
                if self.store_behind {
                    None
                } else {
                    Some(fresh.take_after(self.window.cursor(), WINDOW))
                }
            }
            Err(_) => None,
        };
        match run {
            Some(Some(items)) => {
                self.gap_deadline = None;
                for Handed { item, envelope } in items {
                    self.window.advance(item.id);
                    self.queue_signed(&item, envelope);
                }
            }
            Some(None) => {
                let now = tokio::time::Instant::now();
                match self.gap_deadline {
                    Some(deadline) if deadline <= now => {
                        self.gap_deadline = None;
                        self.refill().await;
                    }
                    Some(_) => {}
                    None => self.gap_deadline = Some(now + GAP_WAIT),
                }
            }
            None => {
                self.gap_deadline = None;
                self.refill().await;
            }
        }
    }

    /// Loads the next pending outbox rows into the queue.
    async fn refill(&mut self) {
        if !self.connected {
            return;
        }
        let items = match self
            .store
            .pending_outbox(self.window.cursor(), WINDOW as u32)
            .await
        {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                self.store_behind = true;
                return;
            }
        };
        // A full page may have more behind it; anything short of one is all there was.
        self.store_behind = items.len() >= WINDOW;
        for item in items {
            self.window.advance(item.id);
            self.queue_item(&item);
        }
    }

    fn queue_item(&mut self, item: &OutboxItem) {
        self.queue_signed(item, None);
    }

    /// Queues a change's envelope (`signed`, or signed now) and its audit event.
    fn queue_signed(&mut self, item: &OutboxItem, signed: Option<Vec<u8>>) {
        let service = item.service.as_str();
        self.reports
            .budget()
            .service_at(&item.service, item.version.0, item.document.is_some());
        let payload = match (&item.document, signed) {
            (Some(_), Some(bytes)) => bytes,
            (Some(doc), None) => {
                match self.envelope(service, item.version.0, item.revision.0, doc.as_map()) {
                    Some(bytes) => bytes,
                    None => return,
                }
            }
            // An empty retained message removes the retained envelope of a deleted service.
            (None, _) => Vec::new(),
        };
        let topic = self.config.topics.envelope(service);
        let version = item.document.as_ref().map(|_| item.version.0);
        self.retained.published(&topic, &payload, version);
        self.window.push_back(Msg {
            topic,
            payload,
            retain: true,
            tag: Tag::Outbox(item.id),
        });
        let action = item.kind.as_str();
        let audit = AuditEvent {
            action: action.to_owned(),
            actor: item.actor.clone(),
            service: service.to_owned(),
            version: item.version.0,
            at: item.at,
        };
        self.window.push_back(Msg {
            topic: self.config.topics.audit(action),
            payload: audit.to_bytes(),
            retain: false,
            tag: Tag::Other,
        });
    }

    fn envelope(
        &self,
        service: &str,
        version: u64,
        revision: u64,
        config: &serde_json::Map<String, Value>,
    ) -> Option<Vec<u8>> {
        match self.signer.sign_to_bytes(
            service,
            version,
            revision,
            config,
            self.config.epoch,
            OffsetDateTime::now_utc(),
        ) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::error!(error = %e, service, version, "cannot sign an envelope");
                None
            }
        }
    }

    /// After a (re)connect: every service's latest envelope again, retained, except services
    /// whose newer versions are still pending (those follow from the outbox, in order).
    async fn queue_latest(&mut self) {
        let (services, pending) = match (
            self.store.services().await,
            self.store.pending_services().await,
        ) {
            (Ok(s), Ok(p)) => (s, p.into_iter().collect::<HashSet<_>>()),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read services to republish");
                return;
            }
        };
        {
            let mut budget = self.reports.budget();
            for s in &services {
                budget.service_at(&s.name, s.version.0, s.document.is_some());
            }
        }
        self.retained
            .known(pending.iter().map(|s| s.as_str().to_owned()));
        for service in services.into_iter().filter(|s| !pending.contains(&s.name)) {
            let payload = match &service.document {
                Some(doc) => match self.envelope(
                    service.name.as_str(),
                    service.version.0,
                    service.revision.0,
                    doc.as_map(),
                ) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                None => Vec::new(),
            };
            let topic = self.config.topics.envelope(service.name.as_str());
            let version = service.document.as_ref().map(|_| service.version.0);
            self.retained.published(&topic, &payload, version);
            self.window.push_back(Msg {
                topic,
                payload,
                retain: true,
                tag: Tag::Other,
            });
        }
    }

    /// Queues the clears `PublisherHandle::clear_retained` asked for.
    fn queue_clears(&mut self) {
        let clears = match self.fresh.lock() {
            Ok(mut fresh) => std::mem::take(&mut fresh.clears),
            Err(_) => return,
        };
        for topic in clears {
            self.window.push_back(Msg {
                topic,
                payload: Vec::new(),
                retain: true,
                tag: Tag::Other,
            });
        }
    }

    /// Queues the other retained messages (`PublisherConfig::retained_extras`).
    fn queue_extras(&mut self) {
        for (topic, payload) in &self.config.retained_extras {
            self.window.push_back(Msg {
                topic: topic.clone(),
                payload: payload.clone(),
                retain: true,
                tag: Tag::Other,
            });
        }
    }

    async fn queue_health(&mut self, ok: bool) {
        let backlog = self.store.outbox_backlog().await;
        let schema_version = self.store.schema_version().await.unwrap_or(0);
        // A database that does not answer means the manager serves what it holds, read-only.
        let ping = self.store.ping().await;
        let database_ok = backlog.is_ok() && ping.is_ok();
        let health = Health {
            ok: ok && database_ok,
            mode: if ping.is_ok() {
                HealthMode::Normal
            } else {
                HealthMode::ReadOnly
            },
            database: Some(HealthDatabase {
                backend: self.store.backend().to_owned(),
                ok: database_ok,
                error: ping.err().map(|e| e.to_string()),
            }),
            epoch: self.config.epoch,
            schema_version: Some(schema_version),
            outbox_backlog: Some(backlog.unwrap_or(0)),
            at: Some(OffsetDateTime::now_utc()),
        };
        let topic = self.config.topics.health();
        let payload = health.to_bytes();
        self.retained.published(&topic, &payload, None);
        self.window.push_front(Msg {
            topic,
            payload,
            retain: true,
            tag: Tag::Other,
        });
    }

    async fn flush(&mut self) {
        let ids = self.window.take_acked();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .mark_published(&ids, OffsetDateTime::now_utc())
            .await
        {
            // Not fatal: the rows are re-sent later and receivers drop duplicates.
            tracing::warn!(error = %e, rows = ids.len(), "cannot mark rows published");
        }
    }

    /// A message on one of our subscriptions: a report, or one of our retained topics.
    async fn on_publish(&mut self, topic: &str, payload: &[u8]) {
        let topics = &self.config.topics;
        let kind = if let Some(service) = topics.parse_updated(topic) {
            Kind::Updated(service.to_owned())
        } else if topic == topics.health() {
            Kind::Health
        } else {
            self.on_report(topic, payload);
            return;
        };
        let now = tokio::time::Instant::now();
        if let Some(repair) = self.retained.received(topic, kind, payload, now) {
            self.queue_repairs(vec![repair]);
            self.pump().await;
        }
    }

    fn queue_repairs(&mut self, repairs: Vec<Repair>) {
        if repairs.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let (last, unlogged) = &mut self.repairs_logged;
        *unlogged += repairs.len() as u64;
        if last.is_none_or(|t| now - t >= reports::LOG_EVERY) {
            tracing::warn!(
                repaired = *unlogged,
                example = repairs[0].topic,
                "other clients overwrote retained messages of the manager; published them again \
                 (a summary, at most one a minute)"
            );
            *last = Some(now);
            *unlogged = 0;
        }
        for repair in repairs {
            self.window.push_back(Msg {
                topic: repair.topic,
                payload: repair.payload.to_vec(),
                retain: true,
                tag: Tag::Other,
            });
        }
        let repairs = self.retained.repairs();
        self.state.send_modify(|s| s.repairs = repairs);
    }

    fn on_report(&self, topic: &str, payload: &[u8]) {
        if payload.is_empty() {
            // A cleared retained report (a forgotten instance): nothing to record.
            return;
        }
        let parsed =
            match self.config.topics.parse_applied(topic) {
                Some((service, instance)) => AppliedReport::parse(service, instance, payload)
                    .ok()
                    .map(|r| {
                        crate::metrics::report(Some(r.status));
                        to_record(r, OffsetDateTime::now_utc())
                    }),
                None => None,
            };
        if parsed.is_none() {
            crate::metrics::report(None);
        }
        match parsed {
            Some(report) => self.reports.offer(report),
            None => self.reports.malformed(),
        }
    }

    async fn stop_gracefully(
        &mut self,
        events: &mut mpsc::Receiver<LinkEvent>,
        subscriber: &AsyncClient,
        sub_events: &mut Events,
        stopping: bool,
    ) {
        self.flush().await;
        if self.sub.up && subscriber.try_disconnect().is_ok() {
            let drain = async {
                loop {
                    match sub_events.recv().await {
                        Some(Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
        let Some(mut link) = self.link.take() else {
            return;
        };
        // Handing over to another replica is no outage: the health topic is the new
        // publisher's to keep.
        if stopping {
            let health = Health::stopped(self.config.epoch, OffsetDateTime::now_utc());
            let _ = link.publish(self.config.topics.health(), health.to_bytes(), true);
        }
        link.disconnect();
        if link.flush().await.is_ok() {
            // The broker acknowledges what came before the DISCONNECT, then closes.
            let drain = async {
                while let Some(LinkEvent::PubAck(pkid)) = events.recv().await {
                    self.window.acknowledged(pkid);
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        }
        drop(link);
        self.flush().await;
        tracing::info!("disconnected from the MQTT broker");
    }
}

/// The subscribing connection's session.
#[derive(Debug, Default, Clone, Copy)]
struct SubState {
    /// Connected (CONNACK received).
    up: bool,
    /// Subscriptions sent in this session.
    requested: bool,
    /// Subscriptions acknowledged (SUBACK received).
    subscribed: bool,
}

/// Waits until `at`, or forever when there is nothing to wait for.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One connection's events, as its driver hands them over.
type Events = mpsc::Receiver<Result<Event, ConnectionError>>;

/// Polls `eventloop` in a task of its own and hands every event over, in order; after an error
/// it waits (backing off) before polling again, which reconnects. A poll is never cancelled
/// there: dropping one while it connects would drop a connection the broker has just accepted,
/// and the broker would publish the last will of a manager that is fine.
fn drive(mut eventloop: EventLoop) -> (Events, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let event = eventloop.poll().await;
            let failed = event.is_err();
            if tx.send(event).await.is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            } else {
                backoff = BACKOFF_MIN;
            }
        }
    });
    (rx, task)
}

/// What the store keeps in an instance's `overrides`: the list of keys its environment
/// overrides, as reported; or, when the report also names layers (keys from `global` or the
/// instance's override document) or their versions, one object holding all of it:
/// `{"env": [...], "layers": {...}, "global_version": n, "override_version": m}`.
fn report_overrides(
    env: Option<Vec<String>>,
    layers: Option<std::collections::BTreeMap<String, String>>,
    global_version: Option<u64>,
    override_version: Option<u64>,
) -> Option<Value> {
    let env = env.map(|keys| Value::Array(keys.into_iter().map(Value::String).collect()));
    if layers.is_none() && global_version.is_none() && override_version.is_none() {
        return env;
    }
    Some(serde_json::json!({
        "env": env.unwrap_or(Value::Array(Vec::new())),
        "layers": layers.unwrap_or_default(),
        "global_version": global_version,
        "override_version": override_version,
    }))
}

/// A checked applied report as the store records it; `now` stands in for a missing `at`.
fn to_record(report: AppliedReport, now: OffsetDateTime) -> dials_store::InstanceReport {
    dials_store::InstanceReport {
        service: report.service,
        instance: report.instance.into_string(),
        version: dials_domain::Version(report.version),
        status: report.status.as_str().to_owned(),
        error: report.error,
        schema_hash: report.schema_hash,
        overrides: report_overrides(
            report.overrides,
            report.layers,
            report.global_version,
            report.override_version,
        ),
        reported_at: report.at.unwrap_or(now),
        received_at: now,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_report_is_recorded_as_it_was_sent_with_the_receivers_clock_for_a_missing_at() {
        let now = datetime!(2026-11-22 11:00 UTC);
        let report = AppliedReport::parse(
            "tts-worker",
            "pi-1",
            br#"{"version":3,"status":"rejected","error":"rate: must be at most 2",
                "at":"2026-11-22T10:00:00Z","schema_hash":"ab","overrides":["/voice"]}"#,
        )
        .unwrap();
        let r = to_record(report.clone(), now);
        assert_eq!((r.version.0, r.status.as_str()), (3, "rejected"));
        assert_eq!(r.error.as_deref(), Some("rate: must be at most 2"));
        assert_eq!(r.overrides, Some(json!(["/voice"])));
        assert_eq!(
            (r.reported_at, r.received_at),
            (datetime!(2026-11-22 10:00 UTC), now)
        );
        let bare = AppliedReport { at: None, ..report };
        assert_eq!(to_record(bare, now).reported_at, now);
    }

    fn item(id: i64) -> Handed {
        Handed {
            item: plain(id),
            envelope: None,
        }
    }

    fn plain(id: i64) -> OutboxItem {
        OutboxItem {
            id,
            revision: dials_domain::Revision(id as u64),
            service: dials_domain::ServiceName::parse("tts").unwrap(),
            version: dials_domain::Version(id as u64),
            kind: dials_domain::ChangeKind::Put,
            document: None,
            actor: "tester".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn changes_in_memory_are_used_only_when_they_follow_on_without_a_gap() {
        let mut fresh = Fresh::default();
        for id in [4, 5, 7] {
            fresh.items.insert(id, item(id));
        }
        // 3 was committed but not handed over yet: the store must be read.
        assert!(fresh.take_after(2, 10).is_none());
        // Once the store was read up to 3, 4 and 5 follow on; 7 waits for 6.
        let run = fresh.take_after(3, 10).unwrap();
        assert_eq!(run.iter().map(|i| i.item.id).collect::<Vec<_>>(), [4, 5]);
        assert!(fresh.take_after(5, 10).is_none());
        fresh.items.insert(6, item(6));
        let run = fresh.take_after(5, 1).unwrap();
        assert_eq!(
            run.iter().map(|i| i.item.id).collect::<Vec<_>>(),
            [6],
            "at most the limit"
        );
        // What the store already delivered is dropped, not published twice.
        fresh.items.insert(8, item(8));
        let run = fresh.take_after(7, 10).unwrap();
        assert_eq!(run.iter().map(|i| i.item.id).collect::<Vec<_>>(), [8]);
        assert!(fresh.items.is_empty());
        // Nothing after the cursor: nothing to do, and no reason to read the store.
        fresh.items.insert(3, item(3));
        assert_eq!(fresh.take_after(8, 10).map(|r| r.len()), Some(0));
    }
}
