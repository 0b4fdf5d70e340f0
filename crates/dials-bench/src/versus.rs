//! dials against etcd on this machine, side by side: the same write workloads against a
//! `dials serve` and a one-member etcd (Debian's `etcd-server`, default durability), each
//! through its native client — dials over HTTP/1.1 keep-alive (hyper), etcd over gRPC (the
//! `etcd-client` crate) — in rounds where the system that goes first alternates.
//!
//! Workloads (a 1 KiB JSON document each write): one client writing sequentially; the same as
//! compare-and-swap (etcd: a Txn comparing `mod_revision`; dials: `If-Match`); N writers each
//! on a key of their own, and N writers on one shared key, for a fixed time; and write →
//! watcher (etcd: a watch; dials: an MQTT subscriber through a stock Mosquitto).
//!
//! etcd's client is behind the `etcd` cargo feature (it brings tonic and prost, and its build
//! needs `protoc`), so the everyday build does not compile it.

use crate::cli::VersusEtcdArgs;

/// How to get the tool that can run this.
#[cfg(not(feature = "etcd"))]
pub fn run(_args: &VersusEtcdArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this dials-load was built without etcd's client. Build it with the `etcd` feature \
         (needs protoc: apt-get install protobuf-compiler):\n  \
         cargo build --release --workspace --bins --features dials-bench/etcd\n\
         and install etcd itself with: apt-get install etcd-server"
    )
}

#[cfg(feature = "etcd")]
pub fn run(args: &VersusEtcdArgs) -> anyhow::Result<()> {
    imp::run(args)
}

