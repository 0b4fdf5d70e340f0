//! The background task: one loop that owns the MQTT connection, checks every envelope, re-reads
//! over REST when an update cannot be applied directly, applies new configs (callbacks, watch,
//! LKG file) and reports each version on `config/applied/{service}/{instance}`.
//!
//! Everything that changes the config in force happens here, one thing at a time, so versions
//! apply in order and a callback never runs twice at once.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use dials_wire::EnvelopeError;
use dials_wire::envelope::key_id as envelope_key_id;
use dials_wire::lkg::{LkgLayer, LkgLayers};
use dials_wire::mqtt::{
    AppliedReport, AppliedStatus, IgnoreReason, Receiver, RereadReason, UpdateVerdict, judge_update,
};
use dials_wire::rotation::{RotationChain, extend_trust};
use ed25519_dalek::VerifyingKey;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, Incoming, MqttOptions, Publish, QoS,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::Error;
use crate::client::{Command, Origin, Shared, lock};
use crate::layers::{EnvLookup, HeldSecrets, ServiceSchema, has_secret_placeholder};
use crate::lkg::LkgFile;
use crate::manager::{LayerRead, Manager};
use crate::mqtt::{AckOrder, Topics};
use crate::reads::{Backoff, Reads};

/// The log target of refused updates.
const SECURITY: &str = "dials_client::security";

/// How often the latest report is published again while connected: the manager shows an
/// instance silent for longer than its `--instance-timeout` (5 minutes by default) as offline.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);

/// How often an update signed by an unknown key may cause a REST read of the rotations.
const KEY_REFRESH_EVERY: Duration = Duration::from_secs(10);

/// One version's outcome, to publish.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub version: u64,
    pub status: AppliedStatus,
    pub error: Option<String>,
    pub overrides: Vec<String>,
}

/// The MQTT side: client, event loop, topics.
pub(crate) struct Mqtt {
    client: AsyncClient,
    eventloop: EventLoop,
    topics: Topics,
    broker: dials_wire::mqtt::BrokerUrl,
    /// Updates to acknowledge, and whether a report awaits its PUBACK.
    acks: AckOrder<Publish>,
}

impl Mqtt {
    pub fn new(options: MqttOptions, topics: Topics, broker: dials_wire::mqtt::BrokerUrl) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        // Acknowledgements and reports are small writes right after a read: with Nagle's
        // algorithm they wait for the broker's delayed ACK (40 ms on Linux). The broker's own
        // small writes toward us are the subject of `AckOrder`.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(5);
        eventloop.set_network_options(network);
        Self {
            client,
            eventloop,
            topics,
            broker,
            acks: AckOrder::default(),
        }
    }
}

/// The background task's state.
pub(crate) struct Driver<T> {
    pub shared: Arc<Shared<T>>,
    pub schema: Arc<ServiceSchema>,
    pub env: EnvLookup,
    pub manager: Manager,
    pub lkg: Option<Arc<LkgFile>>,
    pub keys: Vec<VerifyingKey>,
    /// The manager's epoch as far as known.
    pub epoch: Option<Uuid>,
    /// The highest version dealt with (applied, rejected or failed) in `epoch`.
    pub seen: u64,
    /// The latest report, published again after every (re)connect.
    pub last_report: Option<Report>,
    /// Whether `last_report` still has to be published.
    pub report_pending: bool,
    pub request_timeout: Duration,
    pub poll_interval: Option<Duration>,
    /// Whether the last REST read succeeded.
    pub manager_ok: bool,
    /// The secret values of the last REST read, by key and version.
    pub held: HeldSecrets,
    /// When the rotation statements were last read over REST.
    pub rotations_read_at: Option<Instant>,
    /// The layers besides the service's document.
    pub layers: LayerState,
}

