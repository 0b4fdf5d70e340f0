//! PUT → typed callback through a broker: the time from sending a config write to the real
//! `dials` server until a `dials-client` in this process has validated the update into its
//! typed struct and run its `on_change` callback with it — paced (a fixed rate) and
//! back-to-back (the next write as soon as the callback ran) — through a Mosquitto of its own,
//! stock by default. A third run measures what the web UI shows as "applied on 1/1": PUT → the
//! manager has recorded the client's applied report (`GET /api/v1/services/{s}/instances`
//! shows it), one update every 200 ms (past the report budget's 100 ms between batches).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::Api;
use crate::broker::{Mosquitto, Tuning};
use crate::cli::ClientArgs;
use crate::http::Conn;
use crate::put;
use crate::server::{self, Launch, Server};
use crate::stats::{self, Ms, Rate, Summary};

/// The part of the bench document the client types; the other keys are ignored.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default)]
struct BenchConfig {
    /// Differs in every write.
    n: u64,
}

/// The pace of the run to the recorded report.
const RECORDED_EVERY: Duration = Duration::from_millis(200);

/// How long one update may take to reach the callback before the run is called stuck.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// One way of sending updates, measured.
#[derive(Debug, Clone)]
pub struct Shape {
    pub name: String,
    /// PUT sent → callback ran with it.
    pub callback: Summary,
    /// PUT sent → HTTP answer.
    pub answered: Summary,
    /// PUT sent → the manager lists the instance at the new version (that run only).
    pub recorded: Option<Summary>,
    /// Updates applied per second over the whole run.
    pub per_second: f64,
}

pub fn run(args: &ClientArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tuning = if args.broker_nodelay {
        Tuning::NoDelay
    } else {
        Tuning::Stock
    };
    let shapes = runtime.block_on(measure(args, tuning))?;
    print!("{}", table(&shapes, tuning));
    Ok(())
}

/// Starts a broker and a server, then runs the paced and the back-to-back updates.
pub async fn measure(args: &ClientArgs, tuning: Tuning) -> anyhow::Result<Vec<Shape>> {
    let broker = Mosquitto::start(tuning).await?;
    let mut launch = Launch::new(&args.binary, &[])?;
    launch.extra.extend(["--mqtt".to_owned(), broker.url()]);
    let root = server::scratch(args.dir.as_deref())?;
    eprintln!(
        "client: {} on port {}, {} in {}",
        tuning.describe(),
        broker.port,
        launch.binary.display(),
        root.path().display()
    );
    let (server, _) = Server::start(
        &launch,
        &root.path().join("data"),
        &root.path().join("server.log"),
    )
    .await?;
    let measured = updates(args, &broker, &server, root.path()).await;
    let stopped = server.stop().await;
    let shapes = measured?;
    stopped?;
    Ok(shapes)
}

async fn updates(
    args: &ClientArgs,
    broker: &Mosquitto,
    server: &Server,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<Shape>> {
    let token = server.admin_token()?;
    let api = Api::at(server.addr(), &token)?;
    let mut conn = Conn::open(api.addr()).await?;
    put::ensure_service(&api, &mut conn, "bench").await?;
    let keys = conn.send(api.get(&api.uri("/api/v1/keys")?)?).await?;
    if keys.status != StatusCode::OK {
        bail!("GET /api/v1/keys answered {}", keys.status);
    }
    let keys: serde_json::Value = serde_json::from_slice(&keys.body)?;
    let public_key = keys["public_key"]
        .as_str()
        .context("no public_key in GET /api/v1/keys")?;

    let client = dials_client::Client::<BenchConfig>::builder("bench")
        .server(format!("http://{}", server.addr()))
        .token(&token)
        .mqtt(broker.url())
        .public_key(public_key)
        .lkg_path(dir.join("bench.lkg"))
        .instance("dials-load-1")
        .register_schema(false)
        .start()
        .await
        .context("the client did not start")?;
    let (tx, mut applied) = mpsc::unbounded_channel();
    client.on_change(move |_, new| {
        let _ = tx.send((new.n, Instant::now()));
        Ok(())
    });

    let uri = api.config_uri("bench")?;
    // Numbers past the time, so that every write is a new document.
    let mut n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    // The client is subscribed once an update reaches it.
    let deadline = Instant::now() + UPDATE_TIMEOUT;
    loop {
        n += 1;
        conn.send(api.put(&uri, put::body(n)?, false)?).await?;
        let waited = tokio::time::timeout(Duration::from_millis(200), wait(&mut applied, n)).await;
        if waited.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("no update reached the client within {UPDATE_TIMEOUT:?}");
        }
    }
    // Warm-up: a few updates, unmeasured.
    for _ in 0..10 {
        n += 1;
        conn.send(api.put(&uri, put::body(n)?, false)?).await?;
        wait(&mut applied, n).await?;
    }

    let mut shapes = Vec::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    for (name, pace) in [
        (format!("{} updates/s", args.rate), Some(period)),
        ("back-to-back".to_owned(), None),
    ] {
        eprintln!("client: {} updates, {name}", args.updates);
        let mut callback = stats::histogram()?;
        let mut answered = stats::histogram()?;
        let start = Instant::now();
        for i in 0..args.updates {
            if let Some(period) = pace {
                tokio::time::sleep_until((start + period * i).into()).await;
            }
            n += 1;
            let sent = Instant::now();
            let answer = conn.send(api.put(&uri, put::body(n)?, false)?).await?;
            stats::record(&mut answered, sent.elapsed());
            if answer.status != StatusCode::OK {
                bail!("PUT answered {}: {}", answer.status, answer.excerpt());
            }
            let at = wait(&mut applied, n).await?;
            stats::record(&mut callback, at - sent);
        }
        let elapsed = start.elapsed();
        shapes.push(Shape {
            name,
            callback: Summary::of(&callback),
            answered: Summary::of(&answered),
            recorded: None,
            per_second: f64::from(args.updates) / elapsed.as_secs_f64().max(1e-9),
        });
    }
    shapes.push(to_recorded(args, &api, &mut conn, &mut applied, &mut n).await?);
    client.shutdown().await;
    Ok(shapes)
}

