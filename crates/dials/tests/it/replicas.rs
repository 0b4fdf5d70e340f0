//! Several `dials serve` replicas on one PostgreSQL database and one real Mosquitto, written
//! through all at once: one is killed (SIGKILL) in the middle, and nothing acknowledged is
//! lost, no version is reused, the acknowledged writes of each service are linearizable, every
//! version reaches MQTT in order from whichever replica publishes, and the survivors' watch
//! streams miss nothing. Also: what one replica changes, the others show at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::broker::Mosquitto;
use crate::harness::{
    Ack, Observer, Rng, SHARED, Writers, check, create_services, history, own, public_key,
};
use crate::process::{Running, admin_token, start_with, status};
use crate::throwaway::ThrowawayDb;

const WRITERS: usize = 6;

/// Starts a replica on `db` in `data`, with the keys of the first replica's data directory
/// (`keys_from`), as an operator copies them to every replica.
async fn replica(data: &Path, db: &ThrowawayDb, mqtt: &str, keys_from: Option<&Path>) -> Running {
    if let Some(first) = keys_from {
        let keys = data.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for entry in std::fs::read_dir(first.join("keys")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), keys.join(entry.file_name())).unwrap();
        }
    }
    start_with(data, &["--database", db.url(), "--mqtt", mqtt]).await
}