/// The documents merged with the service's: `global` and the instance's override, each with
/// the version held, and the service's document the config in force was merged from.
#[derive(Debug, Default)]
pub(crate) struct LayerState {
    /// Whether the schema takes keys from `global` (else `global` is neither read nor heard).
    pub takes_global: bool,
    /// The service's document (secret values in), as last applied or tried.
    pub service: Value,
    /// `global`'s document, if any.
    pub global: Option<Value>,
    /// The version of `global` held (0: none heard).
    pub global_version: u64,
    /// The instance's override document (secret values in), if any.
    pub instance: Option<Value>,
    /// The version of the override held (0: none heard).
    pub instance_version: u64,
    /// The secret values of the override, as last read over REST.
    pub instance_held: HeldSecrets,
    /// The layer of each key of the config in force that comes from `global` or the
    /// override.
    pub applied: BTreeMap<String, String>,
}

impl LayerState {
    /// The layers to keep in the LKG file, secret values left out.
    pub fn lkg(&self, schema: &ServiceSchema) -> Option<LkgLayers> {
        if self.global.is_none() && self.instance.is_none() {
            return None;
        }
        Some(LkgLayers {
            global: self.global.as_ref().map(|config| LkgLayer {
                version: self.global_version,
                config: schema.without_secrets(config),
            }),
            instance: self.instance.as_ref().map(|config| LkgLayer {
                version: self.instance_version,
                config: schema.without_secrets(config),
            }),
        })
    }
}

/// Which layer an envelope belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LayerKind {
    Global,
    Instance,
}

/// Who waits for a REST read.
type Waiter = oneshot::Sender<Result<(), Error>>;

/// The channel on which finished REST reads come back to the loop.
type ReadResults = mpsc::UnboundedSender<Result<LayerRead, String>>;

