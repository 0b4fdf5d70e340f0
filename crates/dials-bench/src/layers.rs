//! A change to `global` taken by a whole fleet: services × instances simulated subscribers (one
//! MQTT connection each, subscribed as the client library subscribes: its service, `global`
//! and its own override topic), each answering every `global` envelope with an applied report
//! naming the global version, as a client does after merging. Measures what the manager sent
//! for the one change and the time from the write to the last report recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::broker::{Mosquitto, Tuning};
use crate::mqtt::Dials;

/// The shape of the run.
#[derive(Debug, Clone)]
pub struct LayersOptions {
    /// The `dials` binary.
    pub binary: std::path::PathBuf,
    /// Services whose schema takes `/log/level` from global.
    pub services: u32,
    /// Simulated instances of each.
    pub instances: u32,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LayersReport {
    pub subscribers: u32,
    /// Envelopes the manager published for the change (config/updated/…, config/override/…).
    pub envelopes: u64,
    /// Other messages it published meanwhile (audit events).
    pub other: u64,
    /// Deliveries of the global envelope to the simulated instances.
    pub deliveries: u64,
    /// PATCH of global answered.
    pub write: Duration,
    /// Write → last simulated instance received the envelope.
    pub last_delivery: Duration,
    /// Write → last report recorded by the manager (seen in `GET …/instances`).
    pub last_recorded: Duration,
}

/// One simulated instance: reports every global envelope it receives.
async fn instance(
    port: u16,
    service: String,
    instance: String,
    delivered: mpsc::UnboundedSender<(u64, Instant)>,
) -> anyhow::Result<AsyncClient> {
    let mut options = MqttOptions::new(format!("sim-{service}-{instance}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let applied = format!("config/applied/{service}/{instance}");
    for topic in [
        "config/updated/global".to_owned(),
        format!("config/updated/{service}"),
        format!("config/override/{service}/{instance}"),
    ] {
        client.subscribe(topic, QoS::AtLeastOnce).await?;
    }
    let reporter = client.clone();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let mut acks = 0;
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    acks += 1;
                    if acks == 3
                        && let Some(r) = ready_tx.take()
                    {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == "config/updated/global" => {
                    let at = Instant::now();
                    let version = serde_json::from_slice::<Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["version"].as_u64())
                        .unwrap_or(0);
                    let report = json!({
                        "version": 1, "status": "applied", "overrides": [],
                        "layers": {"/log_level": "global"},
                        "global_version": version, "override_version": 0,
                    });
                    let _ =
                        reporter.try_publish(&applied, QoS::AtLeastOnce, true, report.to_string());
                    if delivered.send((version, at)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .context("no SUBACK")??;
    Ok(client)
}

/// Counts what the manager publishes (envelopes apart from the rest) from now on.
async fn monitor(port: u16) -> anyhow::Result<(AsyncClient, Arc<AtomicU64>, Arc<AtomicU64>)> {
    let mut options = MqttOptions::new("sim-monitor", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let envelopes = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    for topic in ["config/updated/#", "config/override/#", "audit/#"] {
        client.subscribe(topic, QoS::AtLeastOnce).await?;
    }
    let (e, o) = (envelopes.clone(), other.clone());
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let mut acks = 0;
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    acks += 1;
                    if acks == 3
                        && let Some(r) = ready_tx.take()
                    {
                        let _ = r.send(());
                    }
                }
                // Retained messages delivered on subscribing are the past, not this change.
                Ok(Event::Incoming(Incoming::Publish(p))) if !p.retain => {
                    if p.topic.starts_with("audit/") {
                        o.fetch_add(1, Ordering::Relaxed);
                    } else {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .context("no SUBACK")??;
    Ok((client, envelopes, other))
}

/// Runs the measurement.
pub async fn run(options: &LayersOptions) -> anyhow::Result<LayersReport> {
    let work = tempfile::tempdir()?;
    let broker = Mosquitto::start(Tuning::NoDelay).await?;
    let dials = Dials::start(&options.binary, &work.path().join("layers"), &broker.url()).await?;
    dials
        .put("global", json!({"log": {"level": "info"}}), true)
        .await?;
    let schema = json!({"type": "object", "properties": {
        "log_level": {"type": "string", "default": "warn", "x-global": "/log/level"},
        "n": {"type": "integer", "default": 0}
    }});
    eprintln!(
        "layers: {} services × {} instances",
        options.services, options.instances
    );
    for s in 0..options.services {
        let service = format!("svc-{s}");
        dials.put_schema(&service, &schema).await?;
        dials.put(&service, json!({"n": s}), true).await?;
    }
    let (tx, mut delivered) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for s in 0..options.services {
        for i in 0..options.instances {
            clients.push(
                instance(
                    broker.port,
                    format!("svc-{s}"),
                    format!("pi-{i}"),
                    tx.clone(),
                )
                .await?,
            );
        }
    }
    let subscribers = options.services * options.instances;
    // Every instance has heard the retained global v1 and reported it.
    let mut first = 0;
    while first < subscribers {
        tokio::time::timeout(Duration::from_secs(30), delivered.recv())
            .await
            .context("not every instance heard global")?
            .context("instances gone")?;
        first += 1;
    }
    wait_recorded(&dials, options, 1).await?;
    let (_monitor, envelopes, other) = monitor(broker.port).await?;

    eprintln!("layers: one change to global");
    let t0 = Instant::now();
    let version = dials
        .patch("global", json!({"log": {"level": "debug"}}))
        .await?;
    let write = t0.elapsed();
    let mut deliveries = 0u64;
    let mut last_delivery = Duration::ZERO;
    while deliveries < u64::from(subscribers) {
        let (v, at) = tokio::time::timeout(Duration::from_secs(60), delivered.recv())
            .await
            .context("the change did not reach every instance")?
            .context("instances gone")?;
        if v == version {
            deliveries += 1;
            last_delivery = at.duration_since(t0);
        }
    }
    wait_recorded(&dials, options, version).await?;
    let last_recorded = t0.elapsed();
    // Anything the manager still had to send for the change has gone out by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
    dials.stop().await?;
    Ok(LayersReport {
        subscribers,
        envelopes: envelopes.load(Ordering::Relaxed),
        other: other.load(Ordering::Relaxed),
        deliveries,
        write,
        last_delivery,
        last_recorded,
    })
}

/// Waits until the manager shows every instance of every service reporting `global_version`.
async fn wait_recorded(dials: &Dials, options: &LayersOptions, version: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<u32> = (0..options.services).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for s in pending {
            let listing = dials
                .get(&format!("/api/v1/services/svc-{s}/instances"))
                .await?;
            let done = listing["instances"].as_array().is_some_and(|rows| {
                rows.len() == options.instances as usize
                    && rows.iter().all(|r| r["global_version"] == version)
            });
            if !done {
                still.push(s);
            }
        }
        pending = still;
        if Instant::now() > deadline {
            bail!("{} services never showed every report", pending.len());
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// The report as a Markdown table.
pub fn markdown(r: &LayersReport) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "| metric | measured |\n|---|---|\n\
         | subscribed instances | {} |\n\
         | envelopes the manager published for the change | {} |\n\
         | other messages it published (audit) | {} |\n\
         | deliveries of the global envelope to instances | {} |\n\
         | PATCH global answered | {:.1} ms |\n\
         | write → last instance received it | {:.1} ms |\n\
         | write → last applied report recorded by the manager | {:.1} ms |\n",
        r.subscribers,
        r.envelopes,
        r.other,
        r.deliveries,
        ms(r.write),
        ms(r.last_delivery),
        ms(r.last_recorded),
    )
}