/// Waits until exactly one of `bases` says it publishes, and answers which.
async fn publishing(http: &reqwest::Client, bases: &[String], token: &str, secs: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut leaders = Vec::new();
        for (i, base) in bases.iter().enumerate() {
            if status(http, base, token).await["replica"]["publishing"] == json!(true) {
                leaders.push(i);
            }
        }
        if let [one] = leaders[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no single replica publishes after {secs} s: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A watch stream on one replica: the revisions of the changes it sends, in order.
struct Watch {
    revisions: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    async fn start(base: &str, token: &str, since: u64) -> Watch {
        let mut response = reqwest::Client::new()
            .get(format!("{base}/api/v1/watch?since={since}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let revisions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = revisions.clone();
        let task = tokio::spawn(async move {
            let mut text = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    if let Some(id) = event
                        .lines()
                        .find_map(|l| l.strip_prefix("id:"))
                        .and_then(|id| id.trim().parse().ok())
                    {
                        seen.lock().unwrap().push(id);
                    }
                }
            }
        });
        Watch { revisions, task }
    }

    async fn wait_for(&self, revision: u64, secs: u64) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.revisions.lock().unwrap().clone();
            if seen.last().is_some_and(|&r| r >= revision) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "the watch stream reached revision {:?}, not {revision}, after {secs} s",
                seen.last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every acknowledged write of one service is consistent with one total order: the order of
/// versions. A write answered before another was sent has the lower version, and a write made
/// with `If-Match: v` became version v + 1. (Versions unique and every one in the history with
/// its value: [`check`].)
fn check_linearizable(acks: &[Ack]) -> usize {
    let mut by_service: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for ack in acks {
        by_service.entry(&ack.service).or_default().push(ack);
        if let Some(named) = ack.if_match {
            assert_eq!(
                ack.version,
                named + 1,
                "a write with If-Match {named} became version {} of {}",
                ack.version,
                ack.service
            );
        }
    }
    let mut pairs = 0;
    for (service, mut acks) in by_service {
        acks.sort_by_key(|a| a.version);
        // Walking down the versions, the earliest answer among the higher versions must not
        // come before this write was sent.
        let mut earliest_later: Option<&Ack> = None;
        for ack in acks.iter().rev() {
            if let Some(later) = earliest_later {
                assert!(
                    later.answered >= ack.invoked,
                    "{service}: version {} was answered before version {} was sent",
                    later.version,
                    ack.version
                );
                pairs += 1;
            }
            if earliest_later.is_none_or(|l| ack.answered < l.answered) {
                earliest_later = Some(ack);
            }
        }
    }
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_three_on_one_postgres_lose_nothing_when_the_publishing_one_is_killed() {
    let db = ThrowawayDb::create().await;
    let broker = Mosquitto::start().await;
    let mqtt = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<_> = (0..3).map(|i| dir.path().join(format!("r{i}"))).collect();
    let first = replica(&data[0], &db, &mqtt, None).await;
    let token = admin_token(&data[0]);
    let mut running = vec![Some(first)];
    for path in &data[1..] {
        running.push(Some(replica(path, &db, &mqtt, Some(&data[0])).await));
    }
    let bases: Vec<String> = running
        .iter()
        .map(|r| r.as_ref().unwrap().base.clone())
        .collect();
    let http = reqwest::Client::new();
    let key = public_key(&http, &bases[0]).await;
    for base in &bases[1..] {
        assert_eq!(public_key(&http, base).await, key, "one signing key");
    }
    let observer = Observer::start(broker.addr(), &key).await;
    create_services(&http, &bases[1], &token, WRITERS).await;
    let leader = publishing(&http, &bases, &token, 20).await;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let since = status(&http, &bases[survivors[0]], &token).await["revision"]
        .as_u64()
        .unwrap();
    let mut watches = Vec::new();
    for &i in &survivors {
        watches.push(Watch::start(&bases[i], &token, since).await);
    }

    // Writers spread over the three replicas, each to its own service and all to one shared
    // service (a third of their writes, half of them with If-Match).
    let mut rng = Rng::seeded();
    let writers = Writers::start_across(WRITERS, &bases, &token, Duration::ZERO, &mut rng);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = writers.acknowledged();
    let mut dead = running[leader].take().unwrap();
    dead.child.start_kill().expect("SIGKILL");
    let killed = Instant::now();
    dead.child.wait().await.unwrap();
    // Another replica takes the publisher's lease over once it expires.
    let survivor_bases: Vec<String> = survivors.iter().map(|&i| bases[i].clone()).collect();
    let new_leader = survivors[publishing(&http, &survivor_bases, &token, 30).await];
    let takeover = killed.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = writers.stop().await;

    let mut histories = BTreeMap::new();
    for s in (0..WRITERS).map(own).chain([SHARED.to_owned()]) {
        let h = history(&http, &bases[new_leader], &token, &s).await;
        histories.insert(s, h);
    }
    let latest: BTreeMap<String, u64> = histories
        .iter()
        .map(|(s, h)| (s.clone(), h.len() as u64))
        .collect();
    observer.wait_for(&latest, 30).await;
    let delivered = killed.elapsed();
    let summary = {
        let seen = observer.seen.lock().unwrap();
        check(&histories, &log, &seen, true)
    };
    let pairs = check_linearizable(&log.acks);

    // The survivors' watch streams: every revision after `since`, once, in order.
    let last = status(&http, &bases[new_leader], &token).await["revision"]
        .as_u64()
        .unwrap();
    for watch in &watches {
        let revisions = watch.wait_for(last, 20).await;
        let expected: Vec<u64> = (since + 1..=last).collect();
        assert_eq!(revisions, expected, "a watch stream on a survivor");
    }
    for &i in &survivors {
        let s = status(&http, &bases[i], &token).await;
        assert_eq!(s["outbox_backlog"], 0, "{s}");
        assert_eq!(s["replica"]["followed_revision"], json!(last), "{s}");
    }
    eprintln!(
        "replicas: 3 on one PostgreSQL, {} writes acknowledged ({before_kill} before the kill), \
         lost {}, {} unanswered, {} refused by If-Match, {} versions; {pairs} ordered pairs \
         linearizable; publisher taken over {:.1} s after the kill, everything delivered in \
         order {:.1} s after it ({} envelopes, {} sent again); watch streams complete to \
         revision {last}",
        summary.acknowledged,
        summary.lost,
        log.unanswered,
        log.refused,
        summary.versions,
        takeover.as_secs_f64(),
        delivered.as_secs_f64(),
        summary.deliveries,
        summary.redelivered,
    );
    assert!(summary.acknowledged > 0, "no write was acknowledged");
    assert!(
        takeover < Duration::from_secs(10),
        "the publisher was taken over after {takeover:?}"
    );
}

#[tokio::test]
async fn replicas_show_what_another_one_changed() {
    let db = ThrowawayDb::create().await;
    let broker = Mosquitto::start().await;
    let mqtt = broker.url();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = replica(&a_dir, &db, &mqtt, None).await;
    let b = replica(&b_dir, &db, &mqtt, Some(&a_dir)).await;
    let token = admin_token(&a_dir);
    let http = reqwest::Client::new();
    let get = |base: &str, service: &str| {
        http.get(format!("{base}/api/v1/services/{service}/config"))
            .bearer_auth(&token)
            .send()
    };
    let eventually = |what: &'static str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        move || {
            assert!(Instant::now() < deadline, "{what} within 5 s");
        }
    };

    // B has read the service (so caches it) before A writes it again.
    crate::process::create(&http, &a.base, &token, "tts", json!({"voice": "amy"})).await;
    let watch = Watch::start(&b.base, &token, 0).await;
    let first: Value = get(&b.base, "tts").await.unwrap().json().await.unwrap();
    assert_eq!(first["version"], 1);
    let r = http
        .put(format!("{}/api/v1/services/tts/config", a.base))
        .bearer_auth(&token)
        .json(&json!({"config": {"voice": "brian"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let check = eventually("B shows A's write");
    loop {
        let now: Value = get(&b.base, "tts").await.unwrap().json().await.unwrap();
        if now["version"] == 2 {
            assert_eq!(now["config"], json!({"voice": "brian"}));
            break;
        }
        check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B's watch stream carries both of A's changes.
    assert_eq!(watch.wait_for(2, 5).await, vec![1, 2]);

    // A schema registered on A: B validates with it and shows its defaults.
    let r = http
        .put(format!("{}/api/v1/services/tts/schema", a.base))
        .bearer_auth(&token)
        .json(&json!({
            "type": "object",
            "properties": {
                "voice": {"type": "string"},
                "rate": {"type": "number", "default": 1.0, "maximum": 4}
            }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let check = eventually("B takes A's schema");
    loop {
        let now: Value = get(&b.base, "tts").await.unwrap().json().await.unwrap();
        if now["config"]["rate"] == json!(1.0) {
            break;
        }
        check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = http
        .patch(format!("{}/api/v1/services/tts/config", b.base))
        .bearer_auth(&token)
        .json(&json!({"config": {"rate": 9}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A token revoked on A stops working on B, which had accepted it.
    let r: Value = http
        .post(format!("{}/api/v1/tokens", a.base))
        .bearer_auth(&token)
        .json(&json!({"name": "temp", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (temp, id) = (
        r["token"].as_str().unwrap().to_owned(),
        r["id"].as_str().unwrap().to_owned(),
    );
    let viewer_get = |base: String| {
        http.get(format!("{base}/api/v1/services/tts/config"))
            .bearer_auth(temp.clone())
            .send()
    };
    assert_eq!(
        viewer_get(b.base.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    let r = http
        .delete(format!("{}/api/v1/tokens/{id}", a.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let check = eventually("B refuses the revoked token");
    while viewer_get(b.base.clone()).await.unwrap().status() != StatusCode::UNAUTHORIZED {
        check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One of them publishes; the other says it stands by.
    let leader = publishing(&http, &[a.base.clone(), b.base.clone()], &token, 10).await;
    let (sa, sb) = (
        status(&http, &a.base, &token).await,
        status(&http, &b.base, &token).await,
    );
    assert_eq!(sa["replica"]["shared"], true);
    assert_ne!(
        sa["replica"]["publishing"], sb["replica"]["publishing"],
        "{sa}\n{sb}"
    );
    assert_ne!(sa["replica"]["id"], sb["replica"]["id"]);

    // The publishing one stops cleanly: it gives the lease up, and the other publishes at its
    // next try rather than after the lease would have expired.
    let (stopping, other) = if leader == 0 { (a, b) } else { (b, a) };
    let (exit, _) = stopping.signal("TERM").await;
    assert!(exit.success(), "{exit:?}");
    let stopped = Instant::now();
    publishing(&http, std::slice::from_ref(&other.base), &token, 10).await;
    assert!(
        stopped.elapsed() < crate::harness::LEASE_HANDOVER,
        "the other replica took {:?} to publish",
        stopped.elapsed()
    );
    drop(other);
}
