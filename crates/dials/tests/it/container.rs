//! The container file and the compose example, checked without a container engine: every
//! path they copy exists, every environment variable they set is one the binary (or the
//! echo-service) reads, ports and volumes agree with the settings, and the health command
//! works against the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

use crate::process::{command, spawn_and_wait};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Containerfile's instructions, continuation lines joined.
fn instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("packaging/docker/Containerfile").lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                let (op, rest) = current.split_once(' ').unwrap();
                out.push((op.to_owned(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// Every `[env: NAME]` in `dials serve --help` and `dials health --help`.
fn settings_env() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for args in [["serve", "--help"], ["health", "--help"]] {
        let help = std::process::Command::new(env!("CARGO_BIN_EXE_dials"))
            .args(args)
            .output()
            .unwrap();
        // Help wraps lines; one space between words again.
        let text = String::from_utf8(help.stdout)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("[env: ") {
            let tail = &rest[at + 6..];
            let end = tail.find(']').unwrap();
            for name in tail[..end].split(',') {
                out.insert(name.trim().to_owned());
            }
            rest = &tail[end..];
        }
    }
    assert!(out.contains("DIALS_HTTP_ADDR"), "{out:?}");
    out
}

/// The variables the echo-service documents (the table atop its main.rs).
fn echo_env() -> BTreeSet<String> {
    read("crates/dials-client/examples/echo-service/main.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn env_of(service: &Yaml) -> BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Yaml::String(s) => s.clone(),
                other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
            };
            (k.as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_container_file_and_compose_example_name_only_what_exists() {
    let known = settings_env();
    let steps = instructions();
    let get = |op: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.clone())
            .collect()
    };

    // What it copies: cargo's own outputs and files of this repository.
    for copy in get("COPY") {
        let src = copy.split_whitespace().next().unwrap();
        match src {
            "target/release/dials" => assert!(
                Path::new(env!("CARGO_BIN_EXE_dials")).ends_with("dials"),
                "the binary cargo builds is `dials`"
            ),
            "target/release/examples/echo-service" => assert!(
                repo()
                    .join("crates/dials-client/examples/echo-service/main.rs")
                    .is_file()
            ),
            other => assert!(repo().join(other).exists(), "COPY {other}: no such path"),
        }
    }

    // Its environment: settings the binary reads.
    let mut image_env = BTreeMap::new();
    for env in get("ENV") {
        for pair in env.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            assert!(known.contains(k), "ENV {k} is not a setting of dials");
            image_env.insert(k.to_owned(), v.to_owned());
        }
    }
    let data_dir = image_env["DIALS_DATA_DIR"].clone();
    let http_port = port_of(&image_env["DIALS_HTTP_ADDR"]);
    assert_eq!(get("VOLUME"), std::slice::from_ref(&data_dir));
    assert_eq!(get("EXPOSE"), [http_port.to_string()]);
    let health = get("HEALTHCHECK").pop().unwrap();
    let health: Vec<String> =
        serde_json::from_str(health.split_once("CMD ").unwrap().1.trim()).unwrap();
    assert_eq!(get("ENTRYPOINT"), ["[\"dials\"]"]);
    assert_eq!(get("CMD"), ["[\"serve\"]"]);

    // The compose file: the same settings, ports, volume and health command.
    let compose: Yaml = serde_yaml_ng::from_str(&read("packaging/docker/compose.yaml")).unwrap();
    let services = &compose["services"];
    let dials = &services["dials"];
    let dials_env = env_of(dials);
    for k in dials_env.keys() {
        assert!(
            known.contains(k),
            "compose sets {k}, not a setting of dials"
        );
    }
    assert_eq!(dials_env["DIALS_DATA_DIR"], data_dir);
    assert_eq!(port_of(&dials_env["DIALS_HTTP_ADDR"]), http_port);
    let published = strings(&dials["ports"]);
    assert!(
        published
            .iter()
            .all(|p| port_of(p) == http_port && p.starts_with("127.0.0.1:")),
        "{published:?}: the API is published on the host's loopback, at the port it listens on"
    );
    assert!(
        strings(&dials["volumes"])
            .iter()
            .any(|v| v.ends_with(&format!(":{data_dir}")))
    );
    assert_eq!(strings(&dials["healthcheck"]["test"])[1..], health[..]);
    assert_eq!(port_of(&health[3]), http_port);

    // The broker the manager and the echo-service name is the compose service, on the port
    // its configuration listens on.
    let mosquitto = &services["mosquitto"];
    let conf = read("packaging/docker/mosquitto.conf");
    let listener: u16 = conf
        .lines()
        .find_map(|l| l.strip_prefix("listener "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for v in strings(&mosquitto["volumes"]) {
        let src = v.split(':').next().unwrap();
        assert!(repo().join("packaging/docker").join(src).is_file(), "{src}");
    }
    assert!(
        strings(&mosquitto["ports"])
            .iter()
            .all(|p| port_of(p) == listener)
    );
    let broker = format!("mqtt://mosquitto:{listener}");
    assert_eq!(dials_env["DIALS_MQTT_URL"], broker);

    let echo = &services["echo-service"];
    let echo_env = env_of(echo);
    let documented = echo_env_documented();
    for k in echo_env.keys() {
        assert!(documented.contains(k), "echo-service does not read {k}");
    }
    assert_eq!(echo_env["DIALS_MQTT_URL"], broker);
    assert_eq!(
        echo_env["DIALS_SERVER"],
        format!("http://dials:{http_port}")
    );
    assert_eq!(strings(&echo["entrypoint"]), ["echo-service"]);
    let echo_volume = strings(&echo["volumes"])[0]
        .split_once(':')
        .unwrap()
        .1
        .to_owned();
    assert!(echo_env["DIALS_LKG_PATH"].starts_with(&format!("{echo_volume}/")));

    // The manager starts with the compose environment (its own data dir and a free port
    // here), and the health command says it is up.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path(), &[], &[]);
    for (k, v) in &dials_env {
        cmd.env(k, v);
    }
    cmd.env("DIALS_DATA_DIR", dir.path())
        .env("DIALS_HTTP_ADDR", "127.0.0.1:0");
    let running = spawn_and_wait(cmd).await;
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(&health[1..3])
        .arg(&running.base)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    running.signal("TERM").await;

    // And says it is not when nothing listens.
    let down = std::process::Command::new(env!("CARGO_BIN_EXE_dials"))
        .args(["health", "--server", "http://127.0.0.1:9", "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}

fn echo_env_documented() -> BTreeSet<String> {
    let names = echo_env();
    assert!(names.contains("DIALS_TOKEN"), "{names:?}");
    names
}