impl<T> Driver<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    pub async fn run(
        mut self,
        mut mqtt: Option<Mqtt>,
        mut stop: watch::Receiver<bool>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (results_tx, mut results) = mpsc::unbounded_channel();
        let mut reads: Reads<Waiter> =
            Reads::new(self.poll_interval, self.manager_ok, Instant::now());
        let mut mqtt_retry = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let mut mqtt_retry_at: Option<Instant> = None;
        let mut connected = false;
        let mut warned_down = false;
        // The report goes out again now and then, so the manager can tell a quiet instance
        // from one that is gone without a last will (see `HEARTBEAT`).
        let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            let read_at = reads.due_at();
            let polling = mqtt.is_some() && mqtt_retry_at.is_none();
            tokio::select! {
                _ = stop.changed() => break,
                command = commands.recv() => match command {
                    Some(Command::Refresh(reply)) => {
                        if reads.want(Some(reply)) {
                            self.start_read(&results_tx);
                        }
                    }
                    None => break,
                },
                Some(result) = results.recv() => {
                    self.on_read(&mut reads, &results_tx, result).await;
                }
                event = poll(&mut mqtt), if polling => {
                    let Some(m) = mqtt.as_mut() else { continue };
                    match event {
                        Ok(Event::Incoming(Incoming::ConnAck(ack)))
                            if ack.code == ConnectReturnCode::Success =>
                        {
                            tracing::info!(broker = %m.broker.display_url(), "connected to the MQTT broker");
                            connected = true;
                            warned_down = false;
                            m.acks.reset();
                            mqtt_retry.reset();
                            if let Err(e) = m.client.try_subscribe(&m.topics.updated, QoS::AtLeastOnce) {
                                tracing::warn!(error = %e, "cannot subscribe to config updates");
                            }
                            if let Err(e) = m.client.try_subscribe(&m.topics.keys, QoS::AtLeastOnce) {
                                tracing::warn!(error = %e, "cannot subscribe to signing-key rotations");
                            }
                            if let Err(e) = m.client.try_subscribe(&m.topics.instance_override, QoS::AtLeastOnce) {
                                tracing::warn!(error = %e, "cannot subscribe to this instance's overrides");
                            }
                            // One publish on `global` reaches every service that takes from
                            // it; the others never hear of it.
                            if self.layers.takes_global
                                && let Err(e) = m.client.try_subscribe(&m.topics.global, QoS::AtLeastOnce)
                            {
                                tracing::warn!(error = %e, "cannot subscribe to global settings");
                            }
                            self.report_pending = true;
                            // Whatever was missed while disconnected comes from REST.
                            if reads.want(None) {
                                self.start_read(&results_tx);
                            }
                        }
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            let reread = if p.topic == m.topics.keys {
                                self.on_rotation_chain(&p.payload);
                                false
                            } else if p.topic == m.topics.updated {
                                self.on_envelope(&p.payload).await
                            } else if p.topic == m.topics.instance_override {
                                self.on_layer_envelope(LayerKind::Instance, &p.payload).await
                            } else if self.layers.takes_global && p.topic == m.topics.global {
                                self.on_layer_envelope(LayerKind::Global, &p.payload).await
                            } else {
                                false
                            };
                            if reread && reads.want(None) {
                                self.start_read(&results_tx);
                            }
                            m.acks.received(p);
                        }
                        // Only reports are published with QoS 1.
                        Ok(Event::Incoming(Incoming::PubAck(_))) => m.acks.report_acked(),
                        Ok(_) => {}
                        Err(e) => {
                            if connected || !warned_down {
                                tracing::warn!(
                                    broker = %m.broker.display_url(),
                                    error = %e,
                                    "MQTT broker unreachable; retrying in the background"
                                );
                                warned_down = true;
                            } else {
                                tracing::debug!(error = %e, "MQTT reconnect failed");
                            }
                            connected = false;
                            m.acks.reset();
                            mqtt_retry_at = Some(Instant::now() + mqtt_retry.next());
                        }
                    }
                }
                _ = heartbeat.tick(), if connected => {
                    self.report_pending = true;
                }
                _ = sleep_until(mqtt_retry_at), if mqtt_retry_at.is_some() => {
                    mqtt_retry_at = None;
                }
                _ = sleep_until(read_at), if read_at.is_some() => {
                    if reads.fire(Instant::now()) {
                        self.start_read(&results_tx);
                    }
                }
            }
            if connected && let Some(m) = mqtt.as_mut() {
                if self.report_pending && m.acks.may_report() {
                    if self.publish_report(m) {
                        m.acks.report_sent();
                    }
                    self.report_pending = false;
                }
                for publish in m.acks.release() {
                    if let Err(e) = m.client.try_ack(&publish) {
                        tracing::warn!(error = %e, "cannot acknowledge a config update");
                    }
                }
            }
        }

        for waiter in reads.drain() {
            let _ = waiter.send(Err(Error::Shutdown));
        }
        if let Some(m) = mqtt.as_mut()
            && connected
        {
            // A clean stop leaves no will behind: say so, then leave.
            let _ = m.client.try_publish(
                &m.topics.applied,
                QoS::AtLeastOnce,
                true,
                offline_report(&self.shared).to_bytes(),
            );
            let _ = m.client.try_disconnect();
            let drain = async {
                loop {
                    match m.eventloop.poll().await {
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
        tracing::debug!(service = %self.shared.service, "dials client stopped");
    }

    /// Starts a REST read; its result comes back on `results`.
    fn start_read(&self, results: &ReadResults) {
        let manager = self.manager.clone();
        let tx = results.clone();
        let timeout = self.request_timeout;
        tokio::spawn(async move {
            let _ = tx.send(manager.read_config(timeout).await);
        });
    }

    async fn on_read(
        &mut self,
        reads: &mut Reads<Waiter>,
        results: &ReadResults,
        result: Result<LayerRead, String>,
    ) {
        let answer = match result {
            Ok(response) => {
                if !self.manager_ok {
                    tracing::info!(service = %self.shared.service, "the manager answers again");
                }
                self.manager_ok = true;
                self.on_rest(response).await;
                Ok(())
            }
            Err(e) => {
                if self.manager_ok {
                    tracing::warn!(service = %self.shared.service, "cannot read the config: {e}; retrying");
                } else {
                    tracing::debug!(service = %self.shared.service, "cannot read the config: {e}");
                }
                self.manager_ok = false;
                Err(e)
            }
        };
        let (answered, again) = reads.finished(answer.is_ok(), Instant::now());
        for waiter in answered {
            let _ = waiter.send(answer.clone().map_err(Error::Manager));
        }
        if again {
            self.start_read(results);
        }
    }

    /// A config read over REST: applied if any layer of it is newer, or from another epoch.
    async fn on_rest(&mut self, read: LayerRead) {
        let LayerRead {
            service: response,
            global,
            instance,
        } = read;
        let same_epoch = self.epoch == Some(response.epoch);
        let mut layer_changed = false;
        if let Some(g) = global.filter(|g| {
            self.layers.takes_global && (!same_epoch || g.version > self.layers.global_version)
        }) {
            self.layers.global_version = g.version;
            self.layers.global = g.config;
            layer_changed = true;
        }
        if let Some(i) =
            instance.filter(|i| !same_epoch || i.version > self.layers.instance_version)
        {
            if i.config.as_ref().is_some_and(has_secret_placeholder) {
                tracing::warn!(
                    service = %self.shared.service,
                    version = i.version,
                    "the manager answered this instance's override with secret placeholders; not applied"
                );
            } else {
                self.layers.instance_held = match &i.config {
                    Some(config) => HeldSecrets::from_parts(&i.secrets, config),
                    None => HeldSecrets::default(),
                };
                self.layers.instance_version = i.version;
                self.layers.instance = i.config;
                layer_changed = true;
            }
        }
        if same_epoch && response.version <= self.seen && layer_changed {
            // Only another layer is newer: merge it with the service's document in force.
            let (version, config) = (self.seen, self.layers.service.clone());
            self.apply(version, response.epoch, config).await;
            return;
        }
        if same_epoch && response.version <= self.seen {
            tracing::debug!(
                service = %self.shared.service,
                version = response.version,
                "the manager has nothing newer"
            );
            return;
        }
        if !same_epoch && let Some(known) = self.epoch {
            tracing::warn!(
                target: SECURITY,
                service = %self.shared.service,
                known = %known,
                epoch = %response.epoch,
                "the manager's database has a new epoch; following the manager"
            );
        }
        if has_secret_placeholder(&response.config) {
            tracing::warn!(
                service = %self.shared.service,
                version = response.version,
                "the manager answered with secret placeholders; not applied"
            );
            return;
        }
        self.held = HeldSecrets::from_response(&response);
        self.apply(response.version, response.epoch, response.config)
            .await;
    }

    /// Checks an MQTT update and applies it. Returns whether the config must be re-read over
    /// REST instead.
    async fn on_envelope(&mut self, payload: &[u8]) -> bool {
        let mut verdict = self.judge(payload);
        if let UpdateVerdict::Ignore(IgnoreReason::Invalid(EnvelopeError::UnknownKey(key))) =
            &verdict
        {
            // Signed by a key not trusted (yet): the manager may have rotated its key. Learn
            // its rotation statements over REST; a key is trusted only through them.
            let key = key.clone();
            if !self.learn_rotations_over_rest(&key).await {
                self.reject_untrusted(payload, &key);
                return false;
            }
            verdict = self.judge(payload);
        }
        let service = self.shared.service.as_str();
        let envelope = match verdict {
            UpdateVerdict::Apply(envelope) => envelope,
            UpdateVerdict::Ignore(reason) => {
                match reason {
                    IgnoreReason::Deleted => tracing::warn!(
                        service,
                        "the manager deleted this service; the config in force stays"
                    ),
                    IgnoreReason::Invalid(e) => tracing::warn!(
                        target: SECURITY, service, error = %e,
                        "ignored an MQTT update that does not verify"
                    ),
                    IgnoreReason::OtherService(claimed) => tracing::warn!(
                        target: SECURITY, service, claimed = %claimed,
                        "ignored an MQTT update for another service"
                    ),
                    IgnoreReason::Old(version) => tracing::warn!(
                        target: SECURITY, service, version, current = self.seen,
                        "ignored an MQTT update older than the config in force"
                    ),
                    IgnoreReason::Duplicate => {
                        tracing::debug!(service, version = self.seen, "already have this version")
                    }
                }
                return false;
            }
            UpdateVerdict::Reread(reason) => {
                match reason {
                    RereadReason::UnknownEpoch(epoch) => tracing::warn!(
                        target: SECURITY, service, epoch = %epoch, known = ?self.epoch,
                        "MQTT update from an unknown epoch; re-reading over REST"
                    ),
                    // Started from defaults: the manager has not been heard over REST yet.
                    RereadReason::NoEpochYet => {
                        tracing::info!(service, "first MQTT update; reading the config over REST")
                    }
                    RereadReason::Stale => tracing::info!(
                        service,
                        "MQTT update is stale (issued more than 5 minutes ago); re-reading over REST"
                    ),
                }
                return true;
            }
        };
        let config = if has_secret_placeholder(&envelope.config) {
            // The secrets are named by version: those already held need no REST read.
            match self.held.fill(&envelope.config) {
                Some(filled) => filled,
                None => {
                    tracing::debug!(
                        service,
                        version = envelope.version,
                        "update carries secrets this client does not hold; reading it over REST"
                    );
                    return true;
                }
            }
        } else {
            envelope.config
        };
        self.apply(envelope.version, envelope.epoch, config).await;
        false
    }

    /// Checks an MQTT update of `global` or of this instance's override and merges it with the
    /// service's document in force. Returns whether the layers must be re-read over REST.
    async fn on_layer_envelope(&mut self, kind: LayerKind, payload: &[u8]) -> bool {
        let service = self.shared.service.to_string();
        let name = match kind {
            LayerKind::Global => dials_domain::ServiceName::GLOBAL.to_owned(),
            LayerKind::Instance => dials_domain::ServiceName::instance_layer(
                &self.shared.service,
                &self.shared.instance,
            )
            .to_string(),
        };
        let held = match kind {
            LayerKind::Global => self.layers.global_version,
            LayerKind::Instance => self.layers.instance_version,
        };
        let receiver = Receiver {
            service: &name,
            epoch: self.epoch,
            version: held,
            trusted: &self.keys,
        };
        let envelope = match judge_update(payload, &receiver, OffsetDateTime::now_utc()) {
            UpdateVerdict::Apply(envelope) => envelope,
            UpdateVerdict::Ignore(IgnoreReason::Deleted) => {
                let had = match kind {
                    LayerKind::Global => self.layers.global.take(),
                    LayerKind::Instance => self.layers.instance.take(),
                };
                if had.is_some() && self.epoch.is_some() {
                    tracing::info!(service, layer = %name, "a layer was removed; merging without it");
                    let (version, epoch, config) =
                        (self.seen, self.epoch, self.layers.service.clone());
                    if let Some(epoch) = epoch {
                        self.apply(version, epoch, config).await;
                    }
                }
                return false;
            }
            UpdateVerdict::Ignore(IgnoreReason::Invalid(e)) => {
                tracing::warn!(
                    target: SECURITY, service, layer = %name, error = %e,
                    "ignored an MQTT update of a layer that does not verify"
                );
                // A key this client does not trust yet is learnt through the service's own
                // updates; a re-read brings the layer meanwhile.
                return matches!(e, EnvelopeError::UnknownKey(_));
            }
            UpdateVerdict::Ignore(IgnoreReason::OtherService(claimed)) => {
                tracing::warn!(
                    target: SECURITY, service, layer = %name, claimed = %claimed,
                    "ignored an MQTT update of a layer that names another document"
                );
                return false;
            }
            UpdateVerdict::Ignore(_) => return false,
            UpdateVerdict::Reread(_) => return true,
        };
        let config = match kind {
            LayerKind::Global => envelope.config,
            LayerKind::Instance if has_secret_placeholder(&envelope.config) => {
                match self.layers.instance_held.fill(&envelope.config) {
                    Some(filled) => filled,
                    None => return true,
                }
            }
            LayerKind::Instance => envelope.config,
        };
        match kind {
            LayerKind::Global => {
                self.layers.global_version = envelope.version;
                self.layers.global = Some(config);
            }
            LayerKind::Instance => {
                self.layers.instance_version = envelope.version;
                self.layers.instance = Some(config);
            }
        }
        let (version, config) = (self.seen, self.layers.service.clone());
        self.apply(version, envelope.epoch, config).await;
        false
    }

    /// The verdict on an MQTT update, under the keys trusted now.
    fn judge(&self, payload: &[u8]) -> UpdateVerdict {
        let receiver = Receiver {
            service: self.shared.service.as_str(),
            epoch: self.epoch,
            version: self.seen,
            trusted: &self.keys,
        };
        judge_update(payload, &receiver, OffsetDateTime::now_utc())
    }

    /// Follows a rotation chain received on `config/keys`: only statements signed by a key
    /// already trusted count (a stranger on the broker can introduce nothing).
    fn on_rotation_chain(&mut self, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        match RotationChain::parse(payload) {
            Ok(chain) => self.learn(&chain.rotations),
            Err(e) => tracing::warn!(
                target: SECURITY, service = %self.shared.service, error = %e,
                "ignored a signing-key rotation chain that does not parse"
            ),
        }
    }

    /// Adds the keys the statements introduce from a trusted key.
    fn learn(&mut self, statements: &[dials_wire::rotation::RotationStatement]) {
        for key_id in extend_trust(&mut self.keys, statements) {
            tracing::info!(
                service = %self.shared.service, key_id,
                "now trusting a new signing key, introduced by a rotation statement from a trusted key"
            );
        }
    }

    /// Reads the rotation statements over REST (at most every [`KEY_REFRESH_EVERY`]) and
    /// answers whether `key` is trusted afterwards.
    async fn learn_rotations_over_rest(&mut self, key: &str) -> bool {
        let due = self
            .rotations_read_at
            .is_none_or(|at| at.elapsed() >= KEY_REFRESH_EVERY);
        if due {
            self.rotations_read_at = Some(Instant::now());
            match self.manager.read_rotations(self.request_timeout).await {
                Ok(statements) => self.learn(&statements),
                Err(e) => tracing::warn!(
                    service = %self.shared.service, error = %e,
                    "cannot read the manager's signing-key rotations"
                ),
            }
        }
        self.keys.iter().any(|k| envelope_key_id(k) == key)
    }

    /// Reports an update signed by a key no trusted chain leads to as `rejected`; the config in
    /// force stays.
    fn reject_untrusted(&mut self, payload: &[u8], key: &str) {
        let service = self.shared.service.to_string();
        let version = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.get("version").and_then(Value::as_u64))
            .unwrap_or(0);
        let reason = format!(
            "untrusted signing key {key}: no rotation statement from a trusted key names it; \
             the config in force stays"
        );
        tracing::error!(target: SECURITY, service, version, "{reason}");
        if version <= self.seen {
            return;
        }
        self.report_pending = true;
        self.last_report = Some(Report {
            version,
            status: AppliedStatus::Rejected,
            error: Some(reason),
            overrides: self.schema.active_overrides(&self.env),
        });
    }

    /// Merges the service's document `config` with the other layers held, resolves, runs the
    /// callbacks, swaps the config in, reports, writes the LKG file.
    async fn apply(&mut self, version: u64, epoch: Uuid, config: Value) {
        let service = self.shared.service.to_string();
        self.epoch = Some(epoch);
        self.seen = version;
        self.layers.service = config.clone();
        let overrides = self.schema.active_overrides(&self.env);
        let merged = self
            .schema
            .merge(
                self.layers
                    .global
                    .as_ref()
                    .filter(|_| self.layers.takes_global),
                &config,
                self.layers.instance.as_ref(),
            )
            .and_then(|(merged, layers)| {
                let resolved = self.schema.resolve::<T>(&merged, &self.env)?;
                Ok((resolved, layers))
            });
        let resolved = match merged.map(|(resolved, layers)| {
            self.layers.applied = layers;
            resolved
        }) {
            Ok(r) => r,
            Err(reason) => {
                tracing::error!(service, version, "rejected config version: {reason}");
                self.report_pending = true;
                self.last_report = Some(Report {
                    version,
                    status: AppliedStatus::Rejected,
                    error: Some(reason),
                    overrides,
                });
                return;
            }
        };
        warn_masked(&service, &resolved.masked);
        let new = Arc::new(resolved.value);
        let old = self.shared.config.borrow().clone();
        let callbacks = lock(&self.shared.callbacks).clone();
        for callback in callbacks {
            let outcome = catch_unwind(AssertUnwindSafe(|| callback(&old, &new)));
            let reason = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("a change callback refused it: {e}"),
                Err(panic) => format!("a change callback panicked: {}", panic_message(&*panic)),
            };
            tracing::error!(service, version, "config version not applied: {reason}");
            self.report_pending = true;
            self.last_report = Some(Report {
                version,
                status: AppliedStatus::Failed,
                error: Some(reason),
                overrides,
            });
            return;
        }
        // Info first: whoever wakes up on the new config reads its version.
        {
            let mut info = lock(&self.shared.info);
            info.version = version;
            info.epoch = Some(epoch);
            info.origin = Origin::Manager;
            info.overrides = resolved.overrides.clone();
        }
        self.shared.config.send_replace(new);
        tracing::info!(service, version, "applied config version");
        self.report_pending = true;
        self.last_report = Some(Report {
            version,
            status: AppliedStatus::Applied,
            error: None,
            overrides: resolved.overrides,
        });
        if let Some(file) = &self.lkg {
            write_lkg(
                file.clone(),
                &self.schema,
                &service,
                version,
                Some(epoch),
                config,
                self.layers.lkg(&self.schema),
            )
            .await;
        }
    }

    /// Publishes the latest report, retained. Answers whether it was handed to the connection.
    fn publish_report(&self, m: &Mqtt) -> bool {
        let Some(report) = &self.last_report else {
            return false;
        };
        let wire = AppliedReport {
            service: self.shared.service.clone(),
            instance: self.shared.instance.clone(),
            version: report.version,
            status: report.status,
            error: report.error.clone(),
            at: Some(OffsetDateTime::now_utc()),
            schema_hash: Some(self.shared.schema_hash.clone()),
            overrides: Some(report.overrides.clone()),
            layers: Some(self.layers.applied.clone()),
            global_version: self
                .layers
                .takes_global
                .then_some(self.layers.global_version),
            // 0 while no override is merged (none yet, or removed).
            override_version: Some(if self.layers.instance.is_some() {
                self.layers.instance_version
            } else {
                0
            }),
        };
        let payload = wire.to_bytes();
        match m
            .client
            .try_publish(&m.topics.applied, QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot report the applied status");
                false
            }
        }
    }
}

