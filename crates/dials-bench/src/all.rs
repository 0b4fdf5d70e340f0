//! Everything end to end against one binary: one server for the read and write runs, then the
//! fsync floor, startup and idle memory, and a Markdown table of the results on stdout.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;

use crate::api::Api;
use crate::cli::AllArgs;
use crate::fsync::{self, FsyncReport};
use crate::get::{self, GetOptions, GetReport};
use crate::http::Conn;
use crate::put::{self, PutReport};
use crate::rss::{self, RssReport, mib};
use crate::server::{self, Launch, Server};
use crate::startup::{self, StartupReport};
use crate::stats::{Ms, Rate};

/// The service every read and write goes to.
const SERVICE: &str = "bench";
/// Connection counts of the read runs.
const CONNECTIONS: [u32; 3] = [1, 2, 4];
/// Writes in the write run.
const WRITES: u64 = 2000;
/// fdatasync rounds.
const FSYNCS: u32 = 2000;
/// Starts of each kind.
const STARTS: u32 = 10;

/// The targets, as numbers.
const GET_P50: Duration = Duration::from_micros(100);
const GET_RATE: f64 = 30_000.0;
const PUT_P50: Duration = Duration::from_millis(1);
const START: Duration = Duration::from_millis(50);
const RSS_MIB: f64 = 20.0;

/// What the server under load measured.
struct Loaded {
    gets: Vec<GetReport>,
    put: PutReport,
    rss_after_load: RssReport,
}

pub fn run(args: &AllArgs) -> anyhow::Result<()> {
    let launch = Launch::new(&args.binary, &args.serve_args)?;
    let dir = args.dir.as_deref();
    let control = get::runtime(1)?;
    let root = server::scratch(dir)?;
    let data = root.path().join("data");
    eprintln!("starting {} in {}", launch.binary.display(), data.display());
    let (server, _) = control.block_on(Server::start(
        &launch,
        &data,
        &root.path().join("server.log"),
    ))?;
    // The server is stopped whatever the load runs did.
    let loaded = load(&control, &server, args);
    let stopped = control.block_on(server.stop());
    let loaded = loaded?;
    stopped?;

    eprintln!("fdatasync floor: {FSYNCS} rounds");
    let fsync = fsync::run(FSYNCS, dir)?;
    eprintln!("{fsync}");
    eprintln!("startup: {STARTS} runs of each kind");
    let startup = startup::run(&launch, STARTS, dir)?;
    eprintln!("{startup}");
    eprintln!("idle memory");
    let idle = rss::run(&launch, dir)?;
    eprintln!("{idle}");

    print!("{}", table(&loaded, &fsync, &startup, &idle));
    Ok(())
}

fn load(
    control: &tokio::runtime::Runtime,
    server: &Server,
    args: &AllArgs,
) -> anyhow::Result<Loaded> {
    let api = Api::at(server.addr(), &server.admin_token()?)?;
    control.block_on(async {
        let mut conn = Conn::open(api.addr()).await?;
        put::ensure_service(&api, &mut conn, SERVICE).await
    })?;
    let mut gets = Vec::new();
    for connections in CONNECTIONS {
        let options = GetOptions {
            connections,
            threads: args.threads,
            seconds: Duration::from_secs(args.seconds),
            warmup: Duration::from_secs(1),
            server_pid: Some(server.pid()?),
        };
        let report = get::run(&api, SERVICE, &options)?;
        eprintln!("{report}");
        gets.push(report);
    }
    eprintln!("PUT config: {WRITES} writes");
    let put = put::run(&api, SERVICE, WRITES, Some(server.pid()?))?;
    eprintln!("{put}");
    let rss_after_load = RssReport::of(server.pid()?).context("reading the loaded server")?;
    Ok(Loaded {
        gets,
        put,
        rss_after_load,
    })
}

/// `met`, or by how much it was missed.
fn verdict(met: bool, ratio: f64) -> String {
    if met {
        "met".into()
    } else {
        format!("missed ({ratio:.1}× the target)")
    }
}

fn table(
    loaded: &Loaded,
    fsync: &FsyncReport,
    startup: &StartupReport,
    idle: &RssReport,
) -> String {
    let mut out = String::new();
    let mut row =
        |metric: &str, target: &str, measured: String, verdict: String, detail: String| {
            let _ = writeln!(
                out,
                "| {metric} | {target} | {measured} | {verdict} | {detail} |"
            );
        };
    row(
        "metric",
        "target",
        "measured".into(),
        "verdict".into(),
        "detail".into(),
    );
    row("---", "---", "---".into(), "---".into(), "---".into());
    for g in &loaded.gets {
        let c = g.options.connections;
        let l = &g.latency;
        row(
            &format!("GET config p50, {c} conn."),
            "≤ 0.1 ms",
            Ms(l.p50).to_string(),
            verdict(
                l.p50 <= GET_P50,
                l.p50.as_secs_f64() / GET_P50.as_secs_f64(),
            ),
            format!(
                "p90 {}, p99 {}, p99.9 {}, max {}; {} errors",
                Ms(l.p90),
                Ms(l.p99),
                Ms(l.p999),
                Ms(l.max),
                g.errors
            ),
        );
        row(
            &format!("GET config throughput, {c} conn."),
            "≥ 30,000/s",
            Rate(g.per_second()).to_string(),
            verdict(g.per_second() >= GET_RATE, g.per_second() / GET_RATE),
            format!(
                "{} requests in {:.1} s, {} client thread(s)",
                g.requests,
                g.elapsed.as_secs_f64(),
                g.options.threads
            ),
        );
    }
    let p = &loaded.put;
    let floor = fsync.latency.p50;
    row(
        "PUT config p50 (durable)",
        "≤ 1 ms",
        Ms(p.latency.p50).to_string(),
        verdict(
            p.latency.p50 <= PUT_P50,
            p.latency.p50.as_secs_f64() / PUT_P50.as_secs_f64(),
        ),
        format!(
            "p90 {}, p99 {}, max {}; {}; {} errors; {:.1}× the fdatasync p50",
            Ms(p.latency.p90),
            Ms(p.latency.p99),
            Ms(p.latency.max),
            Rate(p.per_second()),
            p.errors,
            p.latency.p50.as_secs_f64() / floor.as_secs_f64().max(1e-9)
        ),
    );
    row(
        "fdatasync floor p50 (4 KiB)",
        "—",
        Ms(floor).to_string(),
        "—".into(),
        format!(
            "p99 {}, max {}; {}",
            Ms(fsync.latency.p99),
            Ms(fsync.latency.max),
            fsync.filesystem
        ),
    );
    for (name, s) in [
        ("startup p50, first start", startup.first()),
        ("startup p50, restart", startup.restart()),
    ] {
        row(
            name,
            "≤ 50 ms",
            Ms(s.p50).to_string(),
            verdict(s.p50 <= START, s.p50.as_secs_f64() / START.as_secs_f64()),
            format!(
                "spawn to first 200 from /health; min {}, max {}, {} runs",
                Ms(s.min),
                Ms(s.max),
                s.count
            ),
        );
    }
    let idle_mib = mib(idle.vm_rss);
    row(
        "idle RSS",
        "≤ 20 MiB",
        format!("{idle_mib:.1} MiB"),
        verdict(idle_mib <= RSS_MIB, idle_mib / RSS_MIB),
        idle.to_string(),
    );
    let after = &loaded.rss_after_load;
    row(
        "RSS after the load runs",
        "—",
        format!("{:.1} MiB", mib(after.vm_rss)),
        "—".into(),
        after.to_string(),
    );
    out
}
