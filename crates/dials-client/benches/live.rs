//! Live figures on loopback, against the real manager (in this process) and a real Mosquitto:
//!
//! - PUT → typed callback: from sending `PUT /config` to the client's `on_change` callback
//!   running with that version (target p50 ≤ 2 ms), over 200 sequential updates;
//! - start-up time from the manager, and from the LKG file with the manager stopped
//!   (target ≤ 50 ms);
//! - the memory a client adds: RSS of a fresh process before and after `start()` (target
//!   ≤ 2 MB), measured in a child process so the manager's memory does not count.
//!
//! `cargo bench -p dials-client --bench live` (needs `mosquitto` on the PATH).

#[path = "../../dials-server/tests/it/broker.rs"]
mod broker;

use std::path::Path;
use std::time::{Duration, Instant};

use dials_client::Client;
use dials_mqtt::BrokerSetting;
use dials_server::{Application, ServerSettings};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use broker::{Mosquitto, Subscriber};

const UPDATES: u32 = 200;
const WARMUP: u32 = 20;
const STARTS: usize = 30;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(default)]
struct Config {
    #[schemars(extend("x-env" = "BENCH_VOICE"))]
    voice: String,
    #[schemars(range(min = 0, max = 100000))]
    volume: u32,
    rate: f64,
    enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            voice: "amy".into(),
            volume: 0,
            rate: 1.0,
            enabled: true,
        }
    }
}

fn main() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::args().nth(1).as_deref() == Some("rss-child") {
        runtime.block_on(rss_child());
        return;
    }
    runtime.block_on(run());
}

fn builder(server: &str, token: &str, lkg: &Path) -> dials_client::Builder<Config> {
    Client::<Config>::builder("bench")
        .server(server)
        .token(token)
        .lkg_path(lkg)
        .instance("bench-1")
}

/// A Mosquitto for the measurement: the test broker, or with `BENCH_NODELAY=1` one whose
/// sockets set TCP_NODELAY (`set_tcp_nodelay true`).
struct Broker {
    port: u16,
    _dir: tempfile::TempDir,
    _child: Option<tokio::process::Child>,
    _test: Option<Mosquitto>,
}