#[cfg(feature = "etcd")]
mod imp {
    use std::fmt::Write as _;
    use std::path::Path;
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};
    use bytes::Bytes;
    use etcd_client::{Client as Etcd, Compare, CompareOp, Txn, TxnOp, WatchOptions};
    use hdrhistogram::Histogram;
    use hyper::StatusCode;
    use hyper::Uri;
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    use serde_json::{Value, json};
    use tokio::process::{Child, Command};
    use tokio::sync::mpsc;

    use crate::api::Api;
    use crate::broker::{Mosquitto, Tuning, free_port, wait_port};
    use crate::cli::VersusEtcdArgs;
    use crate::cpu;
    use crate::http::Conn;
    use crate::put;
    use crate::server::{self, Launch, Server};
    use crate::stats::{self, Ms, Rate};

    /// The longest one operation may take before the run is called hung.
    const OP_TIMEOUT: Duration = Duration::from_secs(30);
    /// Size of the document written.
    const DOC_BYTES: usize = 1024;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum System {
        Etcd,
        Dials,
        /// A second dials server with MQTT off (`--mqtt none`): the same write path without
        /// the signature and the broker, which etcd has no counterpart of.
        DialsQuiet,
    }

    impl Workload {
        /// Whether it needs a broker: a watcher hears of writes over MQTT.
        fn watched(self) -> bool {
            matches!(self, Workload::Watch | Workload::OwnKeysWatched)
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Workload {
        Sequential,
        Cas,
        OwnKeys,
        SharedKey,
        Watch,
        /// As `OwnKeys`, with one watcher told of every write (etcd: a watch on the keys'
        /// prefix; dials: an MQTT subscriber to every service's topic).
        OwnKeysWatched,
    }

    const WORKLOADS: [Workload; 6] = [
        Workload::Sequential,
        Workload::Cas,
        Workload::OwnKeys,
        Workload::SharedKey,
        Workload::Watch,
        Workload::OwnKeysWatched,
    ];

    /// How long a watcher may take, after the writers stop, to be told of the last write.
    const DRAIN: Duration = Duration::from_secs(10);

    /// One workload on one system in one round.
    #[derive(Debug, Clone, Copy, Default)]
    struct Figures {
        p50: Duration,
        p99: Duration,
        per_second: f64,
        writes: u64,
        errors: u64,
        server_errors: u64,
        /// Server CPU time per write.
        cpu_per_write: Option<Duration>,
        switches_per_write: Option<f64>,
    }

    /// A latency histogram and counts, merged from writers.
    struct Tally {
        hist: Histogram<u64>,
        errors: u64,
        server_errors: u64,
    }

    impl Tally {
        fn new() -> anyhow::Result<Self> {
            Ok(Self {
                hist: stats::histogram()?,
                errors: 0,
                server_errors: 0,
            })
        }

        fn add(&mut self, other: &Tally) -> anyhow::Result<()> {
            self.hist.add(&other.hist)?;
            self.errors += other.errors;
            self.server_errors += other.server_errors;
            Ok(())
        }

        fn figures(
            &self,
            elapsed: Duration,
            cpu: Option<cpu::Usage>,
            elapsed_for_cpu: Duration,
        ) -> Figures {
            let writes = self.hist.len();
            let at = |q: f64| Duration::from_nanos(self.hist.value_at_quantile(q));
            let per_write = |x: f64| x / (writes.max(1) as f64);
            Figures {
                p50: at(0.5),
                p99: at(0.99),
                per_second: writes as f64 / elapsed.as_secs_f64().max(1e-9),
                writes,
                errors: self.errors,
                server_errors: self.server_errors,
                cpu_per_write: cpu.and_then(|c| c.server).map(|cores| {
                    Duration::from_secs_f64(per_write(cores * elapsed_for_cpu.as_secs_f64()))
                }),
                switches_per_write: cpu
                    .and_then(|c| c.server_switches)
                    .map(|s| per_write(s as f64)),
            }
        }
    }

    /// A 1 KiB JSON document; `n` makes each one different.
    fn document(n: u64) -> Value {
        let mut doc = put::document(n);
        let size = serde_json::to_vec(&doc).map_or(0, |v| v.len());
        // `notes` and its quotes and comma take 12 bytes.
        doc["notes"] = Value::String("x".repeat(DOC_BYTES.saturating_sub(size + 12)));
        doc
    }

    fn etcd_value(n: u64) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(&document(n))?)
    }

    fn dials_body(n: u64) -> anyhow::Result<Bytes> {
        Ok(Bytes::from(serde_json::to_vec(
            &json!({ "config": document(n) }),
        )?))
    }

    /// Numbers that differ in every write of the run.
    struct Counter(AtomicU64);

    impl Counter {
        fn next(&self) -> u64 {
            self.0.fetch_add(1, Ordering::Relaxed)
        }
    }

    /// etcd, one member, on a temporary data directory with its default durability.
    struct EtcdServer {
        child: Child,
        client: Etcd,
        port: u16,
    }

    impl EtcdServer {
        async fn start(binary: &Path, dir: &Path) -> anyhow::Result<Self> {
            let client_port = free_port()?;
            let peer_port = free_port()?;
            let client_url = format!("http://127.0.0.1:{client_port}");
            let peer_url = format!("http://127.0.0.1:{peer_port}");
            let log = std::fs::File::create(dir.join("etcd.log"))?;
            let child = Command::new(binary)
                .arg("--name")
                .arg("bench")
                .arg("--data-dir")
                .arg(dir.join("etcd"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("bench={peer_url}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot start {}: {e}. Install etcd with: apt-get install etcd-server \
                         (or pass --etcd PATH)",
                        binary.display()
                    )
                })?;
            wait_port(client_port).await?;
            let mut client = Etcd::connect([client_url.as_str()], None).await?;
            // Ready once it has elected itself and takes a write.
            let deadline = Instant::now() + Duration::from_secs(30);
            while client.put("ready", "1", None).await.is_err() {
                if Instant::now() > deadline {
                    bail!("etcd did not take a write within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Self {
                child,
                client,
                port: client_port,
            })
        }

        fn pid(&self) -> Option<u32> {
            self.child.id()
        }
    }

    /// The dials side: a server publishing to a stock Mosquitto.
    struct DialsSide {
        server: Server,
        api: Api,
        /// The broker it publishes to; `None` with MQTT off.
        broker: Option<Mosquitto>,
    }

    impl DialsSide {
        /// Starts `binary` on a fresh data directory `root/name`, publishing to `broker`, or
        /// with MQTT off without one.
        async fn start(
            binary: &Path,
            root: &Path,
            name: &str,
            broker: Option<Mosquitto>,
        ) -> anyhow::Result<Self> {
            let mqtt = broker
                .as_ref()
                .map_or_else(|| "none".to_owned(), Mosquitto::url);
            let launch = Launch::new(binary, &["--mqtt".to_owned(), mqtt])?;
            let (server, _) =
                Server::start(&launch, &root.join(name), &root.join(format!("{name}.log"))).await?;
            match &broker {
                Some(broker) => eprintln!(
                    "versus-etcd: {} on {}, publishing to a stock Mosquitto on port {}",
                    launch.binary.display(),
                    server.addr(),
                    broker.port
                ),
                None => eprintln!(
                    "versus-etcd: the same binary with MQTT off on {}",
                    server.addr()
                ),
            }
            Ok(Self {
                api: Api::at(server.addr(), &server.admin_token()?)?,
                server,
                broker,
            })
        }

        fn broker_port(&self) -> anyhow::Result<u16> {
            self.broker
                .as_ref()
                .map(|b| b.port)
                .context("a watched workload needs the server that publishes")
        }
    }

    pub fn run(args: &VersusEtcdArgs) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(run_async(args))
    }

    async fn run_async(args: &VersusEtcdArgs) -> anyhow::Result<()> {
        let root = server::scratch(args.dir.as_deref())?;
        let etcd_version = std::process::Command::new(&args.etcd)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(|line| line.replace(" Version:", ""))
            })
            .unwrap_or_else(|| "etcd (version unknown)".to_owned());
        let mut etcd = EtcdServer::start(&args.etcd, root.path()).await?;
        eprintln!("versus-etcd: {etcd_version} on 127.0.0.1:{}", etcd.port);

        let broker = Mosquitto::start(Tuning::Stock).await?;
        let dials = DialsSide::start(&args.binary, root.path(), "dials", Some(broker)).await?;
        let quiet = DialsSide::start(&args.binary, root.path(), "dials-quiet", None).await?;
        let measured = rounds(args, &mut etcd, &dials, &quiet).await;
        let stopped = dials.server.stop().await;
        let quiet_stopped = quiet.server.stop().await;
        let results = measured?;
        stopped?;
        quiet_stopped?;
        print!("{}", table(args, &etcd_version, &results));
        Ok(())
    }

    type Results = Vec<(Workload, System, Vec<Figures>)>;

    /// One figure of a workload's run, where it has it.
    type Pick = fn(&Figures) -> Option<f64>;

    async fn rounds(
        args: &VersusEtcdArgs,
        etcd: &mut EtcdServer,
        dials: &DialsSide,
        quiet: &DialsSide,
    ) -> anyhow::Result<Results> {
        // Services (and keys) exist before the first round.
        let mut names = vec!["seq".to_owned(), "cas".to_owned(), "shared".to_owned()];
        names.push("watch".to_owned());
        names.extend((0..args.writers).map(|i| format!("own-{i}")));
        for side in [dials, quiet] {
            let mut conn = Conn::open(side.api.addr()).await?;
            for name in &names {
                put::ensure_service(&side.api, &mut conn, name).await?;
            }
        }
        for name in &names {
            etcd.client.put(name.as_str(), etcd_value(0)?, None).await?;
        }
        let counter = Arc::new(Counter(AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_micros() as u64),
        )));

        let mut results: Results = Vec::new();
        for w in WORKLOADS {
            for s in [System::Etcd, System::Dials, System::DialsQuiet] {
                results.push((w, s, Vec::new()));
            }
        }
        for round in 0..args.rounds {
            let order = if round % 2 == 0 {
                [System::Dials, System::DialsQuiet, System::Etcd]
            } else {
                [System::Etcd, System::DialsQuiet, System::Dials]
            };
            for workload in WORKLOADS {
                for system in order {
                    let figures = match system {
                        System::Etcd => etcd_workload(args, etcd, workload, &counter).await,
                        System::Dials => dials_workload(args, dials, workload, &counter).await,
                        System::DialsQuiet if workload.watched() => continue,
                        System::DialsQuiet => dials_workload(args, quiet, workload, &counter).await,
                    }
                    .with_context(|| format!("{workload:?} on {system:?}"))?;
                    eprintln!(
                        "round {}: {workload:?} {system:?}: p50 {} p99 {} {} ({} writes, {} errors)",
                        round + 1,
                        Ms(figures.p50),
                        Ms(figures.p99),
                        Rate(figures.per_second),
                        figures.writes,
                        figures.errors
                    );
                    if let Some(entry) = results
                        .iter_mut()
                        .find(|(w, s, _)| *w == workload && *s == system)
                    {
                        entry.2.push(figures);
                    }
                }
            }
        }
        Ok(results)
    }

    // ---- etcd ----

    async fn etcd_workload(
        args: &VersusEtcdArgs,
        etcd: &mut EtcdServer,
        workload: Workload,
        counter: &Arc<Counter>,
    ) -> anyhow::Result<Figures> {
        let pid = etcd.pid();
        let before = cpu::sample(pid);
        let start = Instant::now();
        let (tally, elapsed) = match workload {
            Workload::Sequential => {
                let mut tally = Tally::new()?;
                for _ in 0..args.writes {
                    let value = etcd_value(counter.next())?;
                    let sent = Instant::now();
                    let put = tokio::time::timeout(OP_TIMEOUT, etcd.client.put("seq", value, None))
                        .await
                        .context("an etcd put took longer than 30 s")?;
                    match put {
                        Ok(_) => stats::record(&mut tally.hist, sent.elapsed()),
                        Err(_) => tally.errors += 1,
                    }
                }
                (tally, start.elapsed())
            }
            Workload::Cas => {
                let mut tally = Tally::new()?;
                let got = etcd.client.get("cas", None).await?;
                let mut revision = got.kvs().first().map_or(0, |kv| kv.mod_revision());
                for _ in 0..args.writes {
                    let value = etcd_value(counter.next())?;
                    let txn = Txn::new()
                        .when([Compare::mod_revision("cas", CompareOp::Equal, revision)])
                        .and_then([TxnOp::put("cas", value, None)]);
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(OP_TIMEOUT, etcd.client.txn(txn))
                        .await
                        .context("an etcd txn took longer than 30 s")?;
                    match answer {
                        Ok(r) if r.succeeded() => {
                            stats::record(&mut tally.hist, sent.elapsed());
                            revision = r.header().map_or(revision, |h| h.revision());
                        }
                        _ => tally.errors += 1,
                    }
                }
                (tally, start.elapsed())
            }
            Workload::OwnKeys | Workload::SharedKey | Workload::OwnKeysWatched => {
                let watcher = if workload == Workload::OwnKeysWatched {
                    let options = WatchOptions::new().with_prefix();
                    let mut stream = etcd.client.watch("own-", Some(options)).await?;
                    let told = Arc::new(AtomicU64::new(0));
                    let count = told.clone();
                    let reader = tokio::spawn(async move {
                        while let Ok(Some(message)) = stream.message().await {
                            let events = message.events().len() as u64;
                            count.fetch_add(events, Ordering::Relaxed);
                        }
                    });
                    Some((told, reader))
                } else {
                    None
                };
                let until = Instant::now() + Duration::from_secs(args.seconds);
                let tasks: Vec<_> = (0..args.writers)
                    .map(|i| {
                        let mut client = etcd.client.clone();
                        let counter = counter.clone();
                        let key = if workload == Workload::SharedKey {
                            "shared".to_owned()
                        } else {
                            format!("own-{i}")
                        };
                        tokio::spawn(async move {
                            let mut tally = Tally::new()?;
                            while Instant::now() < until {
                                let value = etcd_value(counter.next())?;
                                let sent = Instant::now();
                                let put = tokio::time::timeout(
                                    OP_TIMEOUT,
                                    client.put(key.as_str(), value, None),
                                )
                                .await
                                .context("an etcd put took longer than 30 s")?;
                                match put {
                                    Ok(_) => stats::record(&mut tally.hist, sent.elapsed()),
                                    Err(_) => tally.errors += 1,
                                }
                            }
                            anyhow::Ok(tally)
                        })
                    })
                    .collect();
                let mut tally = Tally::new()?;
                for t in tasks {
                    tally.add(&t.await??)?;
                }
                let elapsed = start.elapsed();
                if let Some((told, reader)) = watcher {
                    let told = every_write_told(&tally, &told).await;
                    reader.abort();
                    told?;
                }
                (tally, elapsed)
            }
            Workload::Watch => {
                let mut stream = etcd.client.watch("watch", None).await?;
                let (tx, mut rx) = mpsc::unbounded_channel();
                let reader = tokio::spawn(async move {
                    while let Ok(Some(message)) = stream.message().await {
                        let at = Instant::now();
                        for event in message.events() {
                            if let Some(kv) = event.kv()
                                && tx.send((kv.mod_revision(), at)).is_err()
                            {
                                return;
                            }
                        }
                    }
                });
                let mut tally = Tally::new()?;
                for _ in 0..args.writes {
                    let value = etcd_value(counter.next())?;
                    let sent = Instant::now();
                    let put =
                        tokio::time::timeout(OP_TIMEOUT, etcd.client.put("watch", value, None))
                            .await
                            .context("an etcd put took longer than 30 s")??;
                    let revision = put.header().map_or(0, |h| h.revision());
                    let at = wait_for(&mut rx, |r: i64| r >= revision).await?;
                    stats::record(&mut tally.hist, at - sent);
                }
                reader.abort();
                (tally, start.elapsed())
            }
        };
        let cpu = cpu::between(before, cpu::sample(pid));
        Ok(tally.figures(elapsed, cpu, start.elapsed()))
    }

    /// Waits until the watcher was told (`told` counts it) of as many writes as succeeded.
    async fn every_write_told(tally: &Tally, told: &AtomicU64) -> anyhow::Result<()> {
        let writes = tally.hist.len();
        let deadline = Instant::now() + DRAIN;
        while told.load(Ordering::Relaxed) < writes {
            if Instant::now() > deadline {
                bail!(
                    "the watcher was told of {} of {writes} writes within {DRAIN:?}",
                    told.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Waits for a notification that `done` accepts; answers when it arrived.
    async fn wait_for<T>(
        rx: &mut mpsc::UnboundedReceiver<(T, Instant)>,
        done: impl Fn(T) -> bool,
    ) -> anyhow::Result<Instant> {
        loop {
            let (value, at) = tokio::time::timeout(OP_TIMEOUT, rx.recv())
                .await
                .context("no notification within 30 s")?
                .context("the watcher stopped")?;
            if done(value) {
                return Ok(at);
            }
        }
    }

    // ---- dials ----

    async fn dials_workload(
        args: &VersusEtcdArgs,
        dials: &DialsSide,
        workload: Workload,
        counter: &Arc<Counter>,
    ) -> anyhow::Result<Figures> {
        let pid = dials.server.pid().ok();
        let api = &dials.api;
        let before = cpu::sample(pid);
        let start = Instant::now();
        let (tally, elapsed) = match workload {
            Workload::Sequential => {
                let uri = api.config_uri("seq")?;
                let mut conn = Conn::open(api.addr()).await?;
                let mut tally = Tally::new()?;
                for _ in 0..args.writes {
                    let req = api.put(&uri, dials_body(counter.next())?, false)?;
                    dials_write(&mut conn, api, req, &mut tally).await?;
                }
                (tally, start.elapsed())
            }
            Workload::Cas => {
                let uri = api.config_uri("cas")?;
                let mut conn = Conn::open(api.addr()).await?;
                let mut tally = Tally::new()?;
                let mut version = current_version(&mut conn, api, &uri).await?;
                for _ in 0..args.writes {
                    let req = api.put_if_match(&uri, dials_body(counter.next())?, version)?;
                    if let Some(body) = dials_write(&mut conn, api, req, &mut tally).await? {
                        version = version_of(&body)?;
                    }
                }
                (tally, start.elapsed())
            }
            Workload::OwnKeys | Workload::SharedKey | Workload::OwnKeysWatched => {
                let watcher = if workload == Workload::OwnKeysWatched {
                    let (subscriber, mut rx) =
                        subscriber(dials.broker_port()?, "config/updated/+", false).await?;
                    // The retained message of every topic comes first: it is no write of
                    // this workload's.
                    while let Ok(Some(_)) =
                        tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
                    {
                    }
                    let told = Arc::new(AtomicU64::new(0));
                    let count = told.clone();
                    let reader = tokio::spawn(async move {
                        while rx.recv().await.is_some() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    Some((subscriber, told, reader))
                } else {
                    None
                };
                let until = Instant::now() + Duration::from_secs(args.seconds);
                let tasks: Vec<_> = (0..args.writers)
                    .map(|i| {
                        let api = api.clone();
                        let counter = counter.clone();
                        let service = if workload == Workload::SharedKey {
                            "shared".to_owned()
                        } else {
                            format!("own-{i}")
                        };
                        tokio::spawn(async move {
                            let uri = api.config_uri(&service)?;
                            let mut conn = Conn::open(api.addr()).await?;
                            let mut tally = Tally::new()?;
                            while Instant::now() < until {
                                let req = api.put(&uri, dials_body(counter.next())?, false)?;
                                dials_write(&mut conn, &api, req, &mut tally).await?;
                            }
                            anyhow::Ok(tally)
                        })
                    })
                    .collect();
                let mut tally = Tally::new()?;
                for t in tasks {
                    tally.add(&t.await??)?;
                }
                let elapsed = start.elapsed();
                if let Some((subscriber, told, reader)) = watcher {
                    let told = every_write_told(&tally, &told).await;
                    reader.abort();
                    let _ = subscriber.disconnect().await;
                    told?;
                }
                (tally, elapsed)
            }
            Workload::Watch => {
                let (_subscriber, mut rx) =
                    subscriber(dials.broker_port()?, "config/updated/watch", true).await?;
                let uri = api.config_uri("watch")?;
                let mut conn = Conn::open(api.addr()).await?;
                let mut tally = Tally::new()?;
                for _ in 0..args.writes {
                    let req = api.put(&uri, dials_body(counter.next())?, false)?;
                    let sent = Instant::now();
                    let answer = tokio::time::timeout(OP_TIMEOUT, conn.send(req))
                        .await
                        .context("a write took longer than 30 s")??;
                    if answer.status != StatusCode::OK {
                        bail!("PUT answered {}: {}", answer.status, answer.excerpt());
                    }
                    let version = version_of(&answer.body)?;
                    let at = wait_for(&mut rx, |v: u64| v >= version).await?;
                    stats::record(&mut tally.hist, at - sent);
                }
                (tally, start.elapsed())
            }
        };
        let cpu = cpu::between(before, cpu::sample(pid));
        Ok(tally.figures(elapsed, cpu, start.elapsed()))
    }

    /// Sends one write and records it; answers the body of a 200.
    async fn dials_write(
        conn: &mut Conn,
        api: &Api,
        req: crate::api::Req,
        tally: &mut Tally,
    ) -> anyhow::Result<Option<Bytes>> {
        let sent = Instant::now();
        let answer = tokio::time::timeout(OP_TIMEOUT, conn.send(req))
            .await
            .context("a write took longer than 30 s")?;
        match answer {
            Ok(a) if a.status == StatusCode::OK => {
                stats::record(&mut tally.hist, sent.elapsed());
                Ok(Some(a.body))
            }
            Ok(a) => {
                tally.errors += 1;
                if a.status.is_server_error() {
                    tally.server_errors += 1;
                }
                Ok(None)
            }
            Err(_) => {
                tally.errors += 1;
                *conn = Conn::open(api.addr()).await?;
                Ok(None)
            }
        }
    }

    fn version_of(body: &[u8]) -> anyhow::Result<u64> {
        let v: Value = serde_json::from_slice(body)?;
        v["version"].as_u64().context("no version in the answer")
    }

    async fn current_version(conn: &mut Conn, api: &Api, uri: &Uri) -> anyhow::Result<u64> {
        let answer = conn.send(api.get(uri)?).await?;
        if answer.status != StatusCode::OK {
            bail!("GET answered {}", answer.status);
        }
        version_of(&answer.body)
    }

    /// An MQTT subscriber whose envelopes' versions come on a channel with their arrival (0 for
    /// each when `versions` is false: a watcher that only counts does not parse them).
    async fn subscriber(
        port: u16,
        topic: &str,
        versions: bool,
    ) -> anyhow::Result<(AsyncClient, mpsc::UnboundedReceiver<(u64, Instant)>)> {
        static SUBSCRIBERS: AtomicU64 = AtomicU64::new(0);
        let n = SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
        let id = format!("versus-{}-{n}", std::process::id());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(2 << 20, 2 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        // As a dials service's client does (dials-client): no Nagle on its own socket.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        client.subscribe(topic, QoS::AtLeastOnce).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let at = Instant::now();
                        let version = if versions {
                            serde_json::from_slice::<Value>(&p.payload)
                                .ok()
                                .and_then(|v| v["version"].as_u64())
                                .unwrap_or(0)
                        } else {
                            0
                        };
                        if tx.send((version, at)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .context("no SUBACK")??;
        Ok((client, rx))
    }

    // ---- the table ----

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        match values.len() {
            0 => 0.0,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        }
    }

    /// A figure without its unit, for a range after a figure that has it.
    fn bare(figure: String) -> String {
        figure
            .trim_end_matches(" ms")
            .trim_end_matches("/s")
            .to_owned()
    }

    fn ms(seconds: f64) -> String {
        Ms(Duration::from_secs_f64(seconds.max(0.0))).to_string()
    }

    fn table(args: &VersusEtcdArgs, etcd_version: &str, results: &Results) -> String {
        let find = |w: Workload, s: System| -> &[Figures] {
            results
                .iter()
                .find(|(ww, ss, _)| *ww == w && *ss == s)
                .map_or(&[], |(_, _, f)| f.as_slice())
        };
        let n = args.writers;
        let mut out = format!(
            "dials against {etcd_version}, {} rounds (first system alternating), 1 KiB JSON \
             document; medians over the rounds, the rounds' range in brackets; \
             dials / etcd: above 1 means dials takes longer (latency) or does more (writes/s); \
             MQTT off: a second dials server that publishes nothing (no signature, no broker)\n\n\
             | figure | etcd | dials | dials / etcd | dials, MQTT off | MQTT off / etcd |\n\
             |---|---|---|---|---|---|\n",
            args.rounds
        );
        let rows = [
            (
                Workload::Sequential,
                "durable write, one client, sequential".to_owned(),
            ),
            (
                Workload::Cas,
                "CAS write, one client (etcd Txn on mod_revision; dials If-Match)".to_owned(),
            ),
            (
                Workload::OwnKeys,
                format!("{n} writers, each its own key/service"),
            ),
            (
                Workload::SharedKey,
                format!("{n} writers, one shared key/service"),
            ),
            (
                Workload::OwnKeysWatched,
                format!("{n} writers, own keys, one watcher told of every write"),
            ),
            (
                Workload::Watch,
                "write → watcher receives (etcd watch; dials MQTT subscriber, stock Mosquitto)"
                    .to_owned(),
            ),
        ];
        for (workload, name) in rows {
            let e = find(workload, System::Etcd);
            let d = find(workload, System::Dials);
            let q = find(workload, System::DialsQuiet);
            let stat = |f: &[Figures], pick: fn(&Figures) -> f64| -> Option<(f64, f64, f64)> {
                let v: Vec<f64> = f.iter().map(pick).collect();
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (!v.is_empty()).then(|| (median(v), lo, hi))
            };
            let mut line =
                |label: &str, pick: fn(&Figures) -> f64, show: &dyn Fn(f64) -> String| {
                    let cell = |f: &[Figures]| match stat(f, pick) {
                        Some((m, lo, hi)) => {
                            format!("{} ({}–{})", show(m), bare(show(lo)), bare(show(hi)))
                        }
                        None => "—".to_owned(),
                    };
                    let over_etcd = |f: &[Figures]| match (stat(f, pick), stat(e, pick)) {
                        (Some((m, ..)), Some((em, ..))) if em > 0.0 => format!("{:.2}", m / em),
                        _ => "—".to_owned(),
                    };
                    let _ = writeln!(
                        out,
                        "| {name}, {label} | {} | {} | {} | {} | {} |",
                        cell(e),
                        cell(d),
                        over_etcd(d),
                        cell(q),
                        over_etcd(q),
                    );
                };
            line("p50", |f| f.p50.as_secs_f64(), &ms);
            line("p99", |f| f.p99.as_secs_f64(), &ms);
            if workload != Workload::Watch {
                line("writes/s", |f| f.per_second, &|x| Rate(x).to_string());
            }
            let errors = |f: &[Figures]| -> (u64, u64, u64) {
                (
                    f.iter().map(|x| x.errors).sum(),
                    f.iter().map(|x| x.server_errors).sum(),
                    f.iter().map(|x| x.writes).sum(),
                )
            };
            let (ee, _, ew) = errors(e);
            let (de, d5, dw) = errors(d);
            let (qe, q5, qw) = errors(q);
            if ee + de + qe > 0 {
                let _ = writeln!(
                    out,
                    "| {name}, failed writes | {ee} of {} | {de} of {} ({d5} answered 5xx) | — \
                     | {qe} of {} ({q5} answered 5xx) | — |",
                    ee + ew,
                    de + dw,
                    qe + qw
                );
            }
        }
        let per_write: [(&str, Pick); 2] = [
            ("server CPU per write", |f| {
                f.cpu_per_write.map(|d| d.as_secs_f64())
            }),
            ("server context switches per write", |f| {
                f.switches_per_write
            }),
        ];
        for (workload, shape) in [
            (Workload::Sequential, "sequential".to_owned()),
            (Workload::OwnKeys, format!("{n} writers, own keys")),
        ] {
            for (label, pick) in per_write {
                let of = |s: System| -> Option<f64> {
                    let v: Vec<f64> = find(workload, s).iter().filter_map(pick).collect();
                    (!v.is_empty()).then(|| median(v))
                };
                let show = |x: Option<f64>| match x {
                    Some(x) if label.contains("CPU") => ms(x),
                    Some(x) => format!("{x:.1}"),
                    None => "—".to_owned(),
                };
                let (e, d, q) = (of(System::Etcd), of(System::Dials), of(System::DialsQuiet));
                let ratio = |x: Option<f64>| match (e, x) {
                    (Some(e), Some(x)) if e > 0.0 => format!("{:.2}", x / e),
                    _ => "—".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {label} ({shape}) | {} | {} | {} | {} | {} |",
                    show(e),
                    show(d),
                    ratio(d),
                    show(q),
                    ratio(q)
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} writes per sequential workload per round, {} s per {n}-writer workload; \
             dials publishes every write to the stock Mosquitto (MQTT on) in every workload; \
             the server with MQTT off runs the workloads that need no watcher.",
            args.writes, args.seconds
        );
        out
    }
}