/// The report that says this instance is gone: its last will, and what a clean stop publishes.
pub(crate) fn offline_report<T>(shared: &Shared<T>) -> AppliedReport {
    AppliedReport {
        service: shared.service.clone(),
        instance: shared.instance.clone(),
        version: 0,
        status: AppliedStatus::Offline,
        error: None,
        at: None,
        schema_hash: None,
        overrides: None,
        layers: None,
        global_version: None,
        override_version: None,
    }
}

/// Writes the LKG file on a blocking thread; a failure is logged, not fatal.
pub(crate) async fn write_lkg(
    file: Arc<LkgFile>,
    schema: &ServiceSchema,
    service: &str,
    version: u64,
    epoch: Option<Uuid>,
    config: Value,
    layers: Option<LkgLayers>,
) {
    let config = schema.without_secrets(&config);
    let hash = schema.hash();
    let owned_service = service.to_owned();
    let path = file.path().display().to_string();
    let written = tokio::task::spawn_blocking(move || {
        file.store(&owned_service, version, epoch, &hash, config, layers)
    })
    .await;
    match written {
        Ok(Ok(())) => tracing::debug!(service, version, path, "last-known-good file written"),
        Ok(Err(e)) => {
            tracing::warn!(service, path, "cannot write the last-known-good file: {e}")
        }
        Err(e) => tracing::warn!(service, path, "cannot write the last-known-good file: {e}"),
    }
}

/// Warns when secrets arrived masked: the token is not this service's own.
pub(crate) fn warn_masked(service: &str, masked: &[String]) {
    if !masked.is_empty() {
        tracing::warn!(
            service,
            keys = ?masked,
            "the manager masked these secrets: read them with this service's own token"
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

async fn poll(mqtt: &mut Option<Mqtt>) -> Result<Event, rumqttc::ConnectionError> {
    match mqtt {
        Some(m) => m.eventloop.poll().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
