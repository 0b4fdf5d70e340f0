//! Command-line arguments. Every count and duration has an upper bound, so no run can go on
//! for ever.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::get::GetOptions;

/// dials-load: measure a running dials server over loopback.
///
/// It connects only to 127.0.0.1, localhost or [::1], and every loop is bounded in count and
/// in time. Progress goes to stderr, results to stdout.
#[derive(Debug, Parser)]
#[command(name = "dials-load", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read one service's config over keep-alive connections, as fast as they answer.
    Get(GetArgs),
    /// Replace one service's config N times in a row; each write is a new, durable version.
    Put(PutArgs),
    /// Concurrent writers for a fixed time, each on its own connection: to a service each, or
    /// all to one shared service (`--shared`).
    Writers(WritersArgs),
    /// Time from spawning `dials serve` to its first answered `GET /health`.
    Startup(StartupArgs),
    /// Resident memory of an idle server that has served a few requests.
    Rss(RssArgs),
    /// The fdatasync floor of the filesystem: what every durable write pays at least.
    Fsync(FsyncArgs),
    /// The same read load against a do-nothing HTTP server started by this tool: the floor
    /// that loopback, the kernel and hyper set on this machine.
    Floor(FloorArgs),
    /// Everything, end to end, against one binary; prints a Markdown table.
    All(AllArgs),
    /// MQTT distribution with a Mosquitto of its own: PUT → subscriber latency, outbox drain
    /// after an outage, one update fanned out to many subscribers.
    Mqtt(MqttArgs),
    /// One change to `global` taken by a fleet: services × instances simulated subscribers
    /// (one MQTT connection each, subscribed as the client library is), each reporting the
    /// global version it merged; what the manager sent, and the time to the last report
    /// recorded.
    Layers(LayersArgs),
    /// What secrets cost, side by side on one server: writes that keep or seal a secret
    /// against writes without one, and the service's own reads (secrets opened per read)
    /// against the cached, masked reads.
    Secrets(SecretsArgs),
    /// Two builds of dials by turns on this machine (before, after, after, before, …): the p50
    /// of durable writes and of reads, each build on a server of its own with MQTT off.
    Compare(CompareArgs),
    /// PUT → typed callback in a `dials-client` through a stock Mosquitto of its own: paced
    /// (20 updates/s) and back-to-back; then PUT → its applied report recorded by the manager.
    Client(ClientArgs),
    /// dials against etcd on this machine, side by side in alternating rounds: sequential,
    /// CAS, 16 writers (own keys, one shared key, own keys with one watcher of them all),
    /// write → watcher; the writes again on a second dials server with MQTT off. Needs a build
    /// with `--features dials-bench/etcd`.
    VersusEtcd(VersusEtcdArgs),
    /// Many-service writes: profile apply over the demo fleet (`dials seed`), and an import of
    /// a generated fleet into an empty manager, then again.
    Bulk(BulkArgs),
    /// The floor server itself (started by `floor` and `all`).
    #[command(hide = true)]
    FloorServer(FloorServerArgs),
}

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct Target {
    /// Base URL of the server; its host must be loopback
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub url: String,

    /// Bearer token (e.g. the contents of <data-dir>/admin.token)
    #[arg(long, env = "DIALS_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Service whose config is read or written
    #[arg(long, default_value = "bench")]
    pub service: String,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub target: Target,

    #[command(flatten)]
    pub shape: Shape,

    /// The server's process id, to report the CPU it used beside the client's
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

/// How a read run is shaped.
#[derive(Debug, Args)]
pub struct Shape {
    /// Concurrent keep-alive connections, one task each
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,

    /// Measured duration in seconds
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,

    /// Unmeasured warm-up before it, in seconds
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup_seconds: u64,

    /// Client runtime threads; 1 runs every connection on one thread
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
}

impl Shape {
    pub fn options(&self) -> GetOptions {
        GetOptions {
            connections: self.connections,
            threads: self.threads,
            seconds: Duration::from_secs(self.seconds),
            warmup: Duration::from_secs(self.warmup_seconds),
            server_pid: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct FloorArgs {
    #[command(flatten)]
    pub shape: Shape,

    /// Size of the fixed JSON body it answers
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub body_bytes: u64,
}

#[derive(Debug, Args)]
pub struct FloorServerArgs {
    /// Size of the fixed JSON body it answers
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub body_bytes: u64,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub target: Target,

    /// Writes to make, one after the other on one connection
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub requests: u64,

    /// The server's process id, to report the CPU it used beside the client's
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WritersArgs {
    /// The server; `--service` is not used (the services are `bench-0`… or `bench-shared`)
    #[command(flatten)]
    pub target: Target,

    /// Concurrent writers, each on a connection of its own
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub writers: u32,

    /// How long they write
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,

    /// Every writer writes one shared service instead of its own
    #[arg(long)]
    pub shared: bool,

    /// Another replica on the same database (repeatable): the writers are spread over `--url`
    /// and these, writer by writer, as a round-robin load balancer would
    #[arg(long = "also", value_name = "URL")]
    pub also: Vec<String>,

    /// The server's process id, to report the CPU it used beside the client's
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// The `dials` binary to start
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Starts of each kind (first start, restart)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,

    /// Where to make the temporary data directories [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// An extra argument for `dials serve` (repeat for more), e.g. --serve-arg=--mqtt=none
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RssArgs {
    /// The `dials` binary to start
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Where to make the temporary data directory [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// An extra argument for `dials serve` (repeat for more), e.g. --serve-arg=--mqtt=none
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FsyncArgs {
    /// Write + fdatasync rounds
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,

    /// A directory on the filesystem to measure [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Idle time between rounds, as a paced writer leaves the disk (0: back to back)
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub gap_ms: u32,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Measured seconds of each GET run
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,

    /// Client runtime threads for every GET run [default: 1 up to 2 connections, else 2]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: Option<u32>,

    /// Runs of each GET shape; the one of median throughput is reported
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub repeat: u32,

    /// Where to make data directories and the fsync file [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// An extra argument for `dials serve` (repeat for more), e.g. --serve-arg=--mqtt=none
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MqttArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Writes timed one by one until a subscriber receives them
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub puts: u32,

    /// Changes left in the outbox, then drained
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(50..=200_000))]
    pub drain: u32,

    /// Subscribed clients for the fan-out
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub subscribers: u32,

    /// Updates fanned out to all of them
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fanout_updates: u32,
}

#[derive(Debug, Args)]
pub struct LayersArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Services whose schema takes a key from global
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub services: u32,

    /// Simulated instances of each service (one MQTT connection each)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub instances: u32,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Writes in each write run
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub writes: u64,

    /// Measured seconds of each GET run
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,

    /// Where to make the data directory [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// An extra argument for `dials serve` (repeat for more), e.g. --serve-arg=--mqtt=none
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The `dials` binary to compare against
    #[arg(long, value_name = "PATH")]
    pub before: PathBuf,

    /// The `dials` binary measured against it
    #[arg(long, value_name = "PATH")]
    pub after: PathBuf,

    /// Runs of each build (each: the writes, then the reads)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,

    /// Writes in each run
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub writes: u64,

    /// Seconds of GETs (one connection) in each run, after its writes
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub get_seconds: u64,

    /// Where to make the data directories [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Updates of each shape (paced, then back-to-back)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub updates: u32,

    /// Updates per second of the paced shape
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,

    /// Updates of the run to the recorded report (one every 200 ms)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub recorded: u32,

    /// Give the broker `set_tcp_nodelay true` instead of its stock settings
    #[arg(long)]
    pub broker_nodelay: bool,

    /// Where to make the data directory [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VersusEtcdArgs {
    /// The `dials` binary to measure
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// The `etcd` binary [default: `etcd` on the PATH, from Debian's etcd-server]
    #[arg(long, value_name = "PATH", default_value = "etcd")]
    pub etcd: PathBuf,

    /// Rounds; each runs every workload on both systems, the first system alternating
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,

    /// Writes of each sequential workload (plain, CAS, write → watcher) per round
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    pub writes: u32,

    /// Seconds of each 16-writer workload per round
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,

    /// Concurrent writers in the concurrent workloads
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(2..=256))]
    pub writers: u32,

    /// Where to make the data directories [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BulkArgs {
    /// The `dials` binary to measure (it also runs `dials seed`)
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,

    /// Profile applies each way (a then b)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub applies: u64,

    /// Services in the imported file
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub services: u32,

    /// Where to make the data directories [default: the system temp dir]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// An extra argument for `dials serve` (repeat for more), e.g. --serve-arg=--mqtt=none
    #[arg(long = "serve-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}
