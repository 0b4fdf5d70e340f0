//! Backups on the real binary: taken while the server writes, listed, verified (a damaged one
//! refused), restored offline with a new epoch, and followed by a running service.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::broker::{Mosquitto, free_port};
use crate::process::{admin_token, cli, create, start, start_with, status};

fn data_env(data: &Path) -> Vec<(&'static str, String)> {
    vec![("DIALS_DATA_DIR", data.display().to_string())]
}

async fn backup(data: &Path, args: &[&str]) -> (i32, String, String) {
    let env = data_env(data);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    cli(&all, &env).await
}

async fn put(client: &reqwest::Client, base: &str, token: &str, service: &str, config: Value) {
    let r = client
        .put(format!("{base}/api/v1/services/{service}/config"))
        .bearer_auth(token)
        .json(&json!({ "config": config }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_backup_taken_while_the_server_writes_is_consistent_listed_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "svc", json!({"n": 0})).await;

    // Writes go on while the backup is taken.
    let writer = {
        let (client, base, token) = (client.clone(), running.base.clone(), token.clone());
        tokio::spawn(async move {
            for n in 1..=200 {
                put(
                    &client,
                    &base,
                    &token,
                    "svc",
                    json!({"n": n, "pad": "x".repeat(2000)}),
                )
                .await;
            }
        })
    };
    let (code, out, err) = backup(&data, &["create", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    writer.await.unwrap();
    let made: Value = serde_json::from_str(&out).unwrap();
    let file = PathBuf::from(made["path"].as_str().unwrap());
    assert!(file.starts_with(data.join("backups")), "{file:?}");
    let meta = &made["metadata"];
    let revision = meta["revision"].as_u64().unwrap();
    assert!(revision >= 1, "{meta}");
    assert_eq!(
        meta["epoch"],
        status(&client, &running.base, &token).await["epoch"]
    );
    assert_eq!(meta["dials_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
    assert!(file.with_extension("db.json").is_file());

    let (code, out, err) = backup(&data, &["verify", file.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is sound") && out.contains(&format!("revision {revision}")),
        "{out}"
    );

    let (code, out, _) = backup(&data, &["list", "--json"]).await;
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["metadata"], *meta);

    // One flipped byte: the checksum no longer matches, and verify says so.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let (code, _, err) = backup(&data, &["verify", file.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("does not match its metadata"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn scheduled_backups_keep_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start_with(&data, &["--backup-every", "1s", "--backup-keep", "2"]).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "svc", json!({"n": 0})).await;
    let backups = data.join("backups");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "saw {seen:?}");
        let (_, out, _) = backup(&data, &["list", "--json"]).await;
        let listed: Value = serde_json::from_str(&out).unwrap();
        assert!(
            listed.as_array().unwrap().len() <= 2,
            "kept at most 2: {listed}"
        );
        for b in listed.as_array().unwrap() {
            assert!(
                b["metadata"].is_object(),
                "every backup has its metadata: {b}"
            );
            seen.insert(b["path"].as_str().unwrap().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let files = std::fs::read_dir(&backups).unwrap().count();
    assert!(
        files <= 5,
        "2 backups and their metadata (one more in the making): {files}"
    );
    drop(running);
}

/// The example service `echo-service`, built by `cargo test --workspace` (or `cargo build
/// --examples`) beside the `dials` binary.
pub(crate) fn echo_service() -> PathBuf {
    let dials = PathBuf::from(env!("CARGO_BIN_EXE_dials"));
    let path = dials
        .parent()
        .unwrap()
        .join("examples")
        .join("echo-service");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release --workspace --examples`",
        path.display()
    );
    path
}

/// Waits for the echo-service's next line that satisfies `wanted`.
async fn applied(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.unwrap().expect("echo-service runs");
            let v: Value = serde_json::from_str(&line).unwrap();
            if wanted(&v) {
                return v;
            }
        }
    })
    .await
    .expect("the echo-service applied it in time")
}

#[tokio::test]
async fn a_restore_gives_a_new_epoch_and_a_running_service_follows_it() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let url = broker.url();
    let args = ["--http", http.as_str(), "--mqtt", url.as_str()];
    let running = crate::process::spawn_and_wait(crate::process::command(&data, &args, &[])).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"volume_percent": 40}),
    )
    .await;
    let old_epoch = status(&client, &running.base, &token).await["epoch"].clone();

    let (code, out, err) = backup(&data, &["create", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let file = serde_json::from_str::<Value>(&out).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned();
    put(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"volume_percent": 90}),
    )
    .await;

    let keys: Value = client
        .get(format!("{}/api/v1/keys", running.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut echo = tokio::process::Command::new(echo_service())
        .env("DIALS_SERVER", &running.base)
        .env("DIALS_TOKEN", &token)
        .env("DIALS_MQTT_URL", &url)
        .env("DIALS_PUBLIC_KEY", keys["public_key"].as_str().unwrap())
        .env("DIALS_LKG_PATH", dir.path().join("tts-worker.lkg"))
        .env("DIALS_INSTANCE", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(echo.stdout.take().unwrap()).lines();
    applied(&mut lines, |v| v["config"]["volume_percent"] == 90).await;

    // Not while the server holds the data directory.
    let (code, _, err) = backup(&data, &["restore", &file]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("another dials is using the data directory"),
        "{err}"
    );

    let (status_code, stderr) = running.signal("TERM").await;
    assert!(status_code.success(), "{stderr}");
    let (code, out, err) = backup(&data, &["restore", &file, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let restored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(restored["backup_epoch"], old_epoch);
    assert_ne!(restored["epoch"], old_epoch, "a restore starts a new epoch");
    let aside = PathBuf::from(restored["replaced"].as_str().unwrap());
    assert!(aside.is_file(), "the replaced database is kept: {aside:?}");

    let running = crate::process::spawn_and_wait(crate::process::command(&data, &args, &[])).await;
    let now = status(&client, &running.base, &token).await;
    assert_eq!(now["epoch"], restored["epoch"]);
    // Version 1 again, from a new life: the service re-reads over REST and applies it, though
    // it had already applied version 2 of the old one.
    let line = applied(&mut lines, |v| v["config"]["volume_percent"] == 40).await;
    assert_eq!(line["version"], 1, "{line}");
    let _ = echo.kill().await;
    drop(running);
}

/// Starts and stops a server once in `data`, with one service, leaving a database behind.
async fn a_stopped_database(data: &Path) {
    let running = start(data).await;
    let token = admin_token(data);
    create(
        &reqwest::Client::new(),
        &running.base,
        &token,
        "svc",
        json!({"n": 1}),
    )
    .await;
    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn a_database_from_a_newer_dials_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    a_stopped_database(&data).await;
    crate::aged::from_a_newer_dials(&data.join("dials.db"), 9999);
    let (code, stderr) = crate::process::run_to_exit(&data, &["--http", "127.0.0.1:0"], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.trim().lines().last().unwrap();
    assert!(
        last.starts_with("dials: ")
            && last.contains("schema is at version 9999, newer than this dials knows"),
        "{stderr}"
    );
    assert!(
        !data.join("backups").exists(),
        "nothing is migrated or backed up"
    );
}

#[tokio::test]
async fn a_database_from_an_older_dials_is_backed_up_then_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    a_stopped_database(&data).await;
    // As an older dials left it: without the profiles migration (6), which only creates the
    // `profiles` table.
    crate::aged::from_before_profiles(&data.join("dials.db"));

    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    // Migrated: profiles work, and the data is all there.
    let r = client
        .get(format!("{}/api/v1/profiles", running.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r: Value = client
        .get(format!("{}/api/v1/services/svc/config", running.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["config"]["n"], 1, "{r}");

    // The backup taken first holds the database as it was, and verifies.
    let (_, out, _) = backup(&data, &["list", "--json"]).await;
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let file = listed[0]["path"].as_str().unwrap();
    let (code, _, err) = backup(&data, &["verify", file]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !crate::aged::has_table(Path::new(file), "profiles"),
        "the backup is of the database before the migration"
    );
}

#[tokio::test]
async fn backups_are_created_and_listed_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(&client, &running.base, &token, "router", json!({"a": 1})).await;

    // The CLI speaks to the server when it is given one; the backup lands in the server's folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let env = [("DIALS_DATA_DIR", elsewhere.path().to_str().unwrap())];
    let (code, out, err) = cli(
        &[
            "backup",
            "create",
            "--server",
            &running.base,
            "--token",
            &token,
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(made["metadata"]["revision"], 1, "{made}");
    let path = PathBuf::from(made["path"].as_str().unwrap());
    assert!(path.starts_with(data.join("backups")), "{made}");
    assert!(path.is_file());

    let (code, out, err) = cli(
        &["backup", "list", "--json"],
        &[
            ("DIALS_SERVER", running.base.as_str()),
            ("DIALS_TOKEN", token.as_str()),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["path"], made["path"]);
    assert_eq!(listed[0]["metadata"]["sha256"], made["metadata"]["sha256"]);

    // Only for admins.
    let viewer: Value = client
        .post(format!("{}/api/v1/tokens", running.base))
        .bearer_auth(&token)
        .json(&json!({"name": "look", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .post(format!("{}/api/v1/backups", running.base))
        .bearer_auth(viewer["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // And the data-directory path still works beside it.
    let (code, out, err) = backup(&data, &["list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["path"],
        made["path"]
    );
    drop(running);
}

#[tokio::test]
async fn a_rebuild_from_the_snapshot_gives_a_new_epoch_and_a_running_service_follows_it() {
    let broker = Mosquitto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let url = broker.url();
    let args = ["--http", http.as_str(), "--mqtt", url.as_str()];
    let running = crate::process::spawn_and_wait(crate::process::command(&data, &args, &[])).await;
    let token = admin_token(&data);
    let client = reqwest::Client::new();
    create(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"volume_percent": 40}),
    )
    .await;
    put(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"volume_percent": 90}),
    )
    .await;
    let old_epoch = status(&client, &running.base, &token).await["epoch"].clone();
    let keys: Value = client
        .get(format!("{}/api/v1/keys", running.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut echo = tokio::process::Command::new(echo_service())
        .env("DIALS_SERVER", &running.base)
        .env("DIALS_TOKEN", &token)
        .env("DIALS_MQTT_URL", &url)
        .env("DIALS_PUBLIC_KEY", keys["public_key"].as_str().unwrap())
        .env("DIALS_LKG_PATH", dir.path().join("tts-worker.lkg"))
        .env("DIALS_INSTANCE", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(echo.stdout.take().unwrap()).lines();
    applied(&mut lines, |v| v["config"]["volume_percent"] == 90).await;

    let rebuild = |extra: &'static [&'static str]| {
        let data = data.clone();
        async move {
            let mut all = vec!["rebuild", "--json"];
            all.extend_from_slice(extra);
            let env = data_env(&data);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            cli(&all, &env).await
        }
    };
    // Not while the server holds the data directory.
    let (code, _, err) = rebuild(&[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("another dials is using the data directory"),
        "{err}"
    );
    let (exit, stderr) = running.signal("TERM").await;
    assert!(exit.success(), "{stderr}");

    std::fs::write(data.join("dials.db"), vec![0x5a; 8192]).unwrap();
    let (code, out, err) = rebuild(&["--reason", "disk error"]).await;
    assert_eq!(code, 0, "{err}");
    let rebuilt: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rebuilt["snapshot_epoch"], old_epoch);
    assert_ne!(rebuilt["epoch"], old_epoch, "a rebuild starts a new epoch");
    assert_eq!(rebuilt["services"], 1, "{rebuilt}");
    let aside = PathBuf::from(rebuilt["broken_database"].as_str().unwrap());
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        vec![0x5a; 8192],
        "the broken database is kept"
    );
    let tombstone: Value = serde_json::from_str(
        &std::fs::read_to_string(rebuilt["tombstone"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(tombstone["reason"], "disk error");
    assert_eq!(tombstone["snapshot_revision"], 2);

    let running = crate::process::spawn_and_wait(crate::process::command(&data, &args, &[])).await;
    let now = status(&client, &running.base, &token).await;
    assert_eq!(now["epoch"], rebuilt["epoch"], "the old token works: {now}");
    assert_eq!(now["mode"], "normal");
    // Version 2 of a new life, no newer than the version 2 it holds of the old one: the
    // service notices the new epoch, re-reads over REST and applies it.
    put(
        &client,
        &running.base,
        &token,
        "tts-worker",
        json!({"volume_percent": 55}),
    )
    .await;
    let line = applied(&mut lines, |v| v["config"]["volume_percent"] == 55).await;
    assert_eq!(line["version"], 2, "{line}");
    let audit: Value = client
        .get(format!(
            "{}/api/v1/audit?action=database.rebuild",
            running.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(audit.to_string().contains("disk error"), "{audit}");
    let _ = echo.kill().await;
    drop(running);
}
