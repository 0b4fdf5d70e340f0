//! A failing disk and a vanished database, on the real binary: clear answers, nothing lost,
//! recovery without a restart where recovery is possible.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::disk::SmallDisk;
use crate::process::{admin_token, create, run_to_exit, start, start_with};

async fn status(client: &reqwest::Client, base: &str, token: &str) -> Value {
    client
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

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

    // The data directory shows an earlier life: no silent new database, epoch and token.
    let token_before = admin_token(&data);
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
