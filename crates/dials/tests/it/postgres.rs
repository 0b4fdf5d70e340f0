//! `dials serve` on PostgreSQL: the same HTTP API over a database of its own, kept across
//! restarts; what only SQLite can do says so.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{admin_token, run_to_exit, start_with};
use crate::throwaway::ThrowawayDb;

#[tokio::test]
async fn serve_on_postgres_writes_reads_history_and_tokens_and_keeps_them_across_restarts() {
    let db = ThrowawayDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start_with(&data, &["--database", db.url()]).await;
    let token = admin_token(&data);
    let http = reqwest::Client::new();
    let base = running.base.clone();
    let url = format!("{base}/api/v1/services/tts-worker/config");

    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("If-None-Match", "*")
        .json(&json!({"config": {"voice": "amy", "rate": 1.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", "\"1\"")
        .json(&json!({"config": {"voice": "brian", "rate": 1.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // A write from a stale version is refused by the database's compare-and-swap.
    let r = http
        .put(&url)
        .bearer_auth(&token)
        .header("If-Match", "\"1\"")
        .json(&json!({"config": {"voice": "stale"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);

    let current: Value = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["version"], 2);
    assert_eq!(current["config"], json!({"voice": "brian", "rate": 1.5}));

    let history: Value = http
        .get(format!("{base}/api/v1/history?service=tts-worker&limit=10"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = history["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a history page: {history}"));
    let voices: Vec<(&Value, &Value)> = rows
        .iter()
        .filter(|r| r["key"] == "/voice")
        .map(|r| (&r["old"], &r["new"]))
        .collect();
    assert_eq!(
        voices,
        [
            (&json!("amy"), &json!("brian")),
            (&Value::Null, &json!("amy"))
        ],
        "{history}"
    );

    // A viewer token made through the API reads, and may not write.
    let viewer: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&token)
        .json(&json!({"name": "look", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let viewer = viewer["token"].as_str().unwrap().to_owned();
    let r = http.get(&url).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .put(&url)
        .bearer_auth(&viewer)
        .json(&json!({"config": {"voice": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Backups work on a SQLite file; here the answer says so instead of failing obscurely.
    let r = http
        .post(format!("{base}/api/v1/backups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("needs a SQLite database"), "{body}");

    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Everything lives in the database: a restart serves it, and the viewer token still works.
    let again = start_with(&data, &["--database", db.url()]).await;
    let current: Value = http
        .get(format!("{}/api/v1/services/tts-worker/config", again.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["version"], 2);
    let (status, stderr) = again.signal("TERM").await;
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("already exists"),
        "the schema being up to date already is not news: {stderr}"
    );
}

#[tokio::test]
async fn serve_on_a_postgres_that_does_not_answer_fails_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_to_exit(
        &dir.path().join("data"),
        &[
            "--http",
            "127.0.0.1:0",
            "--database",
            "postgres://dials:hunter2@127.0.0.1:1/dials",
        ],
        &[],
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot reach PostgreSQL at 127.0.0.1:1/dials"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never shown: {err}"
    );
}

/// A GET that must answer 200, as JSON.
async fn get_json(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn an_installation_moves_from_sqlite_to_postgres_with_its_history_secrets_and_tokens() {
    const ROTATED: &str = "sk-moved-along-7c1e";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = reqwest::Client::new();

    // A SQLite installation with the demo fleet, a secret set twice, tokens and history.
    let running = crate::process::start(&data).await;
    let admin = admin_token(&data);
    let base = running.base.clone();
    let (code, out, err) =
        crate::process::cli(&["seed", "--server", &base, "--token", &admin], &[]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = http
        .put(format!(
            "{base}/api/v1/services/llm-worker/secrets/openai_api_key"
        ))
        .bearer_auth(&admin)
        .json(&json!({"value": ROTATED, "reason": "new key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = http
        .patch(format!("{base}/api/v1/services/tts-worker/config"))
        .bearer_auth(&admin)
        .json(&json!({"config": {"volume_percent": 40}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let viewer: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "look", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let viewer = viewer["token"].as_str().unwrap().to_owned();
    let before_status = get_json(&http, &base, &admin, "/api/v1/status").await;
    let before_history = get_json(&http, &base, &admin, "/api/v1/history?limit=1000").await;
    let before_services = get_json(&http, &base, &admin, "/api/v1/services").await;
    let before_tokens = get_json(&http, &base, &admin, "/api/v1/tokens").await;
    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");

    // The move, checked, then refused a second time: the target is no longer empty.
    let db = ThrowawayDb::create().await;
    let from = format!("sqlite://{}", data.join("dials.db").display());
    let (code, out, err) = crate::process::cli(
        &["migrate-store", "--from", &from, "--to", db.url(), "--json"],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["checked"], true);
    assert_eq!(summary["epoch"], before_status["epoch"]);
    assert_eq!(summary["revision"], before_status["revision"]);
    assert_eq!(summary["copied"]["tokens"], 2, "{summary}");
    assert!(summary["copied"]["secret values"].as_u64().unwrap() >= 2);
    let (code, _out, err) =
        crate::process::cli(&["migrate-store", "--from", &from, "--to", db.url()], &[]).await;
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");

    // Served from PostgreSQL with the same data directory (same keys): the same epoch,
    // revision, history, services and tokens, and the secret opens with the same master key.
    let running = start_with(&data, &["--database", db.url()]).await;
    let base = running.base.clone();
    let after_status = get_json(&http, &base, &admin, "/api/v1/status").await;
    assert_eq!(after_status["epoch"], before_status["epoch"]);
    assert_eq!(after_status["revision"], before_status["revision"]);
    assert_eq!(
        get_json(&http, &base, &admin, "/api/v1/history?limit=1000").await,
        before_history
    );
    assert_eq!(
        get_json(&http, &base, &admin, "/api/v1/services").await,
        before_services
    );
    let mut after_tokens = get_json(&http, &base, &admin, "/api/v1/tokens").await;
    let mut before_tokens = before_tokens;
    for tokens in [&mut after_tokens, &mut before_tokens] {
        // Using a token records when: the lists differ only in that.
        for t in tokens["tokens"].as_array_mut().unwrap() {
            t.as_object_mut().unwrap().remove("last_used_at");
        }
    }
    assert_eq!(after_tokens, before_tokens);
    let r = http
        .get(format!("{base}/api/v1/services/tts-worker/config"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the viewer token came along");
    let r = http
        .post(format!(
            "{base}/api/v1/services/llm-worker/secrets/openai_api_key/reveal"
        ))
        .bearer_auth(&admin)
        .json(&json!({"justification": "check the move"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let revealed = r.text().await.unwrap();
    assert!(revealed.contains(ROTATED), "{revealed}");
    // And it goes on writing after the copied revisions.
    let r = http
        .patch(format!("{base}/api/v1/services/tts-worker/config"))
        .bearer_auth(&admin)
        .json(&json!({"config": {"volume_percent": 41}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let status = get_json(&http, &base, &admin, "/api/v1/status").await;
    assert_eq!(
        status["revision"].as_u64(),
        before_status["revision"].as_u64().map(|r| r + 1)
    );
    drop(running);
}
