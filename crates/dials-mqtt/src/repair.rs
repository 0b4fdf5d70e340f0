//! Keeping the retained topics true.
//!
//! Any client allowed to publish on the broker can overwrite a retained `config/updated/{s}` or
//! the health message, or clear it with an empty payload. Services already refuse what is not
//! signed by the manager, but a forged or emptied retained message would stay until the
//! service's next write, so a service starting meanwhile would find nothing it can use. The
//! publisher therefore subscribes to its own retained topics and compares what it receives with
//! what it last published there (the truth, kept in memory):
//!
//! - the same bytes, or an earlier publish of ours still arriving (its echo), are fine. Earlier
//!   publishes are remembered by a keyed hash of their bytes, not the bytes, so that hundreds of
//!   them can be on their way to one topic (many writers on one service) at a few bytes each;
//! - on `config/updated/{s}`, another signing of the same version under our key and epoch (an
//!   envelope from before a reconnect) is fine too;
//! - anything else (other bytes, empty, a bad signature, an older version) is repaired: the truth
//!   is published again, retained, byte for byte;
//! - a topic of a service the manager does not know (never written, or deleted) has no retained
//!   message in truth: anything but an empty payload there is cleared (an empty retained
//!   message). The `config/updated/` topics under the prefix are the manager's alone, and a
//!   stranger's envelope there is at best stale (an older database) and at worst an attack.
//!
//! Our own repairs come back as echoes equal to the truth, so they never trigger another one.
//! Repairs are limited per topic ([`REPAIR_EVERY`]) and in all ([`REPAIRS_PER_SECOND`]); a topic
//! that needs one while limited is marked and repaired when its turn comes, unless a message of
//! ours arrives there first. Signatures are checked only when the limits would allow a repair.
//! Two managers on one broker under the same prefix would repair each other's messages within
//! these limits forever: each needs its own prefix.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use dials_wire::Envelope;
use ed25519_dalek::VerifyingKey;
use tokio::time::Instant;
use uuid::Uuid;

/// Least time between two repairs of one topic.
pub(crate) const REPAIR_EVERY: Duration = Duration::from_secs(1);

/// Most repairs per second over all topics.
pub(crate) const REPAIRS_PER_SECOND: u32 = 100;

/// Most topics remembered as waiting for a repair.
const MAX_DUE: usize = 10_000;

/// Most of our own publishes remembered per topic while their echoes are on the way. At
/// thousands of writes a second to one service, a few milliseconds between a publish and its
/// echo put dozens on the way; one forgotten too soon looks like another client's message and
/// is "repaired" for nothing.
const MAX_ECHOES: usize = 4096;

/// What a retained topic is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `config/updated/{service}`.
    Updated(String),
    /// The health topic.
    Health,
}

/// What to publish, retained, to repair a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repair {
    pub topic: String,
    pub payload: Arc<[u8]>,
}

#[derive(Debug)]
struct Truth {
    payload: Arc<[u8]>,
    /// The envelope's version (none for the health topic and for a deleted service).
    version: Option<u64>,
    /// Earlier publishes of ours on this topic whose echoes may still arrive, oldest first, by
    /// the keyed hash of their bytes.
    echoes: VecDeque<u64>,
}

/// The retained topics' state machine. The caller publishes what it returns.
#[derive(Debug)]
pub(crate) struct Retained {
    key: VerifyingKey,
    /// Keys the hash of remembered echoes with a secret of this process, so that no other
    /// client can make a payload pass for one of ours.
    hasher: RandomState,
    epoch: Uuid,
    truth: HashMap<String, Truth>,
    /// Whether the truth of every service is known (after the first full read of the services).
    ready: bool,
    /// Services whose truth follows from the outbox: their messages are left alone until then.
    awaiting: HashSet<String>,
    last_repair: HashMap<String, Instant>,
    due: HashSet<String>,
    window: (Instant, u32),
    repairs: u64,
}

impl Retained {
    pub(crate) fn new(key: VerifyingKey, epoch: Uuid) -> Self {
        Self {
            key,
            hasher: RandomState::new(),
            epoch,
            truth: HashMap::new(),
            ready: false,
            awaiting: HashSet::new(),
            last_repair: HashMap::new(),
            due: HashSet::new(),
            window: (Instant::now(), 0),
            repairs: 0,
        }
    }

    /// Notes that we publish `payload` on `topic` (in the order we hand publishes over).
    pub(crate) fn published(&mut self, topic: &str, payload: &[u8], version: Option<u64>) {
        match self.truth.get_mut(topic) {
            Some(t) if *t.payload == *payload => {}
            Some(t) => {
                let old = std::mem::replace(&mut t.payload, payload.into());
                t.echoes.push_back(self.hasher.hash_one(&*old));
                if t.echoes.len() > MAX_ECHOES {
                    t.echoes.pop_front();
                }
                t.version = version;
            }
            None => {
                self.truth.insert(
                    topic.to_owned(),
                    Truth {
                        payload: payload.into(),
                        version,
                        echoes: VecDeque::new(),
                    },
                );
            }
        }
    }