/// Updates one every [`RECORDED_EVERY`], each measured until the manager has recorded the
/// client's applied report of it.
async fn to_recorded(
    args: &ClientArgs,
    api: &Api,
    conn: &mut Conn,
    applied: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    n: &mut u64,
) -> anyhow::Result<Shape> {
    let updates = args.recorded;
    let name = format!("1 per {} ms, to recorded", RECORDED_EVERY.as_millis());
    eprintln!("client: {updates} updates, {name}");
    let uri = api.config_uri("bench")?;
    let instances = api.uri("/api/v1/services/bench/instances")?;
    let mut callback = stats::histogram()?;
    let mut answered = stats::histogram()?;
    let mut recorded = stats::histogram()?;
    let start = Instant::now();
    for i in 0..updates {
        tokio::time::sleep_until((start + RECORDED_EVERY * (i + 1)).into()).await;
        *n += 1;
        let sent = Instant::now();
        let answer = conn.send(api.put(&uri, put::body(*n)?, false)?).await?;
        stats::record(&mut answered, sent.elapsed());
        if answer.status != StatusCode::OK {
            bail!("PUT answered {}: {}", answer.status, answer.excerpt());
        }
        let body: serde_json::Value = serde_json::from_slice(&answer.body)?;
        let version = body["version"]
            .as_u64()
            .context("no version in the PUT answer")?;
        let deadline = sent + UPDATE_TIMEOUT;
        loop {
            let listing = conn.send(api.get(&instances)?).await?;
            let listing: serde_json::Value = serde_json::from_slice(&listing.body)?;
            let there = listing["instances"].as_array().is_some_and(|rows| {
                rows.iter()
                    .any(|r| r["instance"] == "dials-load-1" && r["version"] == version)
            });
            if there {
                stats::record(&mut recorded, sent.elapsed());
                break;
            }
            if Instant::now() > deadline {
                bail!("the report of version {version} was not recorded within {UPDATE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        let at = wait(applied, *n).await?;
        stats::record(&mut callback, at - sent);
    }
    let elapsed = start.elapsed();
    Ok(Shape {
        name,
        callback: Summary::of(&callback),
        answered: Summary::of(&answered),
        recorded: Some(Summary::of(&recorded)),
        per_second: f64::from(updates) / elapsed.as_secs_f64().max(1e-9),
    })
}

/// Waits until the callback has run with document `n`; answers when.
async fn wait(
    applied: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    n: u64,
) -> anyhow::Result<Instant> {
    loop {
        let (got, at) = tokio::time::timeout(UPDATE_TIMEOUT, applied.recv())
            .await
            .with_context(|| {
                format!("update {n} did not reach the callback within {UPDATE_TIMEOUT:?}")
            })?
            .context("the client stopped")?;
        if got >= n {
            return Ok(at);
        }
    }
}

/// The results as a Markdown table.
pub fn table(shapes: &[Shape], tuning: Tuning) -> String {
    let mut out = format!(
        "PUT → typed callback ({}; 1 KiB document, durable writes)\n\n\
         | updates | PUT → callback p50 | p90 | p99 | max | PUT answered p50 | applied/s | PUT → recorded p50 | p90 | max |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        tuning.describe()
    );
    for s in shapes {
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            s.callback.count,
            Ms(s.callback.p50),
            Ms(s.callback.p90),
            Ms(s.callback.p99),
            Ms(s.callback.max),
            Ms(s.answered.p50),
            Rate(s.per_second),
            s.recorded.as_ref().map_or_else(
                || "— | — | —".to_owned(),
                |r| format!("{} | {} | {}", Ms(r.p50), Ms(r.p90), Ms(r.max))
            ),
        );
    }
    out
}
