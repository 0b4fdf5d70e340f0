//! Everything end to end against one binary: one server for the read and write runs (each
//! read shape also run against the floor server, for a ratio measured side by side), a second
//! server with MQTT off for the storage-only write cost, then the fsync floor, startup and idle
//! memory; a Markdown table of the results on stdout.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;

use crate::api::Api;
use crate::cli::AllArgs;
use crate::floor::Floor;
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
/// Read shapes: connections, and client threads unless `--threads` says otherwise. One client
/// thread drives up to two connections best; four need both cores to keep the server busy.
const SHAPES: [(u32, u32); 3] = [(1, 1), (2, 1), (4, 2)];
/// Writes in each write run.
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

/// A dials read run and the floor run of the same shape.
struct ReadPair {
    dials: GetReport,
    floor: GetReport,
}

/// What the server under load measured.
struct Loaded {
    reads: Vec<ReadPair>,
    put: PutReport,
    /// What the server said about MQTT at startup.
    mqtt: Option<String>,
    rss_after_load: RssReport,
}

pub fn run(args: &AllArgs) -> anyhow::Result<()> {
    let launch = Launch::new(&args.binary, &args.serve_args)?;
    let dir = args.dir.as_deref();
    let loaded = server::measure_with(&launch, dir, |control, server| load(control, server, args))?;

    let put_storage_only = if args.serve_args.iter().any(|a| a.contains("mqtt")) {
        None
    } else {
        eprintln!("PUT config with MQTT off: {WRITES} writes");
        Some(put_without_mqtt(&launch, dir)?)
    };
    eprintln!("fdatasync floor: {FSYNCS} rounds");
    let fsync = fsync::run(FSYNCS, dir, std::time::Duration::ZERO)?;
    eprintln!("{fsync}");
    eprintln!("startup: {STARTS} runs of each kind");
    let startup = startup::run(&launch, STARTS, dir)?;
    eprintln!("{startup}");
    eprintln!("idle memory");
    let idle = rss::run(&launch, dir)?;
    eprintln!("{idle}");

    let results = Results {
        loaded: &loaded,
        put_storage_only: put_storage_only.as_ref(),
        fsync: &fsync,
        startup: &startup,
        idle: &idle,
    };
    print!("{}", results.table());
    Ok(())
}

fn load(
    control: &tokio::runtime::Runtime,
    server: &Server,
    args: &AllArgs,
) -> anyhow::Result<Loaded> {
    let api = Api::at(server.addr(), &server.admin_token()?)?;
    let body_len = control.block_on(async {
        let mut conn = Conn::open(api.addr()).await?;
        put::ensure_service(&api, &mut conn, SERVICE).await?;
        let answer = conn.send(api.get(&api.config_uri(SERVICE)?)?).await?;
        anyhow::Ok(answer.body.len())
    })?;
    let floor = Floor::start(body_len)?;
    let floor_api = Api::at(floor.addr(), "none")?;
    let mut reads = Vec::new();
    for (connections, threads) in SHAPES {
        let options = GetOptions {
            connections,
            threads: args.threads.unwrap_or(threads),
            seconds: Duration::from_secs(args.seconds),
            warmup: Duration::from_secs(1),
            server_pid: Some(server.pid()?),
        };
        let dials = median(args.repeat, || get::run(&api, SERVICE, &options))?;
        eprintln!("dials {dials}");
        let options = GetOptions {
            server_pid: Some(floor.pid()),
            ..options
        };
        let floor = median(args.repeat, || get::run(&floor_api, "floor", &options))?;
        eprintln!("floor {floor}");
        reads.push(ReadPair { dials, floor });
    }
    drop(floor);
    eprintln!("PUT config: {WRITES} writes");
    let put = put::run(&api, SERVICE, WRITES, Some(server.pid()?))?;
    eprintln!("{put}");
    let rss_after_load = RssReport::of(server.pid()?).context("reading the loaded server")?;
    Ok(Loaded {
        reads,
        put,
        mqtt: server.log_message("MQTT"),
        rss_after_load,
    })
}

/// Runs `once` `times` times and keeps the run of median throughput.
fn median(
    times: u32,
    mut once: impl FnMut() -> anyhow::Result<GetReport>,
) -> anyhow::Result<GetReport> {
    let mut runs = Vec::new();
    for _ in 0..times.max(1) {
        runs.push(once()?);
    }
    runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let middle = runs.len() / 2;
    Ok(runs.swap_remove(middle))
}

/// The same write run against a server with MQTT off: what storage alone costs.
fn put_without_mqtt(launch: &Launch, dir: Option<&std::path::Path>) -> anyhow::Result<PutReport> {
    let mut quiet = launch.clone();
    quiet.extra.extend(["--mqtt".to_owned(), "none".to_owned()]);
    let measured = server::measure_with(&quiet, dir, |_, server| put_to(server))?;
    eprintln!("{measured}");
    Ok(measured)
}

fn put_to(server: &Server) -> anyhow::Result<PutReport> {
    let api = Api::at(server.addr(), &server.admin_token()?)?;
    put::run(&api, SERVICE, WRITES, Some(server.pid()?))
}

/// `met`, or by how much a latency was missed.
fn slower(measured: Duration, target: Duration) -> String {
    if measured <= target {
        "met".into()
    } else {
        format!(
            "missed: {:.2}× the target",
            measured.as_secs_f64() / target.as_secs_f64()
        )
    }
}

