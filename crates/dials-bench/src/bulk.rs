//! Many-service writes: a profile apply over the demo fleet (`dials seed`, 7 services and 71
//! settings), each apply changing every service, and an import of a generated fleet of many
//! services into an empty manager, then the same file again (nothing changes).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cli::BulkArgs;
use crate::http::Conn;
use crate::server::{self, Launch, Server};
use crate::stats::{Ms, Summary};

pub fn run(args: &BulkArgs) -> anyhow::Result<()> {
    let launch = Launch::new(&args.binary, &args.serve_args)?;
    let apply = server::measure_with(&launch, args.dir.as_deref(), |control, server| {
        control.block_on(apply(server, args))
    })?;
    let import = server::measure_with(&launch, args.dir.as_deref(), |control, server| {
        control.block_on(import(server, args.services))
    })?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| operation | runs | p50 | p90 | max |\n|---|---|---|---|---|"
    );
    let row = |out: &mut String, what: &str, s: &Summary| {
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} |",
            s.count,
            Ms(s.p50),
            Ms(s.p90),
            Ms(s.max)
        );
    };
    row(
        &mut out,
        "profile apply, demo fleet, every service changes",
        &apply.changed,
    );
    row(
        &mut out,
        "profile apply, demo fleet, nothing changes",
        &apply.unchanged,
    );
    row(&mut out, "profile apply dry run, demo fleet", &apply.dry);
    row(
        &mut out,
        &format!("import of {} services into an empty manager", args.services),
        &Summary::of_samples(&[import.0]),
    );
    row(
        &mut out,
        &format!(
            "import of the same {} services again (nothing changes)",
            args.services
        ),
        &Summary::of_samples(&[import.1]),
    );
    print!("{out}");
    Ok(())
}

struct ApplyReport {
    changed: Summary,
    unchanged: Summary,
    dry: Summary,
}

async fn send(api: &Api, conn: &mut Conn, path: &str, body: Value) -> anyhow::Result<Duration> {
    Ok(send_read(api, conn, path, body).await?.0)
}

/// `POST path`: how long the answer took, and the answer.
async fn send_read(
    api: &Api,
    conn: &mut Conn,
    path: &str,
    body: Value,
) -> anyhow::Result<(Duration, Value)> {
    let uri = api.uri(path)?;
    let req = api.post(&uri, Bytes::from(serde_json::to_vec(&body)?))?;
    let started = Instant::now();
    let answer = conn.send(req).await?;
    let took = started.elapsed();
    if !answer.status.is_success() {
        bail!("POST {path}: {} {}", answer.status, answer.excerpt());
    }
    Ok((
        took,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    ))
}

/// How many services a plan changes.
fn changed(plan: &Value) -> usize {
    plan["services"].as_array().map_or(0, |s| {
        s.iter()
            .filter(|s| s["action"] == "update" || s["action"] == "create")
            .count()
    })
}