    /// After each (re)connect: every service's truth is known except those in `awaiting`, whose
    /// pending outbox rows will set it.
    pub(crate) fn known(&mut self, awaiting: impl IntoIterator<Item = String>) {
        self.awaiting = awaiting.into_iter().collect();
        self.ready = true;
    }

    /// Judges a message received on one of our retained topics; returns a repair to publish now,
    /// if one is needed and allowed.
    pub(crate) fn received(
        &mut self,
        topic: &str,
        kind: Kind,
        payload: &[u8],
        now: Instant,
    ) -> Option<Repair> {
        if let Some(truth) = self.truth.get_mut(topic) {
            if *truth.payload == *payload {
                truth.echoes.clear();
                self.due.remove(topic);
                return None;
            }
            let hash = self.hasher.hash_one(payload);
            if let Some(i) = truth.echoes.iter().position(|e| *e == hash) {
                truth.echoes.drain(..=i);
                self.due.remove(topic);
                return None;
            }
        } else {
            match &kind {
                // Before the first health goes out there is nothing to defend.
                Kind::Health => return None,
                Kind::Updated(service) => {
                    if !self.ready || self.awaiting.contains(service) || payload.is_empty() {
                        self.due.remove(topic);
                        return None;
                    }
                }
            }
        }
        if !self.allowed(topic, now) {
            if self.due.len() < MAX_DUE {
                self.due.insert(topic.to_owned());
            }
            return None;
        }
        if let Kind::Updated(service) = &kind
            && self.same_version(topic, service, payload)
        {
            return None;
        }
        self.due.remove(topic);
        Some(self.repair(topic, now))
    }

    /// Whether `payload` is our own signing of the version that is the truth of `topic`.
    fn same_version(&self, topic: &str, service: &str, payload: &[u8]) -> bool {
        let Some(version) = self.truth.get(topic).and_then(|t| t.version) else {
            return false;
        };
        Envelope::verify(payload, &[self.key])
            .is_ok_and(|e| e.epoch == self.epoch && e.service == service && e.version == version)
    }

