//! Home Assistant MQTT discovery (`--home-assistant`, off by default).
//!
//! A task with its own broker connection publishes, retained, one discovery config per simple
//! setting of every service (which settings and as what: [`entities`]) and each setting's
//! current value on its state topic, following every committed change. Home Assistant sends new
//! values on command topics; each becomes a merge patch written through the one write pipeline
//! (`ops::write`) with actor `home-assistant`, so it is validated, versioned, audited and
//! published like any other write. A command that does not fit is refused with a log line and
//! changes nothing; the state topic is published again so Home Assistant shows the value in
//! force. Secrets are never entities.
//!
//! The connection is separate from the publisher's so that nothing here can hold up envelopes,
//! and so that turning the feature off removes it entirely.

pub mod entities;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use dials_domain::{Document, ServiceName};
use dials_wire::mqtt::BrokerUrl;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, QoS};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::Note;
use crate::ops::{Intent, Preconditions};
use crate::{AppState, Principal, Role};
use entities::{Entity, HaTopics};

/// The actor Home Assistant's writes are recorded under.
pub const ACTOR: &str = "home-assistant";

/// How often every service is compared with what was published, to catch schema
/// registrations (which are not config changes) and deletions.
const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// The broker to connect to, as the publisher does.
#[derive(Debug, Clone)]
pub struct HaBroker {
    /// The broker's URL.
    pub url: BrokerUrl,
    /// A CA (PEM) to trust for `mqtts://` instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// Starts the bridge; it stops when the server starts stopping.
pub fn spawn(state: AppState, broker: HaBroker) -> JoinHandle<()> {
    tokio::spawn(async move {
        let topics = HaTopics {
            discovery_prefix: state.settings.home_assistant_prefix.clone(),
            prefix: state.settings.mqtt_prefix.clone(),
        };
        let client_id = format!(
            "dials-ha-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let mut options =
            dials_mqtt::broker_options(&broker.url, client_id, broker.ca_pem.as_deref());
        options.set_max_packet_size(256 * 1024, 256 * 1024);
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let (events, driver) = drive(eventloop);
        tracing::info!(
            discovery_prefix = %topics.discovery_prefix,
            "Home Assistant discovery is on"
        );
        let mut bridge = Bridge {
            state,
            topics,
            client,
            services: HashMap::new(),
            retained: HashMap::new(),
        };
        bridge.run(events).await;
        driver.abort();
    })
}

/// Polls the event loop in a task of its own, so a connect in progress is never cancelled;
/// after an error it waits a second before polling again, which reconnects.
fn drive(mut eventloop: EventLoop) -> (mpsc::Receiver<Result<Event, String>>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(async move {
        loop {
            let event = eventloop.poll().await.map_err(|e| e.to_string());
            let failed = event.is_err();
            if tx.send(event).await.is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    (rx, task)
}

struct Bridge {
    state: AppState,
    topics: HaTopics,
    client: AsyncClient,
    /// The entities published for each service.
    services: HashMap<String, Vec<Entity>>,
    /// What each retained topic of ours holds (discovery configs and states), to publish only
    /// what changed.
    retained: HashMap<String, Vec<u8>>,
}

impl Bridge {
    async fn run(&mut self, mut events: mpsc::Receiver<Result<Event, String>>) {
        let mut changes = self.state.events.subscribe();
        let mut stopping = self.state.stopping.subscribe();
        // Resolves to `()`, so no borrow of the watch value lives in the select's output.
        let stop = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        let mut connected = false;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                        connected = true;
                        tracing::info!("Home Assistant bridge connected to the MQTT broker");
                        // A new session: the broker may have lost what was retained.
                        self.retained.clear();
                        let filters = [self.topics.command_filter(), self.topics.ha_status()];
                        for filter in filters {
                            if let Err(e) = self.client.subscribe(filter, QoS::AtLeastOnce).await {
                                tracing::warn!(error = %e, "Home Assistant bridge cannot subscribe");
                            }
                        }
                        self.sync_all().await;
                    }
                    Some(Ok(Event::Incoming(Incoming::Publish(publish)))) => {
                        self.on_message(&publish.topic, &publish.payload).await;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if connected {
                            tracing::warn!(error = %e, "Home Assistant bridge lost the MQTT broker");
                        }
                        connected = false;
                    }
                    None => return,
                },
                note = changes.recv() => match note {
                    Some(Note::Change(change)) => {
                        if connected {
                            self.sync_service(&change.service).await;
                        }
                    }
                    Some(Note::Lagged) | None => {
                        changes = self.state.events.subscribe();
                        if connected {
                            self.sync_all().await;
                        }
                    }
                },
                _ = resync.tick(), if connected => self.sync_all().await,
                () = &mut stop => break,
            }
        }
        let _ = self.client.disconnect().await;
    }

    async fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.topics.ha_status() {
            if payload == b"online" {
                // Home Assistant (re)started: it asks for every discovery config again.
                self.retained.clear();
                self.sync_all().await;
            }
            return;
        }
        let Some((service, object_id)) = self.topics.parse_command(topic) else {
            return;
        };
        let (service, object_id) = (service.to_owned(), object_id.to_owned());
        let payload = String::from_utf8_lossy(payload).into_owned();
        self.command(&service, &object_id, &payload).await;
        // Whatever happened, the state topic says what is in force now (a refused command
        // leaves Home Assistant showing the old value again).
        self.sync_service(&service).await;
    }