impl Broker {
    async fn start() -> Broker {
        if std::env::var("BENCH_NODELAY").as_deref() != Ok("1") {
            let m = Mosquitto::start().await;
            return Broker {
                port: m.port,
                _dir: tempfile::tempdir().unwrap(),
                _child: None,
                _test: Some(m),
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let port = broker::free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n\
                 max_inflight_messages 0\nset_tcp_nodelay true\n"
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Broker {
            port,
            _dir: dir,
            _child: Some(child),
            _test: None,
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

async fn run() {
    let broker = Broker::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ServerSettings::local(dir.path().join("data"));
    settings.mqtt = BrokerSetting::parse(&broker.url()).unwrap();
    let app = Application::build(settings).await.unwrap();
    let server = format!("http://{}", app.address());
    let token = std::fs::read_to_string(dir.path().join("data/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let put = |config: Value| {
        http.put(format!("{server}/api/v1/services/bench/config"))
            .bearer_auth(&token)
            .header("If-None-Match", "*")
            .json(&json!({ "config": config }))
            .send()
    };
    assert!(
        put(json!({"volume": 0}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let keys: Value = http
        .get(format!("{server}/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys["public_key"].as_str().unwrap().to_owned();
    let lkg = dir.path().join("bench.lkg");

    // PUT → callback.
    let mut status = Subscriber::connect(broker.addr(), "config/applied/bench/bench-1").await;
    let dials = builder(&server, &token, &lkg)
        .mqtt(broker.url())
        .public_key(&key)
        .start()
        .await
        .unwrap();
    let (tx, mut applied) = mpsc::unbounded_channel();
    dials.on_change(move |_old, new| {
        let _ = tx.send((new.volume, Instant::now()));
        Ok(())
    });
    status.next(10).await;
    dials.refresh().await.unwrap();
    let put = |volume: u32| {
        http.put(format!("{server}/api/v1/services/bench/config"))
            .bearer_auth(&token)
            .json(&json!({ "config": {"volume": volume, "voice": "bob", "rate": 1.5} }))
            .send()
    };
    let mut latency = Vec::new();
    let mut round_trip = Vec::new();
    // BENCH_UPDATES measures more or fewer.
    let updates = std::env::var("BENCH_UPDATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(UPDATES);
    for i in 1..=updates + WARMUP {
        let sent = Instant::now();
        let response = put(i).await.unwrap();
        let answered = sent.elapsed();
        assert!(response.status().is_success());
        let (volume, at) = tokio::time::timeout(Duration::from_secs(10), applied.recv())
            .await
            .expect("applied in time")
            .unwrap();
        assert_eq!(volume, i);

        if i > WARMUP {
            latency.push(at - sent);
            round_trip.push(answered);
        }
    }
    dials.shutdown().await;
    report("PUT -> typed callback", &mut latency);
    report("  (of which the PUT's HTTP answer)", &mut round_trip);

    // Start-up with the manager up: register the schema, read the config, write the LKG file.
    let mut starts = Vec::new();
    for _ in 0..STARTS {
        let began = Instant::now();
        let d = builder(&server, &token, &lkg).start().await.unwrap();
        starts.push(began.elapsed());
        d.shutdown().await;
    }
    report("start from the manager", &mut starts);

    // Memory, in a fresh process, with the manager and broker up.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("rss-child")
        .env("BENCH_SERVER", &server)
        .env("BENCH_TOKEN", &token)
        .env("BENCH_KEY", &key)
        .env("BENCH_MQTT", broker.url())
        .env("BENCH_LKG", dir.path().join("child.lkg"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    let kb: Vec<u64> = out
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    if let [
        before,
        after,
        anon_before,
        anon_after,
        file_before,
        file_after,
    ] = kb[..]
    {
        println!(
            "RSS: {before} kB before start, {after} kB after: the client adds {} kB \
             ({} kB anonymous memory, {} kB of mapped code and files)",
            after.saturating_sub(before),
            anon_after.saturating_sub(anon_before),
            file_after.saturating_sub(file_before),
        );
    } else {
        println!(
            "RSS child failed: {out} {}",
            String::from_utf8_lossy(&child.stderr)
        );
    }

    // Start-up from the LKG file with the manager stopped.
    let _ = stop.send(());
    manager.await.unwrap().unwrap();
    let mut starts = Vec::new();
    for _ in 0..STARTS {
        let began = Instant::now();
        let d = builder(&server, &token, &lkg).start().await.unwrap();
        starts.push(began.elapsed());
        assert_eq!(d.info().origin, dials_client::Origin::Lkg);
        d.shutdown().await;
    }
    report("start from the LKG file (manager down)", &mut starts);
}

/// The child: RSS before and after starting a client (connected to MQTT, LKG written).
async fn rss_child() {
    let var = |name: &str| std::env::var(name).unwrap();
    // Let the runtime's threads come up before the first reading.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss_kb();
    let dials = builder(
        &var("BENCH_SERVER"),
        &var("BENCH_TOKEN"),
        Path::new(&var("BENCH_LKG")),
    )
    .mqtt(var("BENCH_MQTT"))
    .public_key(var("BENCH_KEY"))
    .start()
    .await
    .unwrap();
    // A measurement, not a test: give the background connect and first report time to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = dials.get();
    let after = rss_kb();
    for (b, a) in before.iter().zip(after) {
        print!("{b} {a} ");
    }
    println!();
    dials.shutdown().await;
}

/// `[VmRSS, RssAnon, RssFile]` in kB.
fn rss_kb() -> [u64; 3] {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    ["VmRSS:", "RssAnon:", "RssFile:"].map(|field| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    })
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
}
