//! The SSE change stream: replay from a revision, then live, gap-free and resumable.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};

/// Reads SSE `change` events from a response until `count` arrived.
pub(crate) async fn read_events(response: reqwest::Response, count: usize) -> Vec<(u64, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<u64>().ok();
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str::<Value>(v.trim()).ok();
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events
}

pub(crate) async fn watch(app: &TestApp, query: &str) -> reqwest::Response {
    let r = app
        .req(Method::GET, &format!("/api/v1/watch{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r
}

#[tokio::test]
async fn a_watch_replays_from_a_revision_then_follows_live_changes() {
    let app = spawn_app().await;
    app.create("router", json!({"n": 1})).await;
    app.put_config("router", json!({"config": {"n": 2}})).await;
    app.create("tts-worker", json!({"voice": "amy"})).await;
    let stream = watch(&app, "?since=1").await;
    app.put_config("router", json!({"config": {"n": 3}})).await;
    let events = read_events(stream, 3).await;
    let got: Vec<_> = events
        .iter()
        .map(|(id, e)| {
            (
                *id,
                e["service"].as_str().unwrap().to_owned(),
                e["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "router".to_owned(), 2),
            (3, "tts-worker".to_owned(), 1),
            (4, "router".to_owned(), 3)
        ]
    );
    assert_eq!(events[2].1["config"], json!({"n": 3}));
    assert_eq!(events[2].1["kind"], "put");
}

#[tokio::test]
async fn a_reconnecting_watcher_resumes_after_its_last_event_id() {
    let app = spawn_app().await;
    app.create("router", json!({"n": 1})).await;
    let first = read_events(watch(&app, "?since=0").await, 1).await;
    assert_eq!(first[0].0, 1);
    // While disconnected, more changes happen.
    for n in 2..=4 {
        app.put_config("router", json!({"config": {"n": n}})).await;
    }
    let resumed = app
        .req(Method::GET, "/api/v1/watch")
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    let events = read_events(resumed, 3).await;
    assert_eq!(
        events.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [2, 3, 4]
    );
}

#[tokio::test]
async fn a_watch_can_follow_one_service_and_many_concurrent_writes_arrive_gap_free() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.create("router", json!({"n": 0})).await;
    app.create("other", json!({"n": 0})).await;
    let all = watch(&app, "").await;
    let only_router = watch(&app, "?service=router").await;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let service = if w == 0 { "router" } else { "other" };
                for n in 1..=15 {
                    app.patch_config(service, json!({"config": {"n": n}})).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let events = read_events(all, 30).await;
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (3..=32).collect::<Vec<u64>>(),
        "every revision once, in order"
    );
    let routed = read_events(only_router, 15).await;
    assert!(routed.iter().all(|(_, e)| e["service"] == "router"));
    assert_eq!(routed.last().unwrap().1["version"], 16);
}

#[tokio::test]
async fn a_bad_watch_request_is_400() {
    let app = spawn_app().await;
    problem(
        app.req(Method::GET, "/api/v1/watch?since=x")
            .send()
            .await
            .unwrap(),
        reqwest::StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        app.req(Method::GET, "/api/v1/watch?service=Bad!")
            .send()
            .await
            .unwrap(),
        reqwest::StatusCode::BAD_REQUEST,
    )
    .await;
    let r = app
        .req(Method::GET, "/api/v1/watch")
        .header("Last-Event-ID", "abc")
        .send()
        .await
        .unwrap();
    problem(r, reqwest::StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn an_open_stream_ends_when_the_server_stops_instead_of_holding_it_up() {
    let app = spawn_app().await;
    app.create("router", json!({"a": 1})).await;
    let response = app
        .req(Method::GET, "/api/v1/watch?since=0")
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the replayed change")
        .expect("stream open");
    assert!(first.is_ok());
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("a graceful stop does not wait on the open stream");
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the client sees its stream end");
}

#[tokio::test]
async fn a_future_revision_is_refused_and_every_event_names_the_epoch() {
    let app = spawn_app().await;
    app.create("router", json!({"n": 1})).await;
    for query in ["?since=2", "?since=18446744073709551615"] {
        let r = app
            .req(Method::GET, &format!("/api/v1/watch{query}"))
            .send()
            .await
            .unwrap();
        let body = problem(r, reqwest::StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("future revision"),
            "{body}"
        );
    }
    let r = app
        .req(Method::GET, "/api/v1/watch")
        .header("Last-Event-ID", "99")
        .send()
        .await
        .unwrap();
    problem(r, reqwest::StatusCode::BAD_REQUEST).await;

    let epoch = app.get_json("/api/v1/status").await["epoch"].clone();
    // The latest revision itself is fine: nothing to replay, live from there.
    let stream = watch(&app, "?since=1").await;
    app.put_config("router", json!({"config": {"n": 2}})).await;
    let events = read_events(stream, 1).await;
    assert_eq!(events[0].1["epoch"], epoch);
    let replayed = read_events(watch(&app, "?since=0").await, 2).await;
    assert!(replayed.iter().all(|(_, e)| e["epoch"] == epoch));
}
