//! What the crash and partition harnesses share: a TCP proxy that can cut and stall traffic, an
//! MQTT observer that records and checks every envelope, writers that record every acknowledged
//! write, a client of one service recording what it applies, and the final checks against the
//! manager's history.
//!
//! Rounds are bounded for CI; `DIALS_CRASH_ROUNDS` and `DIALS_PARTITION_ROUNDS` raise them for
//! the figures in RELIABILITY.md.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::get_json;
use dials_wire::envelope::{Envelope, parse_public_key};
use reqwest::StatusCode;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A small deterministic generator (xorshift64*), seeded per run and printed, so a failing run
/// can be repeated with `DIALS_HARNESS_SEED`.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = std::env::var("DIALS_HARNESS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("harness seed {seed} (DIALS_HARNESS_SEED repeats it)");
        Rng(seed)
    }

    pub fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// How many rounds a harness runs: the environment variable, else `default`.
pub fn rounds(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Keep connections open but forward nothing (held bytes flow when it heals).
    Stall,
    /// Close every connection and refuse new ones.
    Down,
}

/// A TCP proxy on a port of its own in front of an upstream that may move (a restarted
/// manager) and may be cut off or stalled, as a flaky network would.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    mode: watch::Sender<Mode>,
    /// Bumped to close every open connection.
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let (mode, _) = watch::channel(Mode::Pass);
        let (generation, _) = watch::channel(0u64);
        let task = {
            let upstream = upstream.clone();
            let mode = mode.clone();
            let generation = generation.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if *mode.borrow() == Mode::Down {
                        drop(inbound);
                        continue;
                    }
                    let to = *upstream.lock().unwrap();
                    let mode = mode.subscribe();
                    let mut closed = generation.subscribe();
                    tokio::spawn(async move {
                        let _ = inbound.set_nodelay(true);
                        tokio::select! {
                            _ = relay(inbound, to, mode) => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            })
        };
        Proxy {
            addr,
            upstream,
            mode,
            generation,
            task,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Where new connections go from now on.
    pub fn set_upstream(&self, to: SocketAddr) {
        *self.upstream.lock().unwrap() = to;
    }

    /// Cuts every connection; with [`Mode::Down`] new ones are refused until [`Proxy::heal`].
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Down {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    pub fn heal(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

async fn relay(inbound: TcpStream, to: SocketAddr, mode: watch::Receiver<Mode>) {
    // A connection that arrives during a stall waits for the heal before it reaches upstream.
    let mut waiting = mode.clone();
    if waiting.wait_for(|m| *m == Mode::Pass).await.is_err() {
        return;
    }
    let Ok(outbound) = TcpStream::connect(to).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    // Either direction ending ends the connection, as a dead peer would.
    tokio::select! {
        _ = pump(ir, ow, mode.clone()) => {}
        _ = pump(or, iw, mode) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A stall holds what was read until it heals; a cut ends the connection.
        match mode.wait_for(|m| *m != Mode::Stall).await {
            Ok(m) if *m == Mode::Pass => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One envelope as the observer received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub version: u64,
    pub config: Value,
    /// Sent because the observer (re)subscribed, not as a live publish.
    pub retained: bool,
    /// Which of the observer's connections it arrived on.
    pub connection: u32,
}

#[derive(Default)]
pub struct Observed {
    pub by_service: BTreeMap<String, Vec<Delivery>>,
    /// Messages that failed verification, with why.
    pub bad: Vec<String>,
    pub connections: u32,
}

/// An MQTT subscriber on `config/updated/+` that verifies each envelope's signature under the
/// manager's key and records it. It resubscribes after every reconnect.
pub struct Observer {
    pub seen: Arc<Mutex<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Observer {
    pub async fn start(broker: SocketAddr, public_key: &str) -> Observer {
        let key = parse_public_key(public_key).expect("the manager's public key");
        let id = format!("harness-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, broker.ip().to_string(), broker.port());
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut events) = AsyncClient::new(options, 1000);
        let seen = Arc::new(Mutex::new(Observed::default()));
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                            seen.lock().unwrap().connections += 1;
                            let _ = client.subscribe("config/updated/+", QoS::AtLeastOnce).await;
                        }
                        Ok(Event::Incoming(Incoming::SubAck(_))) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            let service = p.topic.trim_start_matches("config/updated/").to_owned();
                            let mut seen = seen.lock().unwrap();
                            if p.payload.is_empty() {
                                continue; // a deleted service's cleared topic
                            }
                            match Envelope::verify(&p.payload, &[key]) {
                                Ok(e) if e.service == service => {
                                    let connection = seen.connections;
                                    seen.by_service.entry(service).or_default().push(Delivery {
                                        version: e.version,
                                        config: e.config.clone(),
                                        retained: p.retain,
                                        connection,
                                    });
                                }
                                Ok(e) => seen
                                    .bad
                                    .push(format!("{} carried service {}", p.topic, e.service)),
                                Err(e) => seen.bad.push(format!("{}: {e}", p.topic)),
                            }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .expect("the observer subscribed")
            .unwrap();
        Observer { seen, task }
    }

    /// The newest version seen of each service.
    pub fn latest(&self) -> BTreeMap<String, u64> {
        let seen = self.seen.lock().unwrap();
        seen.by_service
            .iter()
            .map(|(s, d)| (s.clone(), d.iter().map(|d| d.version).max().unwrap_or(0)))
            .collect()
    }

    /// Waits until every service in `want` has been seen at (at least) its version.
    pub async fn wait_for(&self, want: &BTreeMap<String, u64>, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let latest = self.latest();
            if want
                .iter()
                .all(|(s, v)| latest.get(s).is_some_and(|l| l >= v))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "MQTT did not deliver {want:?} within {secs} s; seen {latest:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One write the manager acknowledged with 200: the version it answered and the value the
/// write set at `key`.
#[derive(Debug, Clone)]
pub struct Ack {
    pub service: String,
    pub version: u64,
    pub key: String,
    pub value: u64,
    /// The version the write named in `If-Match`, if it named one.
    pub if_match: Option<u64>,
    /// When the request was sent and when its answer came.
    pub invoked: std::time::Instant,
    pub answered: std::time::Instant,
}

#[derive(Default, Debug)]
pub struct WriteLog {
    pub acks: Vec<Ack>,
    /// Requests that got no answer (the manager died under them); they may or may not have
    /// committed.
    pub unanswered: u64,
    /// Refused preconditions (412) on the shared service: expected, counted.
    pub refused: u64,
    /// Answers that should never happen (a 5xx other than a read-only 503, a 4xx other than 412).
    pub unexpected: Vec<String>,
}

/// Writers: writer `i` owns service `own-{i}` and all share `shared`. Each writes PUT or PATCH,
/// with or without `If-Match`, a rising sequence number of its own, and records what was
/// acknowledged, pausing `pause` after each write (zero: as fast as the manager answers). They
/// run until `stop` says so, through crashes and partitions.
pub struct Writers {
    pub log: Arc<Mutex<WriteLog>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

pub const SHARED: &str = "shared";

/// Well under a lease's 5 s: a replica that stops cleanly hands the publisher's lease over at
/// the other's next try (every second).
pub const LEASE_HANDOVER: Duration = Duration::from_millis(2500);

pub fn own(i: usize) -> String {
    format!("own-{i}")
}

impl Writers {
    pub fn start(n: usize, base: &str, token: &str, pause: Duration, rng: &mut Rng) -> Writers {
        Self::start_across(n, &[base.to_owned()], token, pause, rng)
    }

    /// Like [`Writers::start`], each writer sending its requests to `bases` in turn, as a
    /// round-robin load balancer would; a base that does not answer is tried again on the
    /// writer's next turn.
    pub fn start_across(
        n: usize,
        bases: &[String],
        token: &str,
        pause: Duration,
        rng: &mut Rng,
    ) -> Writers {
        let log = Arc::new(Mutex::new(WriteLog::default()));
        let (stop, _) = watch::channel(false);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let tasks = (0..n)
            .map(|i| {
                let w = Writer {
                    i,
                    bases: bases.to_vec(),
                    token: token.to_owned(),
                    http: http.clone(),
                    rng: rng.fork(),
                    log: log.clone(),
                    known: HashMap::new(),
                    seq: 0,
                    pause,
                };
                let stop = stop.subscribe();
                tokio::spawn(w.run(stop))
            })
            .collect();
        Writers { log, stop, tasks }
    }

    pub async fn stop(self) -> WriteLog {
        self.stop.send_replace(true);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    pub fn acknowledged(&self) -> usize {
        self.log.lock().unwrap().acks.len()
    }
}

struct Writer {
    i: usize,
    bases: Vec<String>,
    token: String,
    http: reqwest::Client,
    rng: Rng,
    log: Arc<Mutex<WriteLog>>,
    /// The version last seen of each service, for `If-Match`.
    known: HashMap<String, u64>,
    seq: u64,
    pause: Duration,
}

impl Writer {
    async fn run(mut self, stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            if self.once().await.is_err() {
                // No manager to talk to (killed, restarting, cut off): try again shortly.
                tokio::time::sleep(Duration::from_millis(20)).await;
            } else if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
    }

    async fn once(&mut self) -> Result<(), reqwest::Error> {
        let shared = self.rng.range(0, 3) == 0;
        let service = if shared {
            SHARED.to_owned()
        } else {
            own(self.i)
        };
        let key = if shared {
            format!("w{}", self.i)
        } else {
            "seq".to_owned()
        };
        self.seq += 1;
        let value = self.seq;
        let patch = self.rng.range(0, 2) == 0;
        let if_match = self.rng.range(0, 2) == 0;
        let base = &self.bases[(self.seq as usize + self.i) % self.bases.len()];
        let url = format!("{base}/api/v1/services/{service}/config");
        let mut config = json!({ key.clone(): value });
        if !patch && !shared {
            config["writer"] = json!(self.i);
        }
        let mut req = if patch {
            self.http.patch(&url)
        } else {
            self.http.put(&url)
        }
        .bearer_auth(&self.token)
        .json(&json!({ "config": config }));
        let mut named = None;
        if if_match {
            let v = self.known.get(&service).copied().unwrap_or(1);
            req = req.header("If-Match", format!("\"{v}\""));
            named = Some(v);
        }
        let invoked = std::time::Instant::now();
        let r = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.log.lock().unwrap().unanswered += 1;
                return Err(e);
            }
        };
        let status = r.status();
        let body: Value = match r.json().await {
            Ok(b) => b,
            Err(e) => {
                // The answer was cut off: as good as no answer.
                self.log.lock().unwrap().unanswered += 1;
                return Err(e);
            }
        };
        let answered = std::time::Instant::now();
        if status == StatusCode::PRECONDITION_FAILED {
            self.log.lock().unwrap().refused += 1;
            // Learn the current version for the next If-Match.
            if let Ok(r) = self.http.get(&url).bearer_auth(&self.token).send().await
                && let Ok(b) = r.json::<Value>().await
                && let Some(v) = b["version"].as_u64()
            {
                self.known.insert(service, v);
            }
            return Ok(());
        }
        let mut log = self.log.lock().unwrap();
        match status {
            StatusCode::OK => {
                let version = body["version"].as_u64().unwrap_or(0);
                if body["config"][&key] != json!(value) {
                    log.unexpected
                        .push(format!("200 for {service} without {key}={value}: {body}"));
                }
                self.known.insert(service.clone(), version);
                log.acks.push(Ack {
                    service,
                    version,
                    key,
                    value,
                    if_match: named,
                    invoked,
                    answered,
                });
            }
            // A manager still opening its database, or losing it as it is killed.
            StatusCode::SERVICE_UNAVAILABLE => log.unanswered += 1,
            other => log
                .unexpected
                .push(format!("{other} for {service}: {body}")),
        }
        Ok(())
    }
}

/// Creates the services the writers use (version 1 each).
pub async fn create_services(http: &reqwest::Client, base: &str, token: &str, writers: usize) {
    let mut services: Vec<String> = (0..writers).map(own).collect();
    services.push(SHARED.to_owned());
    for s in services {
        crate::process::create(http, base, token, &s, json!({"seq": 0})).await;
    }
}

/// A `service` token for `service`.
pub async fn service_token(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    service: &str,
) -> String {
    let r = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(token)
        .json(&json!({"name": format!("{service}-harness"), "role": "service", "service": service}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let body: Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

pub async fn public_key(http: &reqwest::Client, base: &str) -> String {
    let keys: Value = http
        .get(format!("{base}/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys["public_key"].as_str().unwrap().to_owned()
}

/// The config the client of a writer's own service sees: the writer's sequence number.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
pub struct Seq {
    #[serde(default)]
    pub seq: u64,
}

/// A real `dials-client` of one service, recording the sequence numbers of the configs it
/// applies in the order it applies them.
pub struct Follower {
    pub client: dials_client::Client<Seq>,
    pub applied: Arc<Mutex<Vec<u64>>>,
    pub lkg: std::path::PathBuf,
    pub token: String,
    pub service: String,
}

impl Follower {
    pub async fn start(
        service: &str,
        server: &str,
        token: String,
        mqtt: &str,
        public_key: &str,
        dir: &std::path::Path,
    ) -> Follower {
        let lkg = dir.join(format!("{service}.lkg"));
        let client = dials_client::Client::<Seq>::builder(service)
            .server(server)
            .token(token.clone())
            .mqtt(mqtt)
            .public_key(public_key)
            .lkg_path(&lkg)
            .instance("harness-1")
            .register_schema(false)
            .start_timeout(Duration::from_secs(10))
            .start()
            .await
            .expect("the client starts");
        let applied = Arc::new(Mutex::new(vec![client.get().seq]));
        {
            let applied = applied.clone();
            client.on_change(move |_, new| {
                applied.lock().unwrap().push(new.seq);
                Ok(())
            });
        }
        Follower {
            client,
            applied,
            lkg,
            token,
            service: service.to_owned(),
        }
    }

    /// Waits until the client runs `version` (or newer).
    pub async fn wait_for(&self, version: u64, secs: u64) -> Duration {
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs(secs);
        while self.client.info().version < version {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the client of {} runs version {}, not {version}, after {secs} s",
                self.service,
                self.client.info().version
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}

/// Every version of `service` from 1 to its current one, as the manager's history holds it.
pub async fn history(http: &reqwest::Client, base: &str, token: &str, service: &str) -> Vec<Value> {
    let current = get_json(
        http,
        base,
        token,
        &format!("/api/v1/services/{service}/config"),
    )
    .await;
    let latest = current["version"].as_u64().unwrap();
    let mut docs = Vec::new();
    for v in 1..=latest {
        let r = http
            .get(format!("{base}/api/v1/services/{service}/versions/{v}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{service} version {v} of {latest} is missing from the history"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["version"], v);
        docs.push(body["config"].clone());
    }
    let after = http
        .get(format!(
            "{base}/api/v1/services/{service}/versions/{}",
            latest + 1
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
    docs
}

/// What the checks found, for the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub versions: u64,
    pub acknowledged: usize,
    pub lost: usize,
    pub deliveries: usize,
    /// Versions delivered again on a connection that had them (at-least-once re-sends).
    pub redelivered: usize,
    /// Versions re-sent by the broker as retained messages when the observer subscribed.
    pub retained_resends: usize,
}

/// Checks every acknowledged write against the history, version reuse, and the order of what
/// MQTT delivered. `complete`: every version must have been delivered (the observer's
/// connection never dropped); otherwise only order is checked.
pub fn check(
    histories: &BTreeMap<String, Vec<Value>>,
    log: &WriteLog,
    seen: &Observed,
    complete: bool,
) -> Summary {
    let mut summary = Summary {
        versions: histories.values().map(|h| h.len() as u64).sum(),
        acknowledged: log.acks.len(),
        ..Summary::default()
    };
    assert!(
        log.unexpected.is_empty(),
        "unexpected answers: {:?}",
        log.unexpected
    );
    assert!(
        seen.bad.is_empty(),
        "envelopes that failed to verify: {:?}",
        seen.bad
    );

    // No acknowledged write lost; no version acknowledged twice.
    let mut acked: HashMap<(&str, u64), &Ack> = HashMap::new();
    let mut lost = Vec::new();
    for ack in &log.acks {
        if let Some(before) = acked.insert((&ack.service, ack.version), ack) {
            panic!(
                "version {} of {} acknowledged twice: {before:?} and {ack:?}",
                ack.version, ack.service
            );
        }
        let doc = ack
            .version
            .checked_sub(1)
            .and_then(|i| histories[&ack.service].get(i as usize));
        if doc.map(|d| &d[&ack.key]) != Some(&json!(ack.value)) {
            lost.push(format!("{ack:?}: history holds {doc:?}"));
        }
    }
    summary.lost = lost.len();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");

    // MQTT: every envelope matches the history at its version (so no version was reused with
    // other content), and new versions arrive in version order. Older versions may come again
    // on one connection: the broker's retained re-send when the observer subscribes, or the
    // manager re-sending what it had not seen acknowledged before a restart or reconnect
    // (at-least-once; a receiver drops versions it holds). Both are counted.
    for (service, docs) in histories {
        let deliveries = seen
            .by_service
            .get(service)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        summary.deliveries += deliveries.len();
        let mut max = 0;
        let mut max_in_connection: HashMap<u32, u64> = HashMap::new();
        for d in deliveries {
            let doc = d.version.checked_sub(1).and_then(|i| docs.get(i as usize));
            assert_eq!(
                Some(&d.config),
                doc,
                "{service} version {} delivered with other content than the history's",
                d.version
            );
            let in_conn = max_in_connection.entry(d.connection).or_default();
            if d.version <= *in_conn {
                if d.retained {
                    summary.retained_resends += 1;
                } else {
                    summary.redelivered += 1;
                }
            }
            *in_conn = (*in_conn).max(d.version);
            if d.version > max {
                if complete {
                    assert_eq!(
                        d.version,
                        max + 1,
                        "{service}: version {} delivered before version {}",
                        d.version,
                        max + 1
                    );
                }
                max = d.version;
            }
        }
        assert_eq!(
            max,
            docs.len() as u64,
            "{service}: the latest version was not delivered"
        );
    }
    summary
}

/// Checks the client's applied sequence (strictly rising) and its LKG file (verifies, and holds
/// a version the history has, with that version's document).
pub fn check_follower(follower: &Follower, history: &[Value]) -> usize {
    let applied = follower.applied.lock().unwrap().clone();
    assert!(
        applied.windows(2).all(|w| w[0] < w[1]),
        "the client applied configs out of order: {applied:?}"
    );
    let bytes = std::fs::read(&follower.lkg).expect("the client wrote its LKG file");
    let key = dials_wire::lkg::key_from_token(&follower.token);
    let lkg = dials_wire::lkg::LkgContents::open(&bytes, &key, &follower.service)
        .expect("the LKG file verifies");
    assert!(
        lkg.version >= 1 && lkg.version as usize <= history.len(),
        "{lkg:?}"
    );
    assert_eq!(
        lkg.config,
        history[lkg.version as usize - 1],
        "the LKG file holds version {} with other content than the history's",
        lkg.version
    );
    applied.len()
}