/// Seeds the demo fleet, saves it as profile `a`, changes one setting of every service and
/// saves profile `b`; then applies `b`, `a`, `b`, … (each apply changes all seven services).
async fn apply(server: &Server, args: &BulkArgs) -> anyhow::Result<ApplyReport> {
    let token = server.admin_token()?;
    let seeded = tokio::process::Command::new(&args.binary)
        .arg("seed")
        .env("DIALS_SERVER", format!("http://{}", server.addr()))
        .env("DIALS_TOKEN", &token)
        .output()
        .await
        .context("cannot run `dials seed`")?;
    if !seeded.status.success() {
        bail!("dials seed: {}", String::from_utf8_lossy(&seeded.stderr));
    }
    let api = Api::at(server.addr(), &token)?;
    let mut conn = Conn::open(server.addr()).await?;
    send(&api, &mut conn, "/api/v1/profiles", json!({"name": "a"})).await?;
    // Profile b: every service with a `bench_note` key it did not have (no schema forbids
    // unknown keys in the demo fleet; a service whose schema does is left as in a).
    let services: Value = {
        let uri = api.uri("/api/v1/services")?;
        let answer = conn.send(api.get(&uri)?).await?;
        serde_json::from_slice(&answer.body)?
    };
    let names: Vec<String> = services["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for name in &names {
        let uri = api.uri(&format!("/api/v1/services/{name}/config"))?;
        let current: Value = serde_json::from_slice(&conn.send(api.get(&uri)?).await?.body)?;
        let mut config = current["config"].clone();
        let flipped = flip_one(&mut config);
        if !flipped {
            continue;
        }
        let body = json!({"config": config, "reason": "bench"});
        let answer = conn
            .send(api.put(&uri, Bytes::from(serde_json::to_vec(&body)?), false)?)
            .await?;
        if !answer.status.is_success() {
            bail!("PUT {name}: {} {}", answer.status, answer.excerpt());
        }
    }
    send(&api, &mut conn, "/api/v1/profiles", json!({"name": "b"})).await?;
    let mut changed_times = Vec::new();
    let mut unchanged = Vec::new();
    let mut dry = Vec::new();
    for n in 0..args.applies {
        let target = if n % 2 == 0 { "a" } else { "b" };
        let path = format!("/api/v1/profiles/{target}/apply");
        dry.push(send(&api, &mut conn, &path, json!({"dry_run": true})).await?);
        let (took, plan) = send_read(&api, &mut conn, &path, json!({})).await?;
        if changed(&plan) != names.len() {
            bail!(
                "an apply changed {} of {} services",
                changed(&plan),
                names.len()
            );
        }
        changed_times.push(took);
        let (took, plan) = send_read(&api, &mut conn, &path, json!({})).await?;
        if changed(&plan) != 0 {
            bail!(
                "applying the same profile twice changed {} services",
                changed(&plan)
            );
        }
        unchanged.push(took);
    }
    eprintln!(
        "{} services, {} applies each way",
        names.len(),
        args.applies
    );
    Ok(ApplyReport {
        changed: Summary::of_samples(&changed_times),
        unchanged: Summary::of_samples(&unchanged),
        dry: Summary::of_samples(&dry),
    })
}

/// Changes the first boolean or whole number found, depth first; `false` when there is none.
fn flip_one(config: &mut Value) -> bool {
    let Some(map) = config.as_object_mut() else {
        return false;
    };
    for value in map.values_mut() {
        if value.is_object() && flip_one(value) {
            return true;
        }
        match value {
            Value::Bool(b) => {
                *b = !*b;
                return true;
            }
            Value::Number(n) if n.is_u64() => {
                let v = n.as_u64().unwrap_or(0);
                *value = json!(if v == 0 { 1 } else { v - 1 });
                return true;
            }
            _ => {}
        }
    }
    false
}

/// Imports a generated file of `count` services (five settings each) into an empty manager,
/// then the same file again; answers both times.
async fn import(server: &Server, count: u32) -> anyhow::Result<(Duration, Duration)> {
    let token = server.admin_token()?;
    let api = Api::at(server.addr(), &token)?;
    let services: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "name": format!("svc-{i:05}"),
                "config": {
                    "volume": i % 100,
                    "enabled": i % 2 == 0,
                    "voice": format!("voice-{}", i % 7),
                    "mqtt": {"host": "127.0.0.1", "port": 1883}
                }
            })
        })
        .collect();
    let file = json!({
        "format": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "services": services,
        "profiles": []
    });
    let body = Bytes::from(serde_json::to_vec(&file)?);
    eprintln!("import file: {} services, {} bytes", count, body.len());
    let mut conn = Conn::open(server.addr()).await?;
    let uri = api.uri("/api/v1/import?dry_run=false")?;
    let mut times = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let answer = conn.send(api.post(&uri, body.clone())?).await?;
        times.push(started.elapsed());
        if !answer.status.is_success() {
            bail!("import: {} {}", answer.status, answer.excerpt());
        }
    }
    Ok((times[0], times[1]))
}
