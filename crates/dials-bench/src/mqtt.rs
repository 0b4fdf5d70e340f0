//! MQTT distribution under load, end to end with a real Mosquitto and the real binary:
//! PUT → subscriber latency, outbox drain rate after an outage, and fan-out of one update to
//! many subscribed clients.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::broker::{Mosquitto, Tuning, free_port};

/// What the MQTT run measures.
#[derive(Debug, Clone)]
pub struct MqttOptionsArgs {
    /// The `dials` binary.
    pub binary: PathBuf,
    /// Sequential writes timed until a subscriber receives them.
    pub puts: u32,
    /// Changes left in the outbox for the drain measurement.
    pub drain: u32,
    /// Subscribed clients for the fan-out measurement.
    pub subscribers: u32,
    /// Updates sent to all of them.
    pub fanout_updates: u32,
}

/// Results, in microseconds unless said otherwise.
#[derive(Debug, Clone)]
pub struct MqttReport {
    pub put_only: Summary,
    pub put_to_subscriber: Summary,
    pub drain_messages: u32,
    pub drain_per_second: f64,
    pub fanout_clients: u32,
    pub fanout: Summary,
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// A `dials serve` publishing to `mqtt`.
pub(crate) struct Dials {
    child: Child,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Dials {
    pub(crate) async fn start(binary: &Path, data_dir: &Path, mqtt: &str) -> anyhow::Result<Self> {
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--mqtt",
                mqtt,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("DIALS_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let line = tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).lines().next_line(),
        )
        .await
        .context("dials did not start in time")??
        .context("dials exited")?;
        let base = line
            .strip_prefix("listening on ")
            .context("unexpected first line")?
            .to_owned();
        let token = std::fs::read_to_string(data_dir.join("admin.token"))?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    /// `PUT …/schema` (admin).
    pub(crate) async fn put_schema(&self, service: &str, schema: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/api/v1/services/{service}/schema", self.base))
            .bearer_auth(&self.token)
            .json(schema)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("PUT {service}'s schema answered {}", r.status());
        }
        Ok(())
    }

    /// `PATCH …/config`; answers the new version.
    pub(crate) async fn patch(&self, service: &str, patch: Value) -> anyhow::Result<u64> {
        let r = self
            .http
            .patch(format!("{}/api/v1/services/{service}/config", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "config": patch }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("PATCH {service} answered {}", r.status());
        }
        let body: Value = r.json().await?;
        body["version"].as_u64().context("no version")
    }

    /// A GET of `path` (under the server's base URL) as JSON.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("GET {path} answered {}", r.status());
        }
        Ok(r.json().await?)
    }

    pub(crate) async fn put(
        &self,
        service: &str,
        config: Value,
        create: bool,
    ) -> anyhow::Result<u64> {
        let mut req = self
            .http
            .put(format!("{}/api/v1/services/{service}/config", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "config": config }));
        if create {
            req = req.header("If-None-Match", "*");
        }
        let r = req.send().await?;
        if !r.status().is_success() {
            bail!("PUT {service} answered {}", r.status());
        }
        let body: Value = r.json().await?;
        body["version"].as_u64().context("no version")
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("dials did not stop")??;
        Ok(())
    }
}

