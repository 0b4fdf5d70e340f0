//! What secrets cost, measured side by side on one server in one run: writes to a service
//! whose config keeps a secret against the same writes to one without, a secret set through
//! its route (each one sealed anew), and reads of the cached, masked config against the
//! service's own reads, which open the secret every time.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use crate::api::Api;
use crate::cli::SecretsArgs;
use crate::get::{self, GetOptions, GetReport};
use crate::http::Conn;
use crate::put::{self, PutReport};
use crate::server::{self, Launch, Server};
use crate::stats::Ms;

/// The service without a secret, and the one with.
const PLAIN: &str = "bench-plain";
const SECRET: &str = "bench-secret";

/// Everything one run measured.
struct Report {
    put_plain: PutReport,
    put_kept: PutReport,
    put_sealed: PutReport,
    get_masked: GetReport,
    get_own: GetReport,
}

pub fn run(args: &SecretsArgs) -> anyhow::Result<()> {
    let launch = Launch::new(&args.binary, &args.serve_args)?;
    let report = server::measure_with(&launch, args.dir.as_deref(), |control, server| {
        measure(control, server, args)
    })?;
    print!("{}", table(&report, args));
    Ok(())
}

/// The schema of both services: any keys, and `api_key` a string, secret or not.
fn schema(secret: bool) -> Value {
    json!({
        "type": "object",
        "properties": {"api_key": {"type": "string", "minLength": 8, "x-secret": secret}}
    })
}

fn measure(
    control: &tokio::runtime::Runtime,
    server: &Server,
    args: &SecretsArgs,
) -> anyhow::Result<Report> {
    let admin = Api::at(server.addr(), &server.admin_token()?)?;
    let own_token = control.block_on(setup(&admin))?;
    let own = Api::at(server.addr(), &own_token)?;
    let pid = Some(server.pid()?);

    let plain_uri = admin.config_uri(PLAIN)?;
    let secret_uri = admin.config_uri(SECRET)?;
    let route = admin.uri(&format!("/api/v1/services/{SECRET}/secrets/api_key"))?;
    let writes = |what: &str, make: &dyn Fn(u64) -> anyhow::Result<crate::api::Req>| {
        eprintln!("{what}: {} writes", args.writes);
        let report = control.block_on(put::sequential(&admin, args.writes, pid, make))?;
        eprintln!("{report}");
        anyhow::Ok(report)
    };
    let put_plain = writes("PUT config, no secret", &|n| {
        admin.put(&plain_uri, body(n, "sk-bench-0000000000")?, false)
    })?;
    let put_kept = writes("PUT config, secret kept", &|n| {
        admin.put(&secret_uri, body(n, dials_wire::SECRET_MASK)?, false)
    })?;
    let put_sealed = writes("PUT secret", &|n| {
        let value = json!({"value": format!("sk-bench-{n:016}")});
        admin.put(&route, Bytes::from(serde_json::to_vec(&value)?), false)
    })?;

    let options = GetOptions {
        connections: 1,
        threads: 1,
        seconds: Duration::from_secs(args.seconds),
        warmup: Duration::from_secs(1),
        server_pid: pid,
    };
    let get_masked = get::run(&admin, SECRET, &options)?;
    eprintln!("masked {get_masked}");
    let get_own = get::run(&own, SECRET, &options)?;
    eprintln!("own {get_own}");
    Ok(Report {
        put_plain,
        put_kept,
        put_sealed,
        get_masked,
        get_own,
    })
}

/// A config of 20-odd keys with `api_key`, different for every `n`.
fn body(n: u64, api_key: &str) -> anyhow::Result<Bytes> {
    let mut config = put::document(n);
    config["api_key"] = json!(api_key);
    Ok(Bytes::from(serde_json::to_vec(&json!({"config": config}))?))
}

/// Registers both schemas, creates both services, and a service token for the secret one.
async fn setup(admin: &Api) -> anyhow::Result<String> {
    let mut conn = Conn::open(admin.addr()).await?;
    for (service, secret) in [(PLAIN, false), (SECRET, true)] {
        let uri = admin.uri(&format!("/api/v1/services/{service}/schema"))?;
        let answer = conn
            .send(admin.put(
                &uri,
                Bytes::from(serde_json::to_vec(&schema(secret))?),
                false,
            )?)
            .await?;
        if answer.status != StatusCode::OK {
            bail!("registering the schema of {service}: {}", answer.excerpt());
        }
        let answer = conn
            .send(admin.put(
                &admin.config_uri(service)?,
                body(0, "sk-bench-0000000000")?,
                false,
            )?)
            .await?;
        if answer.status != StatusCode::OK {
            bail!("creating {service}: {}", answer.excerpt());
        }
    }
    let token = json!({"name": "dials-load", "role": "service", "service": SECRET});
    let answer = conn
        .send(admin.post(
            &admin.uri("/api/v1/tokens")?,
            Bytes::from(serde_json::to_vec(&token)?),
        )?)
        .await?;
    if answer.status != StatusCode::CREATED {
        bail!("creating a service token: {}", answer.excerpt());
    }
    let created: Value = serde_json::from_slice(&answer.body)?;
    created["token"]
        .as_str()
        .map(str::to_owned)
        .context("the token answer has no token")
}

fn table(r: &Report, args: &SecretsArgs) -> String {
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| path | p50 | p99 | against | p50 ratio |\n|---|---|---|---|---|"
    );
    let rows = [
        (
            "PUT config, no secret",
            &r.put_plain.latency,
            None::<(&str, Duration)>,
        ),
        (
            "PUT config, secret kept (opened, not sealed)",
            &r.put_kept.latency,
            Some(("no secret", r.put_plain.latency.p50)),
        ),
        (
            "PUT secret (sealed anew)",
            &r.put_sealed.latency,
            Some(("no secret", r.put_plain.latency.p50)),
        ),
        ("GET config, masked (cached)", &r.get_masked.latency, None),
        (
            "GET config, own token (opened per read)",
            &r.get_own.latency,
            Some(("masked", r.get_masked.latency.p50)),
        ),
    ];
    for (name, latency, against) in rows {
        let (who, ratio) = match against {
            Some((who, base)) => (who.to_owned(), format!("{:.2}", ratio(latency.p50, base))),
            None => ("—".to_owned(), "—".to_owned()),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {who} | {ratio} |",
            Ms(latency.p50),
            Ms(latency.p99)
        );
    }
    let _ = writeln!(
        out,
        "\n{} writes per PUT run, {} s per GET run (1 connection); errors: {}",
        args.writes,
        args.seconds,
        r.put_plain.errors
            + r.put_kept.errors
            + r.put_sealed.errors
            + r.get_masked.errors
            + r.get_own.errors
    );
    out
}