    /// A command from Home Assistant: a validated write, or a refusal with a log line.
    async fn command(&mut self, service: &str, object_id: &str, payload: &str) {
        let Some(entity) = self
            .services
            .get(service)
            .and_then(|all| all.iter().find(|e| e.object_id == object_id))
            .cloned()
        else {
            tracing::warn!(
                service,
                entity = object_id,
                "Home Assistant command refused: no such setting is shown"
            );
            return;
        };
        let key = entity.key.to_string();
        let value = match entities::command_value(&entity, payload) {
            Ok(value) => value,
            Err(why) => {
                tracing::warn!(service, key, reason = %why, "Home Assistant command refused");
                return;
            }
        };
        let Ok(name) = ServiceName::parse(service) else {
            return;
        };
        let patch = entities::merge_patch(&entity.key, value);
        let principal = Principal::internal(ACTOR, Role::Operator);
        match crate::ops::write(
            &self.state,
            &name,
            &principal,
            Intent::Patch(patch),
            Preconditions::default(),
            Some("set from Home Assistant".into()),
        )
        .await
        {
            Ok(Some(written)) => {
                tracing::info!(
                    service,
                    key,
                    version = written.version,
                    "Home Assistant changed a setting"
                );
            }
            Ok(None) => {}
            Err(e) => {
                let problem = e.problem();
                let errors: Vec<String> = problem
                    .errors
                    .iter()
                    .map(|f| format!("{}: {}", f.path, f.message))
                    .collect();
                tracing::warn!(
                    service, key, status = problem.status, reason = %problem.detail,
                    errors = %errors.join("; "),
                    "Home Assistant command refused"
                );
            }
        }
    }

    /// Compares every service (and every one published before) with what the broker holds.
    async fn sync_all(&mut self) {
        let mut names: HashSet<String> = self.services.keys().cloned().collect();
        match self.state.store.services().await {
            Ok(all) => names.extend(
                all.into_iter()
                    .filter(|s| s.document.is_some() && !s.name.is_instance_layer())
                    .map(|s| s.name.to_string()),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Home Assistant bridge cannot list services");
                return;
            }
        }
        if let Ok(schemas) = self.state.store.schemas().await {
            names.extend(schemas.into_iter().map(|s| s.service.to_string()));
        }
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        for name in names {
            self.sync_service(&name).await;
        }
    }

    /// Publishes what changed for one service: discovery configs of new or changed entities,
    /// empty configs for entities that are gone, and states that differ.
    async fn sync_service(&mut self, service: &str) {
        let Ok(name) = ServiceName::parse(service) else {
            return;
        };
        let (entities, document) = match self.current(&name).await {
            Ok(Some((entities, document))) => (entities, document),
            Ok(None) => (Vec::new(), Value::Null),
            Err(e) => {
                tracing::debug!(service, error = %e.problem().detail, "Home Assistant bridge cannot read a service");
                return;
            }
        };
        let version = env!("CARGO_PKG_VERSION");
        let mut wanted: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for entity in &entities {
            let config = entities::discovery_config(&self.topics, service, entity, version);
            wanted.insert(
                self.topics
                    .discovery(entity.component, service, &entity.object_id),
                serde_json::to_vec(&config).unwrap_or_default(),
            );
            if let Some(state) = entities::state_payload(entity, &document) {
                wanted.insert(
                    self.topics.state(service, &entity.object_id),
                    state.into_bytes(),
                );
            }
        }
        // Entities no longer shown: an empty retained config removes them from Home Assistant.
        if let Some(before) = self.services.get(service) {
            for old in before {
                let topic = self
                    .topics
                    .discovery(old.component, service, &old.object_id);
                if !wanted.contains_key(&topic) {
                    wanted.insert(topic, Vec::new());
                    wanted.insert(self.topics.state(service, &old.object_id), Vec::new());
                }
            }
        }
        for (topic, payload) in wanted {
            if self.retained.get(&topic) == Some(&payload) {
                continue;
            }
            match self
                .client
                .publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone())
                .await
            {
                Ok(()) if payload.is_empty() => {
                    self.retained.remove(&topic);
                }
                Ok(()) => {
                    self.retained.insert(topic, payload);
                }
                Err(e) => tracing::warn!(error = %e, "Home Assistant bridge cannot publish"),
            }
        }
        if entities.is_empty() {
            self.services.remove(service);
        } else {
            self.services.insert(service.to_owned(), entities);
        }
    }

    /// A service's entities and its current document (defaults filled, secrets masked), or
    /// `None` when it has neither a schema nor a document.
    async fn current(
        &self,
        name: &ServiceName,
    ) -> Result<Option<(Vec<Entity>, Value)>, crate::ApiError> {
        let Some(schema) = crate::schemas::schema_of(&self.state, name).await? else {
            return Ok(None);
        };
        let document = match crate::ops::current_config(&self.state, name).await {
            Ok((_, body)) => serde_json::from_slice::<dials_wire::ConfigResponse>(&body)
                .map(|r| r.config)
                .unwrap_or(Value::Null),
            Err(crate::ApiError::NotFound(_)) => {
                crate::schemas::with_defaults(Some(&schema), &Document::new()).into_value()
            }
            Err(e) => return Err(e),
        };
        Ok(Some((entities::entities(&schema), document)))
    }
}
