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
