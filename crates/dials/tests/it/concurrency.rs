//! Many writers at once against the real binary: no server error, no lost update.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::process::{admin_token, create, start};

/// What one writer saw: the versions its 200s named, with the value each wrote.
type Acknowledged = Arc<Mutex<Vec<(String, u64, u64)>>>;

/// Writes `{counter: n, writer: id}` to `service` until `until`, PATCH and PUT by turns,
/// recording every acknowledged version; returns the count of answers by status.
async fn writer(
    client: reqwest::Client,
    base: String,
    token: String,
    service: String,
    id: u64,
    until: Instant,
    acknowledged: Acknowledged,
) -> BTreeMap<u16, u64> {
    let mut statuses = BTreeMap::new();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let value = id * 1_000_000 + n;
        let url = format!("{base}/api/v1/services/{service}/config");
        let body = json!({"config": {"counter": value, "writer": id}});
        let request = if n.is_multiple_of(2) {
            client.patch(&url)
        } else {
            client.put(&url)
        };
        let r = request
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status == 200 {
            let answer: Value = r.json().await.unwrap();
            assert_eq!(
                answer["config"]["counter"], value,
                "the answer shows the write"
            );
            let version = answer["version"].as_u64().unwrap();
            acknowledged
                .lock()
                .await
                .push((service.clone(), version, value));
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_to_own_and_shared_services_get_no_server_error_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let client = reqwest::Client::new();
    create(
        &client,
        &base,
        &token,
        "shared",
        json!({"counter": 0, "writer": -1}),
    )
    .await;
    for i in 0..16 {
        create(
            &client,
            &base,
            &token,
            &format!("own-{i}"),
            json!({"counter": 0, "writer": -1}),
        )
        .await;
    }

    let until = Instant::now() + Duration::from_secs(4);
    let acknowledged: Acknowledged = Arc::default();
    let mut writers = Vec::new();
    for id in 0..32u64 {
        // Half write their own service, half all write one shared service.
        let service = if id < 16 {
            format!("own-{id}")
        } else {
            "shared".to_owned()
        };
        writers.push(tokio::spawn(writer(
            client.clone(),
            base.clone(),
            token.clone(),
            service,
            id,
            until,
            acknowledged.clone(),
        )));
    }
    let mut statuses = BTreeMap::<u16, u64>::new();
    for w in writers {
        for (status, n) in w.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    let ok = statuses.get(&200).copied().unwrap_or(0);
    assert!(ok > 100, "the writers got through: {statuses:?}");
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        vec![200],
        "every write without a precondition lands: {statuses:?}"
    );

    // Every acknowledged write is a version of its service, holding the value it wrote, and
    // no version was handed out twice.
    let acknowledged = acknowledged.lock().await;
    let mut seen = std::collections::HashSet::new();
    let mut by_service = BTreeMap::<&str, Vec<(u64, u64)>>::new();
    for (service, version, value) in acknowledged.iter() {
        assert!(
            seen.insert((service.as_str(), *version)),
            "{service} version {version} acknowledged twice"
        );
        by_service
            .entry(service)
            .or_default()
            .push((*version, *value));
    }
    for (service, writes) in by_service {
        for (version, value) in writes {
            let r = client
                .get(format!(
                    "{base}/api/v1/services/{service}/versions/{version}"
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let stored: Value = r.json().await.unwrap();
            assert_eq!(
                stored["config"]["counter"], value,
                "{service} version {version} holds what was acknowledged"
            );
        }
    }
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_if_match_under_contention_is_412_never_500() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let client = reqwest::Client::new();
    create(
        &client,
        &base,
        &token,
        "contested",
        json!({"counter": 0, "writer": -1}),
    )
    .await;
    let mut tasks = Vec::new();
    for id in 0..16u64 {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::<u16, u64>::new();
            for n in 0..20u64 {
                // Everyone pins version 1..: most pins are stale by the time they land.
                let r = client
                    .patch(format!("{base}/api/v1/services/contested/config"))
                    .bearer_auth(&token)
                    .header("If-Match", format!("\"{}\"", 1 + n))
                    .json(&json!({"config": {"counter": id * 100 + n}}))
                    .send()
                    .await
                    .unwrap();
                *statuses.entry(r.status().as_u16()).or_default() += 1;
            }
            statuses
        }));
    }
    let mut statuses = BTreeMap::<u16, u64>::new();
    for t in tasks {
        for (status, n) in t.await.unwrap() {
            *statuses.entry(status).or_default() += n;
        }
    }
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 412),
        "{statuses:?}"
    );
    assert!(statuses.get(&412).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    drop(running);
}
