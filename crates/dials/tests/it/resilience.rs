//! A failing disk and a vanished database, on the real binary: clear answers, nothing lost,
//! recovery without a restart where recovery is possible.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::broker::{Mosquitto, Subscriber};
use crate::disk::SmallDisk;
use crate::process::{admin_token, create, run_to_exit, start, start_with, status};

#[tokio::test]
async fn a_full_disk_is_503_with_retry_after_and_writes_resume_by_themselves() {
    let disk = SmallDisk::mount(6);
    let data = disk.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/services/tts-worker/config", running.base);
    create(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"n": 0}),
    )
    .await;
    let filler = disk.fill();

    let blob = "x".repeat(100 * 1024);
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut last_ok = 0;
    for n in 1..=30 {
        let r = client
            .put(&url)
            .bearer_auth(&token)
            .json(&json!({"config": {"n": n, "blob": blob}}))
            .send()
            .await
            .unwrap();
        *statuses.entry(r.status().as_u16()).or_default() += 1;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                r.headers().contains_key("retry-after"),
                "503 says when to retry"
            );
        } else {
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
            last_ok = n;
        }
    }
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "the disk filled up: {statuses:?}"
    );
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["database"]["ok"], false, "{shown}");
    assert!(
        shown["database"]["error"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{shown}"
    );
    // What was acknowledged is what is read.
    let current: Value = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["config"]["n"], last_ok);

    // Space returns: the next write lands, no restart.
    std::fs::remove_file(filler).unwrap();
    let r = client
        .put(&url)
        .bearer_auth(&token)
        .json(&json!({"config": {"n": 1000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["database"]["ok"], true, "{shown}");
    assert_eq!(shown["mode"], "normal");
    let (exit, _) = running.signal("TERM").await;
    assert!(exit.success());
}

#[tokio::test]
async fn a_deleted_database_refuses_writes_while_running_and_the_next_start_without_init() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/services/router/config", running.base);
    create(&client, &running.base, &token, "router", json!({"a": 1})).await;
    snapshot_holding(&data, "router").await;

    for name in ["dials.db", "dials.db-wal", "dials.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let r = client
        .put(&url)
        .bearer_auth(&token)
        .json(&json!({"config": {"a": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a write into a deleted file would be lost"
    );
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert_eq!(shown["database"]["ok"], false);
    assert!(
        shown["database"]["error"]
            .as_str()
            .unwrap()
            .contains("gone"),
        "{shown}"
    );
    // Reads go on from what the manager holds.
    let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (exit, _) = running.signal("TERM").await;
    assert!(exit.success());

    // The data directory shows an earlier life: no silent new database, epoch and token. With
    // the snapshot it serves what it had, read-only.
    let token_before = admin_token(&data);
    let again = start(&data).await;
    let shown = status(&client, &again.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert!(
        shown["database"]["error"]
            .as_str()
            .unwrap()
            .contains("--init"),
        "{shown}"
    );
    let read: Value = client
        .get(format!("{}/api/v1/services/router/config", again.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["config"]["a"], 1, "{read}");
    let (exit, stderr) = again.signal("TERM").await;
    assert!(exit.success(), "{stderr}");
    assert!(!data.join("dials.db").exists(), "no new database was made");

    // Without the snapshot, it refuses in one line.
    std::fs::remove_file(data.join("dials.snapshot")).unwrap();
    let (code, stderr) = run_to_exit(&data, &["--http", "127.0.0.1:0"], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--init"), "{stderr}");
    assert!(stderr.contains("dials.db"), "{stderr}");
    assert_eq!(
        admin_token(&data),
        token_before,
        "the admin token is untouched"
    );

    // Told explicitly, it starts afresh.
    let again = start_with(&data, &["--init"]).await;
    let r = reqwest::get(format!("{}/health", again.base))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(again);
}

#[tokio::test]
async fn a_fresh_data_dir_needs_no_init() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(&dir.path().join("new")).await;
    let r = reqwest::get(format!("{}/health", running.base))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Waits until the manager's snapshot holds `needle` (it is written off the request path).
async fn snapshot_holding(data: &std::path::Path, needle: &str) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            if let Ok(text) = std::fs::read_to_string(data.join("dials.snapshot"))
                && text.contains(needle)
            {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the snapshot was written")
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    service: &str,
    config: Value,
) -> reqwest::Response {
    client
        .put(format!("{base}/api/v1/services/{service}/config"))
        .bearer_auth(token)
        .json(&json!({ "config": config }))
        .send()
        .await
        .unwrap()
}

async fn get_config(client: &reqwest::Client, base: &str, token: &str, service: &str) -> Value {
    let r = client
        .get(format!("{base}/api/v1/services/{service}/config"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// A write refused in read-only mode: 503, Retry-After, problem+json naming the cause.
async fn refused(response: reqwest::Response, cause: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:dials:problem:read-only", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains(cause),
        "the cause is named: {problem}"
    );
}

/// The next retained health whose mode is `mode`.
async fn health_in(health: &mut Subscriber, mode: &str) -> Value {
    loop {
        let message = health.next(60).await.json();
        if message["mode"] == mode {
            return message;
        }
    }
}

#[tokio::test]
async fn an_unreadable_database_turns_the_manager_read_only_and_back_by_itself() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = broker.url();
    let running = start_with(&data, &["--mqtt", &url]).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "router", json!({"a": 1})).await;
    snapshot_holding(&data, "router").await;
    let mut health = Subscriber::connect(broker.addr(), "system/health/config-manager").await;
    health_in(&mut health, "normal").await;

    let db = data.join("dials.db");
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert!(
        shown["database"]["error"]
            .as_str()
            .unwrap()
            .contains("mode 0"),
        "{shown}"
    );
    let told = health_in(&mut health, "read-only").await;
    assert_eq!(told["ok"], false, "{told}");
    assert!(told["database"]["error"].is_string(), "{told}");
    // Reads go on; writes are refused, saying why.
    assert_eq!(
        get_config(&client, &running.base, &token, "router").await["config"]["a"],
        1
    );
    refused(
        put(&client, &running.base, &token, "router", json!({"a": 2})).await,
        "mode 0",
    )
    .await;

    // Repaired: back to normal without a restart.
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "normal", "{shown}");
    health_in(&mut health, "normal").await;
    let r = put(&client, &running.base, &token, "router", json!({"a": 3})).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(
        get_config(&client, &running.base, &token, "router").await["config"]["a"],
        3
    );
    let (exit, _) = running.signal("TERM").await;
    assert!(exit.success());
}

#[tokio::test]
async fn a_database_corrupted_or_deleted_while_running_is_served_read_only_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "router", json!({"a": 1})).await;
    snapshot_holding(&data, "router").await;
    let files: Vec<_> = ["dials.db", "dials.db-wal"]
        .iter()
        .map(|name| (data.join(name), std::fs::read(data.join(name)).unwrap()))
        .collect();

    // Overwritten in place with junk.
    std::fs::write(&files[0].0, vec![0x5a; 8192]).unwrap();
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert!(
        shown["database"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{shown}"
    );
    assert_eq!(
        get_config(&client, &running.base, &token, "router").await["config"]["a"],
        1
    );
    refused(
        put(&client, &running.base, &token, "router", json!({"a": 2})).await,
        "cannot read",
    )
    .await;
    std::fs::write(&files[0].0, &files[0].1).unwrap();
    assert_eq!(
        status(&client, &running.base, &token).await["mode"],
        "normal"
    );
    let r = put(&client, &running.base, &token, "router", json!({"a": 3})).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // Deleted, then put back: a new file, opened again without a restart.
    let files: Vec<_> = ["dials.db", "dials.db-wal"]
        .iter()
        .map(|name| (data.join(name), std::fs::read(data.join(name)).unwrap()))
        .collect();
    for name in ["dials.db", "dials.db-wal", "dials.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert_eq!(
        get_config(&client, &running.base, &token, "router").await["config"]["a"],
        3
    );
    refused(
        put(&client, &running.base, &token, "router", json!({"a": 4})).await,
        "gone",
    )
    .await;
    for (path, bytes) in &files {
        std::fs::write(path, bytes).unwrap();
    }
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "normal", "{shown}");
    let r = put(&client, &running.base, &token, "router", json!({"a": 5})).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(
        get_config(&client, &running.base, &token, "router").await["version"],
        3
    );
    let (exit, _) = running.signal("TERM").await;
    assert!(exit.success());
}

#[tokio::test]
async fn a_corrupt_database_at_start_is_served_read_only_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "router", json!({"a": 7})).await;
    let snapshot = snapshot_holding(&data, "router").await;
    assert!(!snapshot.contains(&token), "never a token in the snapshot");
    let (exit, _) = running.signal("TERM").await;
    assert!(exit.success());

    std::fs::write(data.join("dials.db"), vec![0x5a; 8192]).unwrap();
    for name in ["dials.db-wal", "dials.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let running = start(&data).await;
    let shown = status(&client, &running.base, &token).await;
    assert_eq!(shown["mode"], "read-only", "{shown}");
    assert_eq!(shown["revision"], 1, "{shown}");
    let read = get_config(&client, &running.base, &token, "router").await;
    assert_eq!(read["config"]["a"], 7, "{read}");
    refused(
        put(&client, &running.base, &token, "router", json!({"a": 8})).await,
        "dials.db",
    )
    .await;
    let (exit, stderr) = running.signal("TERM").await;
    assert!(exit.success());
    assert!(stderr.contains("READ-ONLY"), "{stderr}");

    // A snapshot changed by hand is refused, loudly.
    let tampered = std::fs::read_to_string(data.join("dials.snapshot"))
        .unwrap()
        .replace("\"a\":7", "\"a\":9");
    std::fs::write(data.join("dials.snapshot"), tampered).unwrap();
    let (code, stderr) = run_to_exit(&data, &["--http", "127.0.0.1:0"], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("signature does not verify"), "{stderr}");
}
