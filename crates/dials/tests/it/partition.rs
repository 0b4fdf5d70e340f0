//! Partition harness: TCP proxies between the manager and the broker and between a client and
//! the broker cut connections and stall traffic for a while, at random, while writes go on.
//! Every service converges to its latest version, the client applies nothing out of order,
//! nothing crashes; the time to converge after each heal is printed.
//!
//! `DIALS_PARTITION_ROUNDS=30 cargo test --release --workspace --locked --test it -- partition
//! --nocapture` runs more rounds (RELIABILITY.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::broker::Mosquitto;
use crate::crash::current_version;
use crate::harness::{
    Follower, Mode, Observer, Proxy, Rng, SHARED, Writers, check, check_follower, create_services,
    history, own, public_key, rounds, service_token,
};
use crate::process::{admin_token, start_with};

const WRITERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partition_every_service_converges_after_links_to_the_broker_are_cut_and_stalled() {
    let rounds = rounds("DIALS_PARTITION_ROUNDS", 3);
    let mut rng = Rng::seeded();
    let broker = Mosquitto::start().await;
    let manager_link = Proxy::start(broker.addr()).await;
    let client_link = Proxy::start(broker.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut running = start_with(&data, &["--mqtt", &manager_link.url("mqtt")]).await;
    let base = running.base.clone();
    let token = admin_token(&data);
    let http = reqwest::Client::new();
    let key = public_key(&http, &base).await;
    let observer = Observer::start(broker.addr(), &key).await;
    create_services(&http, &base, &token, WRITERS).await;
    let client_token = service_token(&http, &base, &token, &own(0)).await;
    let follower = Follower::start(
        &own(0),
        &base,
        client_token,
        &client_link.url("mqtt"),
        &key,
        dir.path(),
    )
    .await;

    // A steady write rate (each writer about 50 a second), so the time to converge measures
    // the heal, not a backlog the writers pile up faster than anything could drain it.
    let writers = Writers::start(WRITERS, &base, &token, Duration::from_millis(20), &mut rng);
    let mut healed_in = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.range(100, 600))).await;
        let (which, link) = match rng.range(0, 3) {
            0 => ("manager", vec![&manager_link]),
            1 => ("client", vec![&client_link]),
            _ => ("both", vec![&manager_link, &client_link]),
        };
        let mode = if rng.range(0, 2) == 0 {
            Mode::Down
        } else {
            Mode::Stall
        };
        let lasting = Duration::from_millis(rng.range(500, 3000));
        for l in &link {
            l.set(mode);
        }
        tokio::time::sleep(lasting).await;
        for l in &link {
            l.heal();
        }
        let healed = Instant::now();
        // Converged: the client runs, and the broker carries, the version current at the heal.
        let target = current_version(&http, &base, &token, &own(0)).await;
        follower.wait_for(target, 120).await;
        let want: BTreeMap<String, u64> = BTreeMap::from([(own(0), target)]);
        observer.wait_for(&want, 120).await;
        let took = healed.elapsed();
        eprintln!(
            "round {}/{rounds}: {which} link {mode:?} for {:.1} s; {:.2} s after the heal the \
             client ran v{target} and the broker carried it",
            round + 1,
            lasting.as_secs_f64(),
            took.as_secs_f64()
        );
        healed_in.push(took);
        assert!(running.alive(), "the manager is still running");
    }
    let log = writers.stop().await;
    let mut all = BTreeMap::new();
    for s in (0..WRITERS).map(own).chain([SHARED.to_owned()]) {
        let h = history(&http, &base, &token, &s).await;
        all.insert(s, h);
    }
    let latest: BTreeMap<String, u64> = all
        .iter()
        .map(|(s, h)| (s.clone(), h.len() as u64))
        .collect();
    observer.wait_for(&latest, 120).await;
    follower.wait_for(latest[&own(0)], 120).await;
    let summary = {
        let seen = observer.seen.lock().unwrap();
        // The observer's own link never breaks, so every version must reach it, in order.
        check(&all, &log, &seen, true)
    };
    let applied = check_follower(&follower, &all[&own(0)]);
    healed_in.sort();
    let median = healed_in
        .get(healed_in.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = healed_in.last().copied().unwrap_or_default();
    eprintln!(
        "partition harness: {rounds} partitions, {} writes acknowledged, lost {}, {} versions \
         delivered in order ({} envelopes, {} sent again), client applied {applied} configs in \
         order; convergence after a heal: median {:.2} s, max {:.2} s",
        summary.acknowledged,
        summary.lost,
        summary.versions,
        summary.deliveries,
        summary.redelivered,
        median.as_secs_f64(),
        max.as_secs_f64(),
    );
    follower.client.shutdown().await;
    assert!(running.alive(), "the manager is still running");
}
