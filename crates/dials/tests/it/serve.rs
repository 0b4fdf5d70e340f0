//! `dials serve` end to end.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::process::{run_to_exit, start};

#[tokio::test]
async fn a_fresh_data_dir_starts_serving_and_announces_the_admin_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data).await;
    let health: Value = reqwest::get(format!("{}/health", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"ok": true}));
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let client = reqwest::Client::new();
    let r = client
        .put(format!(
            "{}/api/v1/services/tts-worker/config",
            running.base
        ))
        .bearer_auth(token.trim())
        .header("If-None-Match", "*")
        .json(&json!({"config": {"voice": "amy"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, stderr) = running.signal("INT").await;
    assert!(
        status.success(),
        "SIGINT is a clean exit: {status:?}\n{stderr}"
    );
    let announcements: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("admin.token"))
        .collect();
    assert_eq!(announcements.len(), 1, "{stderr}");
    assert!(
        !stderr.contains(token.trim()),
        "the token itself is never logged"
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_a_restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/services/router/config", running.base);
    client
        .put(&url)
        .bearer_auth(token.trim())
        .header("If-None-Match", "*")
        .json(&json!({"config": {"model": "small"}}))
        .send()
        .await
        .unwrap();
    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let again = start(dir.path()).await;
    let url = format!("{}/api/v1/services/router/config", again.base);
    let body: Value = client
        .get(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["config"], json!({"model": "small"}));
    let (_, stderr) = again.signal("TERM").await;
    assert!(
        !stderr.contains("admin.token"),
        "no second admin token on restart: {stderr}"
    );
}

#[tokio::test]
async fn a_bad_setting_is_one_line_naming_it_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--http", "nowhere"], &[], "--http"),
        (
            &[],
            &[("DIALS_HTTP_ADDR", "127.0.0.1:99999")],
            "DIALS_HTTP_ADDR",
        ),
        (&["--log-format", "xml"], &[], "--log-format"),
        (
            &[],
            &[("DIALS_MAX_BODY_BYTES", "lots")],
            "DIALS_MAX_BODY_BYTES",
        ),
    ];
    for (args, env, named) in cases {
        let (code, stderr) = run_to_exit(dir.path(), args, env).await;
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(named), "names {named}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_bad_settings_file_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dials.toml"), "http = 5\n").unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &[], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("dials.toml"), "{stderr}");
}

#[tokio::test]
async fn the_settings_file_supplies_what_flags_and_environment_leave_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dials.toml"),
        "http = \"127.0.0.1:0\"\nmax_body_bytes = 2048\n",
    )
    .unwrap();
    let mut child = crate::process::command(dir.path(), &[], &[])
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = lines.next_line().await.unwrap().unwrap();
    let base = line.strip_prefix("listening on ").unwrap().to_owned();
    assert!(
        !base.ends_with(":8081"),
        "port 0 from the file picked a free port: {base}"
    );
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let r = reqwest::Client::new()
        .put(format!("{base}/api/v1/services/x/config"))
        .bearer_auth(token.trim())
        .header("If-None-Match", "*")
        .json(&json!({"config": {"a": "y".repeat(3000)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the file's body limit applies"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_port_already_in_use_is_one_clear_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_exit(dir.path(), &["--http", &addr], &[]).await;
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot listen on") && last.contains(&addr),
        "{stderr}"
    );
}

#[tokio::test]
async fn seed_loads_the_demo_fleet_into_a_running_manager_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(["seed", "--server", &running.base, "--token", token.trim()])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("created") && !l.contains("unchanged"))
            .count(),
        7,
        "{stdout}"
    );
    let list: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/services", running.base))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<_> = list["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "global",
            "llm-worker",
            "memory-worker",
            "router",
            "stt-worker",
            "tts-worker",
            "wake-activation"
        ]
    );
    assert!(
        list["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["version"] == 1 && s["has_schema"] == true)
    );

    // Running it again is harmless: nothing changes, no new versions.
    let again = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args([
            "seed",
            "--json",
            "--server",
            &running.base,
            "--token",
            token.trim(),
        ])
        .output()
        .await
        .unwrap();
    assert!(again.status.success());
    let rows: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["version"] == 1 && r["schema"] == "unchanged" && r["config"] == "unchanged"),
        "{rows}"
    );
    running.signal("TERM").await;
}

#[tokio::test]
async fn seed_against_no_server_is_one_line_and_exit_code_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args([
            "seed",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            "x",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach dials"), "{stderr}");
}

#[tokio::test]
async fn https_serves_the_api_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    let cert = d.join("cert.pem");
    let key = d.join("key.pem");
    let data = d.join("data");
    let running = crate::process::start_with(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        running.base.starts_with("https://127.0.0.1:"),
        "{}",
        running.base
    );
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let url = format!("{}/api/v1/status", running.base);
    let auth = format!("Authorization: Bearer {}", token.trim());
    let body = run(&[
        "curl",
        "-sS",
        "--fail",
        "--cacert",
        cert.to_str().unwrap(),
        "-H",
        &auth,
        &url,
    ]);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["mode"], "normal");
    // Plain HTTP on the same port gets nowhere.
    let plain = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &url.replace("https://", "http://"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success() || !String::from_utf8_lossy(&plain.stdout).contains("normal"));
    // A browser session cookie is marked Secure.
    let session = run(&[
        "curl",
        "-sS",
        "-i",
        "--cacert",
        cert.to_str().unwrap(),
        "-H",
        "content-type: application/json",
        "-d",
        &format!("{{\"token\": \"{}\"}}", token.trim()),
        &format!("{}/api/v1/session", running.base),
    ]);
    assert!(
        session
            .lines()
            .any(|l| l.to_lowercase().starts_with("set-cookie") && l.contains("Secure")),
        "{session}"
    );
    let (status, stderr) = running.signal("TERM").await;
    assert!(status.success(), "{stderr}");
}

#[tokio::test]
async fn a_tls_setting_without_its_pair_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "x").unwrap();
    let (code, stderr) =
        run_to_exit(dir.path(), &["--tls-cert", cert.to_str().unwrap()], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[tokio::test]
async fn a_rotated_signing_key_takes_over_while_the_old_one_stays_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path()).await;
    let before: Value = reqwest::get(format!("{}/api/v1/keys", running.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    running.signal("TERM").await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(["keys", "rotate", "signing", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["old_key_id"], before["key_id"]);

    let again = start(dir.path()).await;
    let after: Value = reqwest::get(format!("{}/api/v1/keys", again.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["key_id"], rotated["new_key_id"]);
    let keys = after["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[1]["key_id"].clone(), keys[1]["current"].clone()),
        (before["key_id"].clone(), json!(false))
    );
    let show = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(["keys", "show", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&show.stdout);
    assert!(
        table.contains("current") && table.contains("retired"),
        "{table}"
    );
    again.signal("TERM").await;
    let nowhere = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(["keys", "show", "--data-dir", "/nonexistent-dials"])
        .output()
        .await
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(1));
}
