//! Schema registrations racing config writes and reads: afterwards every cache — the config
//! reads, the schema writes are validated against, the search index — agrees with the store.

use std::time::{Duration, Instant};

use dials_server::ServerSettings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

const SERVICES: usize = 3;

/// Two schemas that differ in a default and in what they accept: `level` 7 fits the first only.
fn schema(variant: usize) -> Value {
    let (voice, max) = if variant == 0 {
        ("amy", 10)
    } else {
        ("bob", 5)
    };
    json!({
        "type": "object",
        "properties": {
            "voice": {"type": "string", "default": voice},
            "level": {"type": "integer", "minimum": 0, "maximum": max, "default": 1},
        }
    })
}

async fn put_schema(app: &TestApp, service: &str, variant: usize) -> StatusCode {
    app.req(Method::PUT, &format!("/api/v1/services/{service}/schema"))
        .json(&schema(variant))
        .send()
        .await
        .unwrap()
        .status()
}

/// What a client sees of every service: its config read and its search results.
async fn observed(app: &TestApp) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for i in 0..SERVICES {
        let config = app.get_json(&format!("/api/v1/services/s{i}/config")).await;
        let search = app
            .get_json(&format!("/api/v1/search?q=&service=s{i}&limit=100"))
            .await;
        out.push((
            json!({"version": config["version"], "config": config["config"]}),
            search["items"].clone(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_changes_racing_writes_and_reads_leave_every_cache_agreeing_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let app = std::sync::Arc::new(spawn_with(ServerSettings::local(&data)).await);
    for i in 0..SERVICES {
        assert_eq!(put_schema(&app, &format!("s{i}"), 0).await, StatusCode::OK);
        app.create(&format!("s{i}"), json!({"level": 2})).await;
    }

    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for i in 0..SERVICES {
        let service = format!("s{i}");
        // Schema registrations, alternating.
        let (a, s) = (app.clone(), service.clone());
        tasks.push(tokio::spawn(async move {
            let mut variant = 1;
            while Instant::now() < until {
                let status = put_schema(&a, &s, variant).await;
                // A schema the stored document does not fit is refused (409): that is fine.
                assert!(
                    status == StatusCode::OK || status == StatusCode::CONFLICT,
                    "{status}"
                );
                variant = 1 - variant;
            }
        }));
        // Config writes, some valid under one schema only.
        let (a, s) = (app.clone(), service.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                let r = a.put_config(&s, json!({"config": {"level": n % 8}})).await;
                assert!(
                    r.status() == StatusCode::OK || r.status() == StatusCode::UNPROCESSABLE_ENTITY,
                    "{}",
                    r.status()
                );
            }
        }));
        // Readers of configs and search.
        let (a, s) = (app.clone(), service);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                assert_eq!(a.get_config(&s).await.status(), StatusCode::OK);
                a.get_json(&format!("/api/v1/search?q=level&service={s}"))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // The schema each service really has, from the store's point of view after a restart.
    let cached = observed(&app).await;
    // Validation follows the schema in force: level 7 fits schema 0 only.
    let mut accepts_seven = Vec::new();
    for i in 0..SERVICES {
        let r = app
            .req(Method::POST, &format!("/api/v1/services/s{i}/validate"))
            .json(&json!({"config": {"level": 7}}))
            .send()
            .await
            .unwrap();
        let verdict: Value = r.json().await.unwrap();
        accepts_seven.push(verdict["valid"].as_bool().unwrap());
    }
    let app = std::sync::Arc::try_unwrap(app)
        .ok()
        .expect("every task is done");
    let dir_kept = app.stop().await;
    assert!(dir_kept.is_none());

    let fresh = spawn_with(ServerSettings::local(&data)).await;
    assert_eq!(
        observed(&fresh).await,
        cached,
        "reads and search served from memory match a fresh read of the store"
    );
    for (i, accepted) in accepts_seven.into_iter().enumerate() {
        let stored = fresh
            .get_json(&format!("/api/v1/services/s{i}/schema"))
            .await;
        let max = stored["schema"]["properties"]["level"]["maximum"]
            .as_u64()
            .unwrap();
        assert_eq!(
            accepted,
            max == 10,
            "s{i} was validated against the schema the store holds"
        );
    }
    fresh.stop().await;
}
