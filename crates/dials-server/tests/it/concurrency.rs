//! Optimistic locking under real concurrency.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_simultaneous_writers_with_the_same_version_always_have_exactly_one_winner() {
    let app = Arc::new(spawn_app().await);
    app.create("router", json!({"writer": "none"})).await;
    for round in 1..=30u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let writer = |name: &'static str| {
            let app = app.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let request = app
                    .req(reqwest::Method::PUT, "/api/v1/services/router/config")
                    .json(&json!({"config": {"writer": name, "round": round}, "expected_version": round}));
                barrier.wait().await;
                let r = request.send().await.unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap())
            })
        };
        let (a, b) = (writer("a"), writer("b"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let winners: Vec<_> = [&a, &b]
            .into_iter()
            .filter(|(s, _)| *s == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {a:?} / {b:?}");
        let loser = if a.0 == StatusCode::OK { &b } else { &a };
        assert_eq!(loser.0, StatusCode::CONFLICT, "round {round}: {loser:?}");
        assert_eq!(loser.1["current_version"], round + 1);
        let winner = &winners[0].1;
        assert_eq!(winner["version"], round + 1);
        let stored: Value = app.get_config("router").await.json().await.unwrap();
        assert_eq!(
            stored["config"], winner["config"],
            "round {round}: the winner's document is stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_a_version_all_land() {
    let app = Arc::new(spawn_app().await);
    app.create("counter", json!({})).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let r = app
                    .patch_config("counter", json!({"config": {format!("k{i}"): i}}))
                    .await;
                r.status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let stored: Value = app.get_config("counter").await.json().await.unwrap();
    assert_eq!(stored["version"], 21, "every patch wrote its own version");
    assert_eq!(
        stored["config"].as_object().unwrap().len(),
        20,
        "no patch lost another's key"
    );
}

/// Writers of one service do not wait for each other's commits (a write is computed on top of
/// the one queued before it), yet each gets a version of its own, in the order they were
/// answered; history holds each write as answered, and a watcher sees every version in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_of_one_service_each_get_their_own_version_in_order() {
    const WRITERS: u64 = 16;
    const EACH: u64 = 10;
    let app = Arc::new(spawn_app().await);
    app.create("counter", json!({})).await;
    let events = crate::watch::watch(&app, "?service=counter").await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for i in 0..EACH {
                    // PUT and PATCH both queue; a PUT keeps nothing of the others' keys.
                    let r = if i % 3 == 2 {
                        app.put_config("counter", json!({"config": {format!("w{w}"): i}}))
                            .await
                    } else {
                        app.patch_config("counter", json!({"config": {format!("w{w}"): i}}))
                            .await
                    };
                    assert_eq!(r.status(), StatusCode::OK);
                    let body: Value = r.json().await.unwrap();
                    assert_eq!(
                        body["config"][format!("w{w}")],
                        i,
                        "the answer shows its write"
                    );
                    answered.push((body["version"].as_u64().unwrap(), body["config"].clone()));
                }
                answered
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let answered = t.await.unwrap();
        assert!(
            answered.windows(2).all(|p| p[0].0 < p[1].0),
            "one writer's writes land in its order: {:?}",
            answered.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        all.extend(answered);
    }
    all.sort_by_key(|(v, _)| *v);
    let versions: Vec<u64> = all.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (2..=1 + WRITERS * EACH).collect::<Vec<_>>(),
        "every write its own version, none reused or skipped"
    );
    for (version, config) in &all {
        let stored = app
            .get_json(&format!("/api/v1/services/counter/versions/{version}"))
            .await;
        assert_eq!(
            &stored["config"], config,
            "version {version} as it was answered"
        );
    }
    let seen = crate::watch::read_events(events, all.len()).await;
    let seen_versions: Vec<u64> = seen
        .iter()
        .map(|(_, e)| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seen_versions, versions,
        "the watcher sees every version, in order"
    );
    for ((_, event), (_, config)) in seen.iter().zip(&all) {
        assert_eq!(&event["config"], config);
    }
}