/// A subscriber whose messages (topic, version, arrival) come on a channel.
async fn subscriber(
    port: u16,
    filter: &str,
    id: String,
) -> anyhow::Result<(AsyncClient, mpsc::UnboundedReceiver<(String, u64, Instant)>)> {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(2 << 20, 2 << 20)
        .set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
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
                    let version = serde_json::from_slice::<Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["version"].as_u64())
                        .unwrap_or(0);
                    if tx.send((p.topic.clone(), version, at)).is_err() {
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

async fn wait_version(
    rx: &mut mpsc::UnboundedReceiver<(String, u64, Instant)>,
    version: u64,
) -> anyhow::Result<Instant> {
    loop {
        let (_, v, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("no envelope within 10 s")?
            .context("subscriber gone")?;
        if v >= version {
            return Ok(at);
        }
    }
}

/// Runs the three measurements.
pub async fn run(args: &MqttOptionsArgs) -> anyhow::Result<MqttReport> {
    let work = tempfile::tempdir()?;
    let broker = Mosquitto::start(Tuning::NoDelay).await?;

    // 1. PUT → subscriber, one write at a time.
    eprintln!(
        "mqtt: {} writes, each timed until a subscriber receives it",
        args.puts
    );
    let dials = Dials::start(&args.binary, &work.path().join("latency"), &broker.url()).await?;
    let (_c, mut rx) =
        subscriber(broker.port, "config/updated/bench", "bench-latency".into()).await?;
    let first = dials
        .put("bench", json!({"n": 0, "pad": "x".repeat(200)}), true)
        .await?;
    wait_version(&mut rx, first).await?;
    let mut put_only = histogram();
    let mut end_to_end = histogram();
    for n in 1..=args.puts {
        let t0 = Instant::now();
        let version = dials
            .put("bench", json!({"n": n, "pad": "x".repeat(200)}), false)
            .await?;
        put_only.record(t0.elapsed().as_micros() as u64)?;
        let at = wait_version(&mut rx, version).await?;
        end_to_end.record(at.duration_since(t0).as_micros() as u64)?;
    }
    dials.stop().await?;

    // 2. Drain: writes pile up while the broker is unreachable, then a start delivers them.
    eprintln!(
        "mqtt: {} changes left in the outbox, then drained",
        args.drain
    );
    let drain_dir = work.path().join("drain");
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port()?);
    let dials = Arc::new(Dials::start(&args.binary, &drain_dir, &nowhere).await?);
    let services = 50u32;
    let per_service = args.drain.div_ceil(services);
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let dials = dials.clone();
            tokio::spawn(async move {
                for s in (w..services).step_by(4) {
                    let service = format!("svc-{s}");
                    for n in 0..per_service {
                        dials.put(&service, json!({"n": n}), n == 0).await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let total = services * per_service;
    Arc::try_unwrap(dials)
        .map_err(|_| anyhow::anyhow!("writers still hold the server"))?
        .stop()
        .await?;
    let (_c2, mut all) = subscriber(broker.port, "config/updated/#", "bench-drain".into()).await?;
    let dials = Dials::start(&args.binary, &drain_dir, &broker.url()).await?;
    let mut received = 0u32;
    let mut first_at = None;
    let mut last_at = Instant::now();
    while received < total {
        let (_, _, at) = tokio::time::timeout(Duration::from_secs(30), all.recv())
            .await
            .context("the drain stalled")?
            .context("subscriber gone")?;
        first_at.get_or_insert(at);
        last_at = at;
        received += 1;
    }
    let drain_secs = last_at
        .duration_since(first_at.unwrap_or(last_at))
        .as_secs_f64()
        .max(1e-6);
    dials.stop().await?;

    // 3. Fan-out: many subscribers, one update at a time.
    eprintln!(
        "mqtt: {} subscribers, {} updates",
        args.subscribers, args.fanout_updates
    );
    let dials = Dials::start(&args.binary, &work.path().join("fanout"), &broker.url()).await?;
    let mut version = dials.put("fan", json!({"n": 0}), true).await?;
    let mut clients = Vec::new();
    for i in 0..args.subscribers {
        let (c, mut rx) = subscriber(broker.port, "config/updated/fan", format!("fan-{i}")).await?;
        wait_version(&mut rx, version).await?;
        clients.push((c, rx));
    }
    let mut fanout = histogram();
    for n in 1..=args.fanout_updates {
        let t0 = Instant::now();
        version = dials.put("fan", json!({"n": n}), false).await?;
        for (_, rx) in clients.iter_mut() {
            let at = wait_version(rx, version).await?;
            fanout.record(at.duration_since(t0).as_micros() as u64)?;
        }
    }
    dials.stop().await?;

    Ok(MqttReport {
        put_only: Summary::of(&put_only),
        put_to_subscriber: Summary::of(&end_to_end),
        drain_messages: total,
        drain_per_second: f64::from(total) / drain_secs,
        fanout_clients: args.subscribers,
        fanout: Summary::of(&fanout),
    })
}

/// The report as Markdown rows.
pub fn markdown(r: &MqttReport) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "| PUT answered (same runs) | — | p50 {:.3} ms, p99 {:.3} ms |\n\
         | PUT → subscriber receives | p50 ≤ 1 ms, p99 ≤ 5 ms | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} writes) |\n\
         | outbox drain after an outage | ≥ 5,000 messages/s | {:.0} messages/s ({} messages) |\n\
         | one update to {} subscribers | p99 ≤ 100 ms | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} deliveries) |\n",
        ms(r.put_only.p50),
        ms(r.put_only.p99),
        ms(r.put_to_subscriber.p50),
        ms(r.put_to_subscriber.p99),
        ms(r.put_to_subscriber.max),
        r.put_to_subscriber.count,
        r.drain_per_second,
        r.drain_messages,
        r.fanout_clients,
        ms(r.fanout.p50),
        ms(r.fanout.p99),
        ms(r.fanout.max),
        r.fanout.count,
    )
}