    /// Repairs of marked topics whose turn has come.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Repair> {
        let ready: Vec<String> = self
            .due
            .iter()
            .filter(|t| {
                self.last_repair
                    .get(*t)
                    .is_none_or(|at| now - *at >= REPAIR_EVERY)
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for topic in ready {
            if !self.allowed(&topic, now) {
                break;
            }
            self.due.remove(&topic);
            out.push(self.repair(&topic, now));
        }
        out
    }

    pub(crate) fn has_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// Repairs since start.
    pub(crate) fn repairs(&self) -> u64 {
        self.repairs
    }

    fn allowed(&mut self, topic: &str, now: Instant) -> bool {
        if self
            .last_repair
            .get(topic)
            .is_some_and(|at| now - *at < REPAIR_EVERY)
        {
            return false;
        }
        if now - self.window.0 >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 < REPAIRS_PER_SECOND
    }

    fn repair(&mut self, topic: &str, now: Instant) -> Repair {
        self.window.1 += 1;
        self.repairs += 1;
        if self.last_repair.len() >= MAX_DUE {
            self.last_repair.retain(|_, at| now - *at < REPAIR_EVERY);
        }
        self.last_repair.insert(topic.to_owned(), now);
        let payload = match self.truth.get(topic) {
            Some(t) => t.payload.clone(),
            None => Arc::from(&[][..]),
        };
        Repair {
            topic: topic.to_owned(),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dials_wire::EnvelopeSigner;
    use serde_json::json;
    use time::OffsetDateTime;

    const TOPIC: &str = "config/updated/tts";

    fn updated() -> Kind {
        Kind::Updated("tts".into())
    }

    struct Fixture {
        signer: EnvelopeSigner,
        epoch: Uuid,
        retained: Retained,
    }

    impl Fixture {
        fn new() -> Self {
            let signer = EnvelopeSigner::from_seed(&[7; 32]);
            let epoch = Uuid::new_v4();
            let mut retained = Retained::new(signer.verifying_key(), epoch);
            retained.known([]);
            Self {
                signer,
                epoch,
                retained,
            }
        }

        fn envelope(&self, version: u64) -> Vec<u8> {
            self.signer
                .sign(
                    "tts",
                    version,
                    version,
                    json!({"v": version}),
                    self.epoch,
                    OffsetDateTime::now_utc(),
                )
                .unwrap()
                .to_bytes()
        }

        fn publish(&mut self, version: u64) -> Vec<u8> {
            let bytes = self.envelope(version);
            self.retained.published(TOPIC, &bytes, Some(version));
            bytes
        }

        fn receive(&mut self, payload: &[u8]) -> Option<Repair> {
            self.retained
                .received(TOPIC, updated(), payload, Instant::now())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_echoes_never_trigger_a_repair() {
        let mut f = Fixture::new();
        let v1 = f.publish(1);
        let v2 = f.publish(2);
        assert_eq!(f.receive(&v1), None, "an earlier publish still arriving");
        assert_eq!(f.receive(&v2), None);
        assert_eq!(f.receive(&v2), None, "again, after a reconnect");
        assert_eq!(f.retained.repairs(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn hundreds_of_echoes_on_their_way_to_one_topic_are_still_ours() {
        // Many writers on one service: every version is published, and the broker's echoes
        // come back well behind the newest.
        let mut f = Fixture::new();
        let sent: Vec<Vec<u8>> = (1..=300).map(|v| f.publish(v)).collect();
        for echo in &sent {
            assert_eq!(f.receive(echo), None);
        }
        assert_eq!(f.retained.repairs(), 0);
        assert!(!f.retained.has_due());
        // Once the newest came back, the older ones are no longer expected.
        assert!(f.receive(&sent[0]).is_some(), "an older version replayed");
    }

    #[tokio::test(start_paused = true)]
    async fn forged_empty_and_older_envelopes_are_repaired_with_the_truth() {
        let mut f = Fixture::new();
        let old = f.publish(1);
        let truth = f.publish(2);
        f.receive(&old);
        f.receive(&truth);
        let expected = Some(Repair {
            topic: TOPIC.into(),
            payload: truth.clone().into(),
        });
        let mut forged: serde_json::Value = serde_json::from_slice(&truth).unwrap();
        forged["config"]["v"] = json!(99);
        assert_eq!(f.receive(&serde_json::to_vec(&forged).unwrap()), expected);
        tokio::time::advance(REPAIR_EVERY).await;
        assert_eq!(f.receive(b""), expected, "emptied");
        tokio::time::advance(REPAIR_EVERY).await;
        assert_eq!(f.receive(&old), expected, "an older version replayed");
        tokio::time::advance(REPAIR_EVERY).await;
        // Our own signing of the same version from before a restart is left alone.
        let again = f.envelope(2);
        assert_eq!(f.receive(&again), None);
        assert_eq!(f.retained.repairs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn repairs_of_one_topic_are_spaced_and_the_last_word_is_ours() {
        let mut f = Fixture::new();
        let truth = f.publish(1);
        assert!(f.receive(b"forged").is_some());
        assert_eq!(f.receive(b""), None, "too soon: marked instead");
        assert!(f.retained.has_due());
        tokio::time::advance(REPAIR_EVERY / 2).await;
        assert!(f.retained.due(Instant::now()).is_empty());
        tokio::time::advance(REPAIR_EVERY / 2).await;
        let due = f.retained.due(Instant::now());
        assert_eq!(due.len(), 1);
        assert_eq!(*due[0].payload, *truth);
        assert!(!f.retained.has_due());

        // When our own repair arrives after the forgery, nothing more is needed.
        tokio::time::advance(REPAIR_EVERY / 2).await;
        assert_eq!(f.receive(b"forged again"), None);
        assert_eq!(f.receive(&truth), None);
        assert!(!f.retained.has_due());
    }

    #[tokio::test(start_paused = true)]
    async fn repairs_in_all_are_limited_per_second() {
        let mut f = Fixture::new();
        let now = Instant::now();
        let mut repaired = 0;
        for i in 0..REPAIRS_PER_SECOND * 2 {
            let topic = format!("config/updated/s{i}");
            let kind = Kind::Updated(format!("s{i}"));
            if f.retained.received(&topic, kind, b"junk", now).is_some() {
                repaired += 1;
            }
        }
        assert_eq!(repaired, REPAIRS_PER_SECOND);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            f.retained.due(Instant::now()).len(),
            REPAIRS_PER_SECOND as usize
        );
        assert!(!f.retained.has_due());
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_services_are_cleared_but_not_before_every_service_is_known() {
        let signer = EnvelopeSigner::from_seed(&[7; 32]);
        let mut r = Retained::new(signer.verifying_key(), Uuid::new_v4());
        let now = Instant::now();
        assert_eq!(
            r.received(TOPIC, updated(), b"junk", now),
            None,
            "not ready"
        );
        r.known(["tts".to_owned()]);
        assert_eq!(
            r.received(TOPIC, updated(), b"junk", now),
            None,
            "its outbox rows will set it"
        );
        let other = "config/updated/ghost";
        let ghost = Kind::Updated("ghost".into());
        assert_eq!(r.received(other, ghost.clone(), b"", now), None);
        let cleared = r.received(other, ghost.clone(), b"junk", now).unwrap();
        assert!(cleared.payload.is_empty());
        assert_eq!(r.received(other, ghost, b"", now), None, "our own echo");
        // A deleted service's truth is the empty message.
        r.published("config/updated/gone", b"", None);
        let gone = Kind::Updated("gone".into());
        assert!(
            r.received("config/updated/gone", gone, b"{}", now)
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn health_is_defended_once_it_was_published() {
        let signer = EnvelopeSigner::from_seed(&[7; 32]);
        let mut r = Retained::new(signer.verifying_key(), Uuid::new_v4());
        let topic = "system/health/config-manager";
        let now = Instant::now();
        assert_eq!(r.received(topic, Kind::Health, b"{}", now), None);
        r.published(topic, br#"{"ok":true}"#, None);
        let repair = r.received(topic, Kind::Health, b"", now).unwrap();
        assert_eq!(&*repair.payload, br#"{"ok":true}"#);
    }
}
