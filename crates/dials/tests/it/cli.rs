//! The everyday CLI (`status`, `get`, `set`, `edit`, `watch`, `token`…) as a person runs it:
//! the real binary against a real server, its output and exit codes kept as snapshots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::process::{self, Running};

/// A server on a fresh data directory, and a transcript of the commands run against it.
struct Session {
    server: Option<Running>,
    dir: TempDir,
    transcript: String,
}

/// What one command did.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Session {
    async fn start() -> Self {
        let dir = TempDir::new().unwrap();
        let server = process::start(dir.path()).await;
        Self {
            server: Some(server),
            dir,
            transcript: String::new(),
        }
    }

    /// Started, with the demo fleet loaded.
    async fn seeded() -> Self {
        let s = Self::start().await;
        let out = s.quiet(&["seed"], &[]).await;
        assert_eq!(out.code, 0, "seed: {}", out.stderr);
        s
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "DIALS_DATA_DIR".to_owned(),
                self.dir.path().display().to_string(),
            ),
            ("NO_COLOR".to_owned(), "1".to_owned()),
            ("DIALS_TOKEN".to_owned(), String::new()),
            ("VISUAL".to_owned(), String::new()),
        ];
        if let Some(server) = &self.server {
            env.push(("DIALS_SERVER".to_owned(), server.base.clone()));
        }
        env
    }

    /// Runs `dials ARGS` without recording it.
    async fn quiet(&self, args: &[&str], extra: &[(&str, &str)]) -> Out {
        let env = self.env();
        let mut all: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        let (code, stdout, stderr) = process::cli(args, &all).await;
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "dials {args:?} crashed: {stderr}"
        );
        Out {
            code,
            stdout,
            stderr,
        }
    }

    /// Runs `dials ARGS` and adds command, exit code, stdout and stderr to the transcript.
    async fn run(&mut self, args: &[&str]) -> Out {
        self.run_with(args, &[]).await
    }

    async fn run_with(&mut self, args: &[&str], extra: &[(&str, &str)]) -> Out {
        let out = self.quiet(args, extra).await;
        self.record(args, &out);
        out
    }

    fn record(&mut self, args: &[&str], out: &Out) {
        let _ = writeln!(self.transcript, "$ dials {}", args.join(" "));
        self.transcript.push_str(&out.stdout);
        for line in out.stderr.lines() {
            let _ = writeln!(self.transcript, "stderr| {line}");
        }
        let _ = writeln!(self.transcript, "[exit {}]\n", out.code);
    }

    /// The current document and version of a service.
    async fn config(&self, service: &str) -> (u64, Value) {
        let out = self.quiet(&["get", service, "--json"], &[]).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v = out.json();
        (v["version"].as_u64().unwrap(), v["config"].clone())
    }

    /// An executable shell script in the data directory's parent, for `$EDITOR`.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// Volatile values replaced in snapshots.