/// `met`, or by how much a rate was missed.
fn fewer(measured: f64, target: f64) -> String {
    if measured >= target {
        "met".into()
    } else {
        format!("missed: {:.0}% of the target", 100.0 * measured / target)
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

struct Results<'a> {
    loaded: &'a Loaded,
    put_storage_only: Option<&'a PutReport>,
    fsync: &'a FsyncReport,
    startup: &'a StartupReport,
    idle: &'a RssReport,
}

/// Rows of a Markdown table.
#[derive(Default)]
struct Table(String);

impl Table {
    fn row(&mut self, cells: [&str; 5]) {
        let _ = writeln!(self.0, "| {} |", cells.join(" | "));
    }
}

impl Results<'_> {
    fn table(&self) -> String {
        let mut t = Table::default();
        t.row(["metric", "target", "measured", "verdict", "detail"]);
        t.row(["---", "---", "---", "---", "---"]);
        for ReadPair { dials, floor } in &self.loaded.reads {
            self.read_rows(&mut t, dials, floor);
        }
        self.write_rows(&mut t);
        self.start_and_memory_rows(&mut t);
        t.0
    }

    fn read_rows(&self, t: &mut Table, dials: &GetReport, floor: &GetReport) {
        let (c, threads) = (dials.options.connections, dials.options.threads);
        let l = &dials.latency;
        let cpu = dials.cpu.unwrap_or_default();
        t.row([
            &format!("GET config p50, {c} conn."),
            "≤ 0.1 ms",
            &Ms(l.p50).to_string(),
            &slower(l.p50, GET_P50),
            &format!(
                "p90 {}, p99 {}, p99.9 {}, max {}; floor p50 {} (dials {:.2}×); {} errors",
                Ms(l.p90),
                Ms(l.p99),
                Ms(l.p999),
                Ms(l.max),
                Ms(floor.latency.p50),
                ratio(l.p50, floor.latency.p50),
                dials.errors
            ),
        ]);
        let switches = cpu
            .server_switches
            .map_or(0.0, |s| s as f64 / dials.requests.max(1) as f64);
        t.row([
            &format!("GET config throughput, {c} conn."),
            "≥ 30,000/s",
            &Rate(dials.per_second()).to_string(),
            &fewer(dials.per_second(), GET_RATE),
            &format!(
                "floor {} (dials {:.2}×); {threads} client thread(s); cores: server {:.2}, \
                 client {:.2}, others {:.2}; {switches:.1} server context switches/request",
                Rate(floor.per_second()),
                dials.per_second() / floor.per_second().max(1e-9),
                cpu.server.unwrap_or(0.0),
                cpu.process,
                cpu.others().unwrap_or(0.0),
            ),
        ]);
    }

    fn write_rows(&self, t: &mut Table) {
        let floor = self.fsync.latency.p50;
        let mut puts = vec![("PUT config p50 (durable)", &self.loaded.put)];
        if let Some(quiet) = self.put_storage_only {
            puts.push(("PUT config p50 (durable), MQTT off", quiet));
        }
        for (name, p) in puts {
            let switches = p
                .cpu
                .and_then(|c| c.server_switches)
                .map_or(0.0, |s| s as f64 / p.requests.max(1) as f64);
            let mqtt = if name.ends_with("MQTT off") {
                String::new()
            } else {
                self.loaded
                    .mqtt
                    .as_ref()
                    .map_or_else(String::new, |m| format!("; {m}"))
            };
            t.row([
                name,
                "≤ 1 ms",
                &Ms(p.latency.p50).to_string(),
                &slower(p.latency.p50, PUT_P50),
                &format!(
                    "{:.1}× the fdatasync p50; p90 {}, p99 {}, max {}; {}; cores: server {:.2}, \
                     others {:.2}; {switches:.0} server context switches/write; {} errors{mqtt}",
                    ratio(p.latency.p50, floor),
                    Ms(p.latency.p90),
                    Ms(p.latency.p99),
                    Ms(p.latency.max),
                    Rate(p.per_second()),
                    p.cpu.and_then(|c| c.server).unwrap_or(0.0),
                    p.cpu.and_then(|c| c.others()).unwrap_or(0.0),
                    p.errors,
                ),
            ]);
        }
        t.row([
            "fdatasync floor p50 (4 KiB)",
            "—",
            &Ms(floor).to_string(),
            "—",
            &format!(
                "p99 {}, max {}; {}",
                Ms(self.fsync.latency.p99),
                Ms(self.fsync.latency.max),
                self.fsync.filesystem
            ),
        ]);
    }

    fn start_and_memory_rows(&self, t: &mut Table) {
        let s = self.startup;
        for (name, summary) in [
            ("startup p50, first start", s.first()),
            ("startup p50, restart", s.restart()),
        ] {
            t.row([
                name,
                "≤ 50 ms",
                &Ms(summary.p50).to_string(),
                &slower(summary.p50, START),
                &format!(
                    "spawn to first 200 from /health; min {}, max {}, {} runs",
                    Ms(summary.min),
                    Ms(summary.max),
                    summary.count
                ),
            ]);
        }
        t.row([
            "stops killed by SIGTERM itself",
            "0",
            &format!("{} of {}", s.killed_by_sigterm, s.stops.len()),
            if s.killed_by_sigterm == 0 {
                "met"
            } else {
                "missed"
            },
            "SIGTERM right after the first answer; a graceful stop exits 0",
        ]);
        let idle_mib = mib(self.idle.vm_rss);
        t.row([
            "idle RSS",
            "≤ 20 MiB",
            &format!("{idle_mib:.1} MiB"),
            &if idle_mib <= RSS_MIB {
                "met".to_owned()
            } else {
                format!("missed: {:.2}× the target", idle_mib / RSS_MIB)
            },
            &self.idle.to_string(),
        ]);
        let after = &self.loaded.rss_after_load;
        t.row([
            "RSS after the load runs",
            "—",
            &format!("{:.1} MiB", mib(after.vm_rss)),
            "—",
            &after.to_string(),
        ]);
    }
}
