//! Hostile input against the real binary: junk requests, half-open and slow connections, a
//! watcher that stops reading. The server answers every one without a 5xx, stays up, and its
//! memory stays bounded (measured from /proc).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{admin_token, create, start, start_with_file_limit};

const MIB: u64 = 1024 * 1024;

fn authority(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Sends raw bytes on a fresh connection and returns the status code of the answer.
async fn raw(base: &str, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(authority(base)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"))
}

#[tokio::test]
async fn junk_requests_get_4xx_never_5xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path()).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let client = reqwest::Client::new();
    let config = format!("{base}/api/v1/services/router/config");
    create(&client, &base, &token, "router", json!({"a": 1})).await;

    let deep = format!(
        "{{\"config\": {{\"a\": {}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let deep_objects = format!(
        "{{\"config\": {}1{}}}",
        "{\"a\": ".repeat(5_000),
        "}".repeat(5_000)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("deep arrays", deep.into_bytes()),
        ("deep objects", deep_objects.into_bytes()),
        (
            "huge integer",
            br#"{"config": {"a": 1e999999, "b": 99999999999999999999999999}}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"config\": {\"a\": \"\xff\xfe\"}}".to_vec(),
        ),
        ("raw NUL", b"{\"config\": {\"a\": 1}}\0".to_vec()),
        ("not JSON", b"config=a".to_vec()),
        ("a lone string", br#""config""#.to_vec()),
        ("null config", br#"{"config": null}"#.to_vec()),
        ("2 MiB", vec![b' '; 2 * 1024 * 1024]),
    ];
    let mut statuses = Vec::new();
    for (what, body) in bodies {
        for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
            let r = client
                .request(method.clone(), &config)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            statuses.push((format!("{method} {what}"), r.status().as_u16()));
        }
    }
    for path in [
        "/api/v1/services/..%2F..%2Fetc/config",
        "/api/v1/services/%00/config",
        "/api/v1/services/router/secrets/..%2F..%2Fx",
        "/api/v1/services/router/secrets/%2e%2e/%2e%2e",
        "/api/v1/services/router/versions/-1",
        "/api/v1/services/router/versions/99999999999999999999999",
        "/api/v1/services/router/diff?from=-3&to=x",
        "/api/v1/history?since=yesterday&limit=99999999",
        "/api/v1/search?q=%00%ff",
        "/api/v1/watch?since=-1",
        "/api/v1/audit?cursor=../../",
    ] {
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        statuses.push((format!("GET {path}"), r.status().as_u16()));
    }
    // Requests no client library would send.
    let host = authority(&base);
    let long_path = format!(
        "GET /api/v1/services/{} HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "a".repeat(100_000)
    );
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        "X-Junk: 1\r\n".repeat(500)
    );
    let raw_requests: Vec<(&str, Vec<u8>)> = vec![
        ("a 100 kB path", long_path.into_bytes()),
        ("500 headers", many_headers.into_bytes()),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec()),
        (
            "a bad content length",
            format!("PUT /api/v1/services/router/config HTTP/1.1\r\nHost: {host}\r\nContent-Length: -5\r\n\r\n")
                .into_bytes(),
        ),
    ];
    for (what, request) in raw_requests {
        statuses.push((what.to_owned(), raw(&base, &request).await));
    }

    // Odd but valid documents are stored as they are (in another service).
    let odd = format!("{base}/api/v1/services/odd/config");
    for body in [
        b"{\"config\": {\"a\\u0000b\": 1}}".to_vec(),
        format!("{{\"config\": {{\"{}\": 1}}}}", "k".repeat(500_000)).into_bytes(),
    ] {
        let r = client
            .put(&odd)
            .bearer_auth(&token)
            .header("If-None-Match", "*")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push(("odd but valid".into(), r.status().as_u16()));
        let r = client
            .delete(format!("{base}/api/v1/services/odd"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }

    let server_errors: Vec<_> = statuses.iter().filter(|(_, s)| *s >= 500).collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert!(running.alive(), "the server is up");
    let current: serde_json::Value = client
        .get(&config)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current["version"], 1,
        "no junk changed anything: {statuses:?}"
    );
    assert_eq!(current["config"], json!({"a": 1}));
}

#[tokio::test]
async fn half_open_connections_beyond_the_file_limit_do_not_take_the_server_down() {
    // This process opens more connections than the server's limit allows it descriptors.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(8192),
        hard,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_with_file_limit(dir.path(), 1024).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let rss_before = running.rss();

    // 1,100 connections that never send a byte, and one whose body never arrives.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(authority(&base))).await
        {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 1000, "{} connections opened", idle.len());
    let mut stalled_body = TcpStream::connect(authority(&base)).await.unwrap();
    stalled_body
        .write_all(
            format!(
                "PUT /api/v1/services/router/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"config\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();

    // The server still answers: at once if a slot is free, else once the silent peers time out.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match client
            .get(format!("{base}/api/v1/status"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::OK);
                let status: serde_json::Value = r.json().await.unwrap();
                assert_eq!(status["database"]["ok"], true, "{status}");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "unreachable: {e}"),
        }
    }
    // Writes work too: the database still has its descriptors.
    create(&client, &base, &token, "router", json!({"a": 1})).await;

    // The body that never came is answered 408 and its connection closed.
    let mut answer = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(40),
        stalled_body.read_to_end(&mut answer),
    )
    .await
    .expect("the server gave up on the body")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // The silent connections were closed by the server.
    let reads = idle.iter_mut().take(50).map(|stream| async move {
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte).await, Ok(0))
    });
    let closed = tokio::time::timeout(Duration::from_secs(30), in_turn(reads))
        .await
        .expect("the server closed the silent connections in time");
    assert!(
        closed.iter().all(|c| *c),
        "idle connections are closed with EOF"
    );
    assert!(running.alive());
    let grown = running.rss().saturating_sub(rss_before);
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}

#[tokio::test]
async fn a_watcher_that_stops_reading_holds_bounded_memory_and_is_told_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path()).await;
    let token = admin_token(dir.path());
    let base = running.base.clone();
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/services/blob/config");
    let blob = "x".repeat(200 * 1024);
    let put = |n: u32| {
        client
            .put(&url)
            .bearer_auth(&token)
            .json(&json!({"config": {"n": n, "blob": blob}}))
            .send()
    };
    create(&client, &base, &token, "blob", json!({"n": 0})).await;

    // A watcher that reads the answer's head, then nothing.
    let mut watcher = TcpStream::connect(authority(&base)).await.unwrap();
    watcher
        .write_all(
            format!(
                "GET /api/v1/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let n = watcher.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    for n in 1..=50 {
        assert_eq!(put(n).await.unwrap().status(), StatusCode::OK);
    }
    let warm = running.rss();
    for n in 51..=350 {
        assert_eq!(put(n).await.unwrap().status(), StatusCode::OK);
    }
    let grown = running.rss().saturating_sub(warm);
    assert!(
        grown < 48 * MIB,
        "300 writes of 200 kB with a stalled watcher grew RSS by {} MiB",
        grown / MIB
    );

    // Reading again, the watcher finds what fitted, then where to resume, then the end.
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), watcher.read_to_end(&mut all))
        .await
        .expect("the stream ends")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.contains("event: lagged"),
        "{}",
        &text[text.len().saturating_sub(500)..]
    );
    assert!(text.contains("resume_from"));
    assert!(running.alive());
}

/// Awaits each future in turn (under the caller's one timeout).
async fn in_turn<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}