fn redact(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[DATA]")
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
                (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
                (r"dials_[A-Za-z0-9_-]{43}", "[TOKEN]"),
                (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[UUID]"),
                (r"uptime +\S+( \S+)?", "uptime    [UPTIME]"),
                (r#""uptime_seconds": [0-9.e-]+"#, r#""uptime_seconds": [UPTIME]"#),
                (r#""id": "[^"]+-\d+-[0-9a-f]{4}""#, r#""id": "[REPLICA]""#),
                (r"/\S*/dials-[a-z0-9-]+-v\d+-\w+\.(yaml|json)", "[EDITED FILE]"),
                (r"dials \d+\.\d+\.\d+", "dials [VERSION]"),
            ],
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[tokio::test]
async fn status_services_and_get_show_tables_documents_and_json() {
    let mut s = Session::start().await;
    s.run(&["status"]).await;
    let status = s.run(&["status", "--json"]).await;
    assert_eq!(status.json()["mode"], "normal");
    s.run(&["services"]).await;
    assert_eq!(s.quiet(&["seed"], &[]).await.code, 0);
    s.run(&["services"]).await;
    let services = s.run(&["services", "--json"]).await;
    assert_eq!(services.json()["services"].as_array().unwrap().len(), 7);
    s.run(&["get", "tts-worker"]).await;
    s.run(&["get", "global", "--yaml"]).await;
    let port = s.run(&["get", "global", "mqtt.port"]).await;
    assert_eq!(port.stdout, "1884\n");
    s.run(&["get", "global", "/mqtt/host", "--json"]).await;
    let full = s.run(&["get", "wake-activation", "--json"]).await;
    assert_eq!(full.json()["version"], 1);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("read_commands", transcript);
}

#[tokio::test]
async fn set_reads_each_value_as_its_schema_types_it_in_one_patch() {
    let mut s = Session::seeded().await;
    s.run(&[
        "set",
        "tts-worker",
        "volume_percent=60",
        "tts_streaming=false",
        "tts_aggregate_timeout_sec=2.5",
        "piper_voice=80",
        "--reason",
        "quieter",
    ])
    .await;
    let (version, config) = s.config("tts-worker").await;
    assert_eq!(version, 2, "several keys are one change");
    assert_eq!(config["volume_percent"], 60);
    assert_eq!(config["tts_streaming"], false);
    assert_eq!(config["tts_aggregate_timeout_sec"], 2.5);
    assert_eq!(
        config["piper_voice"], "80",
        "a string key keeps digits as text"
    );
    s.run(&[
        "set",
        "global",
        "mqtt.port=1885",
        "/mqtt/host=broker",
        "mqtt.username=null",
    ])
    .await;
    let (_, global) = s.config("global").await;
    assert_eq!(global["mqtt"]["port"], 1885);
    assert_eq!(global["mqtt"]["host"], "broker");
    let json = s
        .run(&["set", "global", "log_level=INFO", "--json", "-r", "calmer"])
        .await;
    assert_eq!(json.json()["config"]["log_level"], "INFO");
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("set", transcript);
}

#[tokio::test]
async fn set_creates_a_service_only_when_asked() {
    let s = Session::start().await;
    // A name nobody configured and no service registered: a typo must not become a service.
    let out = s.quiet(&["set", "tts-wokrer", "volume=5"], &[]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("tts-wokrer does not exist") && out.stderr.contains("--create"),
        "{}",
        out.stderr
    );
    let listed = s.quiet(&["services", "--json"], &[]).await;
    assert!(
        !listed.stdout.contains("tts-wokrer"),
        "nothing was created: {}",
        listed.stdout
    );
    let out = s
        .quiet(
            &[
                "set",
                "kitchen",
                "volume=5",
                "voice=amy",
                "--create",
                "-r",
                "new",
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("kitchen is now at version 1"),
        "{}",
        out.stdout
    );
    assert_eq!(
        s.config("kitchen").await,
        (1, serde_json::json!({"volume": 5, "voice": "amy"}))
    );
    // Once it exists, --create changes nothing about a write: it patches what is there.
    for args in [
        &["set", "kitchen", "volume=6", "--create"][..],
        &["set", "kitchen", "voice=jenny"][..],
    ] {
        let out = s.quiet(args, &[]).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    assert_eq!(
        s.config("kitchen").await,
        (3, serde_json::json!({"volume": 6, "voice": "jenny"}))
    );
}

#[tokio::test]
async fn set_refuses_keys_that_overlap_and_changes_nothing() {
    let s = Session::seeded().await;
    let before = s.config("global").await;
    for (args, said) in [
        (
            &["set", "global", "mqtt.port=1885", "mqtt={}"][..],
            "/mqtt/port and /mqtt overlap",
        ),
        (
            &["set", "global", "/mqtt={}", "mqtt.host=broker"][..],
            "/mqtt and /mqtt/host overlap",
        ),
        (
            &["set", "global", "log_level=INFO", "log_level=DEBUG"][..],
            "/log_level is given twice",
        ),
    ] {
        let out = s.quiet(args, &[]).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
    }
    assert_eq!(s.config("global").await, before, "nothing was sent");
}

#[tokio::test]
async fn delete_removes_a_service_only_at_the_version_read_and_restore_brings_it_back() {
    let s = Session::seeded().await;
    let before = s.config("tts-worker").await;
    // A stale version deletes nothing.
    let out = s
        .quiet(&["delete", "tts-worker", "--version", "9"], &[])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(s.config("tts-worker").await, before);
    let out = s.quiet(&["delete", "tts-worker"], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("deleted tts-worker (it was at version 1)")
            && out.stdout.contains("dials restore tts-worker --version 1"),
        "{}",
        out.stdout
    );
    let listed = s.quiet(&["services", "--json"], &[]).await.json();
    let names: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row["name"].as_str())
        .collect();
    assert!(!names.contains(&"tts-worker"), "{names:?}");
    assert!(names.contains(&"stt-worker"), "{names:?}");
    // The global service holds the fleet's shared settings: refused, exit code 3.
    let out = s.quiet(&["delete", "global"], &[]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be deleted"), "{}", out.stderr);
    let out = s
        .quiet(&["restore", "tts-worker", "--version", "1"], &[])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (version, config) = s.config("tts-worker").await;
    assert_eq!((version, config), (3, before.1), "back, as a new version");
}

#[tokio::test]
async fn a_value_the_schema_refuses_exits_4_with_one_line_per_field() {
    let mut s = Session::seeded().await;
    let out = s
        .run(&[
            "set",
            "tts-worker",
            "volume_percent=900",
            "tts_concurrency=many",
        ])
        .await;
    assert_eq!(out.code, 4);
    assert_eq!(s.config("tts-worker").await.0, 1, "nothing was stored");
    let json = s
        .run(&["set", "tts-worker", "volume_percent=900", "--json"])
        .await;
    assert_eq!(json.code, 4);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("set_invalid", transcript);
}

#[tokio::test]
async fn history_diff_and_restore_tell_what_changed_and_bring_it_back() {
    let mut s = Session::seeded().await;
    s.quiet(
        &["set", "tts-worker", "volume_percent=60", "-r", "quieter"],
        &[],
    )
    .await;
    s.quiet(
        &["set", "tts-worker", "tts_provider=piper", "-r", "offline"],
        &[],
    )
    .await;
    s.run(&["history", "tts-worker", "--limit", "3"]).await;
    s.run(&["history", "--key", "volume_percent", "--json"])
        .await;
    s.run(&["history", "tts-worker", "--actor", "nobody"]).await;
    s.run(&["diff", "tts-worker"]).await;
    s.run(&["diff", "tts-worker", "--from", "1", "--json"])
        .await;
    let restored = s
        .run(&[
            "restore",
            "tts-worker",
            "--version",
            "1",
            "--reason",
            "undo",
        ])
        .await;
    assert_eq!(restored.code, 0);
    let (version, config) = s.config("tts-worker").await;
    assert_eq!(version, 4, "a restore is a new version");
    assert_eq!(config["volume_percent"], 80);
    assert_eq!(config["tts_provider"], "elevenlabs");
    s.run(&["restore", "tts-worker", "--at", "2000-01-01T00:00:00Z"])
        .await;
    s.run(&["history", "tts-worker", "--since", "1h", "--limit", "2"])
        .await;
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("history_diff_restore", transcript);
}

#[tokio::test]
async fn errors_are_one_line_with_the_exit_code_they_deserve() {
    let mut s = Session::seeded().await;
    let cases: &[(&[&str], i32)] = &[
        (&["get", "no-such-service"], 1),
        (&["get", "tts-worker", "no_such_key"], 1),
        (&["get", "tts-worker", "a..b"], 2),
        (&["set", "tts-worker", "volume_percent"], 2),
        (&["history", "--since", "yesterday"], 2),
        (&["restore", "tts-worker", "--version", "99"], 1),
        (&["token", "revoke", "not-an-id"], 2),
        (&["token", "create", "x", "--role", "service"], 2),
        (&["status", "--token", "dials_not-a-real-token"], 1),
        (&["status", "--server", "ftp://example"], 2),
    ];
    for (args, code) in cases {
        let out = s.run(args).await;
        assert_eq!(out.code, *code, "dials {args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "dials {args:?} printed on stdout");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
        assert!(out.stderr.starts_with("dials: "), "{}", out.stderr);
    }
    // A missing argument is clap's usage error: code 2.
    assert_eq!(s.quiet(&["restore", "tts-worker"], &[]).await.code, 2);
    // With the server gone.
    let server = s.server.take().unwrap();
    let base = server.base.clone();
    server.signal("TERM").await;
    let out = s.run_with(&["status"], &[("DIALS_SERVER", &base)]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.lines().count(), 1);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("errors", transcript);
}

#[tokio::test]
async fn edit_saves_what_the_editor_wrote_over_the_version_it_read() {
    let mut s = Session::seeded().await;
    let seen = s.dir.path().join("seen.yaml");
    let editor = s.script(
        "editor.sh",
        &format!(
            "cp \"$1\" '{}'\nsed -i 's/^volume_percent: .*/volume_percent: 70/' \"$1\"",
            seen.display()
        ),
    );
    let editor = editor.display().to_string();
    let out = s
        .run_with(
            &["edit", "tts-worker", "-r", "by hand"],
            &[("EDITOR", &editor)],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (version, config) = s.config("tts-worker").await;
    assert_eq!((version, &config["volume_percent"]), (2, &Value::from(70)));
    // The secret was shown masked and saving kept it.
    let opened = std::fs::read_to_string(&seen).unwrap();
    assert!(opened.contains("eleven_api_key: '********'"), "{opened}");
    snapshot!("edit_opened_yaml", opened);
    // Saving the file unchanged changes nothing.
    let out = s
        .run_with(&["edit", "tts-worker"], &[("EDITOR", "true")])
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(s.config("tts-worker").await.0, 2);
    // JSON on request.
    let json_editor = s.script(
        "json-editor.sh",
        "sed -i 's/\"volume_percent\": 70/\"volume_percent\": 75/' \"$1\"",
    );
    let json_editor = json_editor.display().to_string();
    let out = s
        .run_with(
            &["edit", "tts-worker", "--json"],
            &[("EDITOR", &json_editor)],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["version"], 3);
    assert_eq!(s.config("tts-worker").await.1["volume_percent"], 75);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("edit", transcript);
}

#[tokio::test]
async fn edit_reopens_the_editor_with_the_errors_until_the_document_fits() {
    let mut s = Session::seeded().await;
    let second = s.dir.path().join("second.yaml");
    let calls = s.dir.path().join("calls");
    // First call: an invalid value. Second call: sees the errors on top, writes a valid one.
    let editor = s.script(
        "editor.sh",
        &format!(
            "echo x >> '{calls}'\n\
             if [ $(wc -l < '{calls}') -eq 1 ]; then\n\
               sed -i 's/^volume_percent: .*/volume_percent: 900/' \"$1\"\n\
             else\n\
               cp \"$1\" '{second}'\n\
               sed -i 's/^volume_percent: .*/volume_percent: 90/' \"$1\"\n\
             fi",
            calls = calls.display(),
            second = second.display()
        ),
    );
    let editor = editor.display().to_string();
    let out = s
        .run_with(&["edit", "tts-worker"], &[("EDITOR", &editor)])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    let reopened = std::fs::read_to_string(&second).unwrap();
    let head: String = reopened.lines().take(4).map(|l| format!("{l}\n")).collect();
    snapshot!("edit_reopened_with_errors", head);
    assert!(
        reopened.contains("volume_percent: 900"),
        "the user's text is kept"
    );
    let (version, config) = s.config("tts-worker").await;
    assert_eq!((version, &config["volume_percent"]), (2, &Value::from(90)));

    // Quitting while it still fails (saving the reopened file unchanged) saves nothing: code 4.
    let stubborn = s.script(
        "stubborn.sh",
        "grep -q 'NOT SAVED' \"$1\" || sed -i 's/^volume_percent: .*/volume_percent: 900/' \"$1\"",
    );
    let stubborn = stubborn.display().to_string();
    let out = s
        .run_with(&["edit", "tts-worker"], &[("EDITOR", &stubborn)])
        .await;
    assert_eq!(out.code, 4);
    assert_eq!(s.config("tts-worker").await.0, 2);
    // A file that is not YAML is an error shown the same way.
    let broken = s.script(
        "broken.sh",
        "grep -q 'NOT SAVED' \"$1\" || echo '  - : [' >> \"$1\"",
    );
    let broken = broken.display().to_string();
    let out = s
        .run_with(&["edit", "tts-worker"], &[("EDITOR", &broken)])
        .await;
    assert_eq!(out.code, 4);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("edit_invalid", transcript);
}

#[tokio::test]
async fn edit_racing_another_change_exits_3_naming_both_versions() {
    let mut s = Session::seeded().await;
    // While the editor is open, someone else changes the service.
    let editor = s.script(
        "editor.sh",
        &format!(
            "'{bin}' set tts-worker tts_provider=piper > /dev/null\n\
             sed -i 's/^volume_percent: .*/volume_percent: 70/' \"$1\"",
            bin = env!("CARGO_BIN_EXE_dials")
        ),
    );
    let editor = editor.display().to_string();
    let out = s
        .run_with(&["edit", "tts-worker"], &[("EDITOR", &editor)])
        .await;
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("version 1") && out.stderr.contains("version 2"));
    let (version, config) = s.config("tts-worker").await;
    assert_eq!(version, 2);
    assert_eq!(
        config["volume_percent"], 80,
        "the edit was not saved over theirs"
    );
    // The edit is kept for the user to redo.
    let kept = out
        .stderr
        .split_whitespace()
        .find(|w| w.ends_with(".yaml"))
        .expect("the kept file is named");
    let kept_text = std::fs::read_to_string(kept).unwrap();
    assert!(kept_text.contains("volume_percent: 70"));
    std::fs::remove_file(kept).unwrap();
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("edit_conflict", transcript);
}

/// A running `dials watch` and the rest of its stderr, read as it comes.
struct Watch {
    child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
}

/// `dials watch ARGS` running; returns once it says it is connected, with what it said.
async fn watching(s: &Session, args: &[&str]) -> (Watch, Vec<String>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_dials"));
    cmd.arg("watch").args(args);
    for (k, v) in s.env() {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("watch connects in time")
            .unwrap()
            .expect("watch says it is connected");
        let connected = line.starts_with("watching ");
        said.push(line);
        if connected {
            break;
        }
    }
    let stderr = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    (Watch { child, stderr }, said)
}

/// Waits for a `--count` watch to end; its stdout.
async fn finished(watch: Watch) -> String {
    finished_with_stderr(watch).await.0
}

/// Waits for a `--count` watch to end; its stdout and what it said on stderr after connecting.
async fn finished_with_stderr(watch: Watch) -> (String, String) {
    let Watch { mut child, stderr } = watch;
    let mut stdout = String::new();
    let mut pipe = child.stdout.take().unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipe.read_to_string(&mut stdout))
        .await
        .unwrap_or_else(|_| panic!("watch stops after --count changes; printed {stdout:?}"))
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("watch exits")
        .unwrap();
    let stderr = stderr.await.unwrap();
    assert!(status.success(), "{status}: {stderr}");
    (stdout, stderr)
}

#[tokio::test]
async fn watch_prints_each_change_made_while_it_runs() {
    let s = Session::seeded().await;
    let (child, said) = watching(&s, &["tts-worker", "--count", "2"]).await;
    assert_eq!(
        said,
        ["watching tts-worker after revision 7 (Ctrl-C to stop)"]
    );
    for args in [
        &["set", "tts-worker", "volume_percent=50", "-r", "night"][..],
        &["set", "global", "log_level=INFO"],
        &["restore", "tts-worker", "--version", "1"],
    ] {
        assert_eq!(s.quiet(args, &[]).await.code, 0);
    }
    let lines = finished(child).await;
    assert_eq!(
        lines,
        "rev 8  tts-worker v2  patch  by admin: night\nrev 10  tts-worker v3  restore  by admin\n"
    );
    // JSON lines, replayed from a revision.
    let (child, _) = watching(&s, &["--since", "8", "--count", "1", "--json"]).await;
    let line = finished(child).await;
    let event: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        (event["revision"].as_u64(), event["service"].as_str()),
        (Some(9), Some("global"))
    );
}

#[tokio::test]
async fn watch_from_a_revision_the_database_never_had_restarts_from_the_latest() {
    let s = Session::seeded().await;
    let (child, said) = watching(&s, &["--since", "500", "--count", "1"]).await;
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].contains("was re-created"), "{}", said[0]);
    assert_eq!(
        said[1],
        "watching every service after revision 7 (Ctrl-C to stop)"
    );
    let set = s
        .quiet(
            &["set", "tts-worker", "--reason", "r", "volume_percent=5"],
            &[],
        )
        .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(
        finished(child).await,
        "rev 8  tts-worker v2  patch  by admin: r\n"
    );
}

#[tokio::test]
async fn token_create_writes_offline_or_asks_the_running_server() {
    let mut s = Session::start().await;
    // Offline: the server stopped, the token goes straight into the database.
    let server = s.server.take().unwrap();
    server.signal("TERM").await;
    let created = s
        .run(&["token", "create", "ci", "--role", "operator", "--json"])
        .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let token = created.json()["token"].as_str().unwrap().to_owned();
    s.run(&[
        "token",
        "create",
        "tts",
        "--role",
        "service",
        "--service",
        "tts-worker",
    ])
    .await;
    s.server = Some(process::start(s.dir.path()).await);
    // The new token works against the restarted server.
    let out = s.quiet(&["status", "--token", &token], &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // With the server running on the data directory, through the API.
    let online = s
        .run(&["token", "create", "viewer", "--role", "viewer"])
        .await;
    assert_eq!(online.code, 0, "{}", online.stderr);
    let list = s.quiet(&["token", "list", "--json"], &[]).await;
    let tokens = list.json()["tokens"].as_array().unwrap().clone();
    let names: Vec<&str> = tokens.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "ci", "tts", "viewer"]);
    let id = tokens[1]["id"].as_str().unwrap().to_owned();
    s.run(&["token", "revoke", &id]).await;
    s.run(&["token", "list"]).await;
    let revoked = s.run(&["status", "--token", &token]).await;
    assert_eq!(revoked.code, 1);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("tokens", transcript);
}

#[tokio::test]
async fn help_completions_and_man_pages_come_from_one_definition() {
    let dir = TempDir::new().unwrap();
    let (code, help, _) = process::cli(&["--help"], &[]).await;
    assert_eq!(code, 0);
    snapshot!("help", help);
    let (code, set_help, _) = process::cli(&["set", "--help"], &[]).await;
    assert_eq!(code, 0);
    assert!(set_help.contains("Example: dials set tts-worker"));
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, _) = process::cli(&["completions", shell], &[]).await;
        assert_eq!(code, 0);
        assert!(
            script.contains("watch") && script.contains("restore"),
            "{shell}"
        );
    }
    let (code, man, _) = process::cli(&["man"], &[]).await;
    assert_eq!(code, 0);
    assert!(man.contains(".TH dials 1"), "{man}");
    let out = dir.path().join("man");
    let (code, _, _) = process::cli(&["man", "--dir", out.to_str().unwrap()], &[]).await;
    assert_eq!(code, 0);
    assert!(out.join("dials.1").is_file() && out.join("dials-set.1").is_file());
    let (code, _, err) = process::cli(&["completions", "tcsh"], &[]).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn watch_survives_a_server_restart_and_misses_nothing_meanwhile() {
    let mut s = Session::seeded().await;
    let (child, _) = watching(&s, &["tts-worker", "--count", "2"]).await;
    let set = s
        .quiet(&["set", "tts-worker", "volume_percent=50"], &[])
        .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    // Stop the server: the stream ends and watch keeps trying.
    let server = s.server.take().unwrap();
    let address = server.base.trim_start_matches("http://").to_owned();
    server.signal("TERM").await;
    // The same data directory on the same address: the revisions go on.
    let restarted = process::command(s.dir.path(), &["--http", &address], &[]);
    s.server = Some(process::spawn_and_wait(restarted).await);
    let set = s
        .quiet(&["set", "tts-worker", "volume_percent=40"], &[])
        .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    let (stdout, stderr) = finished_with_stderr(child).await;
    assert_eq!(
        stdout,
        "rev 8  tts-worker v2  patch  by admin\nrev 9  tts-worker v3  patch  by admin\n"
    );
    assert!(stderr.contains("reconnecting after revision 8"), "{stderr}");
}

#[tokio::test]
async fn profiles_are_saved_listed_shown_applied_and_deleted() {
    let mut s = Session::seeded().await;
    s.run(&[
        "profile",
        "save",
        "quiet",
        "tts-worker",
        "global",
        "-d",
        "quiet evenings",
    ])
    .await;
    s.quiet(
        &[
            "set",
            "tts-worker",
            "volume_percent=60",
            "tts_streaming=false",
        ],
        &[],
    )
    .await;
    s.run(&["profile", "list"]).await;
    let shown = s.run(&["profile", "show", "quiet"]).await;
    assert!(
        shown.stdout.contains("\"eleven_api_key\": \"********\""),
        "{}",
        shown.stdout
    );
    let list = s.run(&["profile", "list", "--json"]).await;
    assert_eq!(list.json()["profiles"][0]["services"][1], "tts-worker");
    let dry = s.run(&["profile", "apply", "quiet", "--dry-run"]).await;
    assert_eq!(dry.code, 0);
    assert_eq!(
        s.config("tts-worker").await.0,
        2,
        "a dry run writes nothing"
    );
    s.run(&["profile", "apply", "quiet", "-r", "evening"]).await;
    let (version, config) = s.config("tts-worker").await;
    assert_eq!(
        (version, config["tts_streaming"].clone()),
        (3, Value::Bool(true))
    );
    let again = s.run(&["profile", "apply", "quiet", "--json"]).await;
    assert_eq!(again.json()["services"][1]["action"], "unchanged");
    let exists = s.run(&["profile", "save", "quiet"]).await;
    assert_eq!(exists.code, 3, "a name in use is a conflict");
    let missing = s.run(&["profile", "show", "loud"]).await;
    assert_eq!(missing.code, 1);
    let bad = s.run(&["profile", "save", "Loud Evening"]).await;
    assert_eq!(bad.code, 1);
    s.run(&["profile", "delete", "quiet"]).await;
    s.run(&["profile", "list"]).await;
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("profiles", transcript);
}

#[tokio::test]
async fn a_profile_that_no_longer_fits_its_schema_is_refused_with_exit_4() {
    let mut s = Session::seeded().await;
    s.quiet(&["set", "tts-worker", "volume_percent=90"], &[])
        .await;
    s.quiet(&["profile", "save", "loud", "tts-worker"], &[])
        .await;
    s.quiet(&["set", "tts-worker", "volume_percent=50"], &[])
        .await;
    // A stricter schema: the profile's 90 no longer fits.
    let (_, schema) = {
        let out = s.quiet(&["get", "tts-worker", "--json"], &[]).await;
        (out.code, out.json())
    };
    assert!(schema["config"].is_object());
    let server = s.server.as_ref().unwrap().base.clone();
    let token = std::fs::read_to_string(s.dir.path().join("admin.token")).unwrap();
    let http = reqwest::Client::new();
    let mut current: Value = http
        .get(format!("{server}/api/v1/services/tts-worker/schema"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    current["schema"]["properties"]["volume_percent"]["maximum"] = Value::from(80);
    current["schema"]["properties"]["volume_percent"]["default"] = Value::from(40);
    let r = http
        .put(format!("{server}/api/v1/services/tts-worker/schema"))
        .bearer_auth(token.trim())
        .json(&current["schema"])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let dry = s.run(&["profile", "apply", "loud", "--dry-run"]).await;
    assert_eq!(dry.code, 4);
    let out = s.run(&["profile", "apply", "loud"]).await;
    assert_eq!(out.code, 4);
    assert_eq!(s.config("tts-worker").await.1["volume_percent"], 50);
    let transcript = redact(&s.transcript, s.dir.path());
    snapshot!("profile_invalid", transcript);
}

#[tokio::test]
async fn restore_all_brings_the_fleet_back_to_an_instant() {
    let mut s = Session::seeded().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = time_now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.quiet(&["set", "tts-worker", "volume_percent=60"], &[])
        .await;
    s.quiet(&["set", "global", "log_level=ERROR"], &[]).await;
    let two = s
        .run(&["restore", "tts-worker", "global", "--at", &at])
        .await;
    assert_eq!(two.code, 2, "several services need --all");
    let dry = s.run(&["restore", "--all", "--at", &at, "--dry-run"]).await;
    assert_eq!(dry.code, 0);
    let done = s.run(&["restore", "--all", "--at", &at, "--json"]).await;
    assert_eq!(done.json()["ok"], true);
    assert_eq!(s.config("tts-worker").await.0, 3);
    assert_ne!(s.config("tts-worker").await.1["volume_percent"], 60);
    assert_ne!(s.config("global").await.1["log_level"], "ERROR");
    let transcript = redact(&s.transcript, s.dir.path()).replace(&at, "[AT]");
    snapshot!("restore_all", transcript);
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn export_and_import_carry_the_fleet_to_an_empty_manager() {
    let mut s = Session::seeded().await;
    s.quiet(&["profile", "save", "demo"], &[]).await;
    let file = s.dir.path().join("fleet.yaml");
    let file_text = file.display().to_string();
    s.run(&["export", &file_text]).await;
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.starts_with("format: 1"));
    let secret_file = s.dir.path().join("fleet.json");
    let pass = s.dir.path().join("pass.txt");
    std::fs::write(&pass, "tars rocks\n").unwrap();
    let out = s
        .run(&[
            "export",
            &secret_file.display().to_string(),
            "--passphrase-file",
            &pass.display().to_string(),
            "--json",
        ])
        .await;
    assert_eq!(out.json()["secrets"], true);
    let sealed = std::fs::read_to_string(&secret_file).unwrap();
    for plaintext in ["example-elevenlabs-key-not-real", "tars rocks"] {
        assert!(!sealed.contains(plaintext), "{plaintext} is in the file");
        assert!(!yaml.contains(plaintext), "{plaintext} is in the file");
    }

    let mut empty = Session::start().await;
    let dry = empty.run(&["import", &file_text, "--dry-run"]).await;
    assert!(
        dry.stdout.contains("dry run: 7 services would change"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        empty.quiet(&["services", "--json"], &[]).await.json()["services"],
        Value::Array(Vec::new())
    );
    let secret_text = secret_file.display().to_string();
    let done = empty
        .run_with(
            &["import", &secret_text],
            &[("DIALS_EXPORT_PASSPHRASE", "tars rocks")],
        )
        .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    for service in ["tts-worker", "global"] {
        assert_eq!(empty.config(service).await.1, s.config(service).await.1);
    }
    // The file without secret values keeps the secrets in force: nothing changes.
    let again = empty.run(&["import", &file_text]).await;
    assert!(
        again.stdout.contains("0 services changed, 7 unchanged"),
        "{}",
        again.stdout
    );
    let missing = empty.run(&["import", &secret_text]).await;
    assert_eq!(missing.code, 2, "no passphrase and no terminal to ask on");
    let wrong = dials_wrong_passphrase(&mut empty, &secret_file).await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "{}",
        wrong.stderr
    );
    let transcript = redact(
        &format!("{}{}", s.transcript, empty.transcript),
        s.dir.path(),
    );
    snapshot!("export_import", transcript);
}

async fn dials_wrong_passphrase(s: &mut Session, file: &Path) -> Out {
    s.run_with(
        &["import", &file.display().to_string()],
        &[("DIALS_EXPORT_PASSPHRASE", "not it")],
    )
    .await
}

/// `dials watch | head -1`: the reader leaves after the first line, and at its next line dials
/// ends quietly — exit 0, no panic, no message — as every command's output does.
#[tokio::test]
async fn output_into_a_pipe_whose_reader_left_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let s = Session::seeded().await;
    {
        let args = ["watch", "--since", "0"];
        let env = s.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dials"))
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then close the pipe, as `head -1` does.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "dials {args:?} printed nothing");
        // The replay fit in the pipe; the next change is written into the closed one.
        for volume in [41, 42] {
            let set = format!("volume_percent={volume}");
            assert_eq!(s.quiet(&["set", "tts-worker", &set], &[]).await.code, 0);
        }
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "dials {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "dials {args:?}: {stderr}");
    }
}
