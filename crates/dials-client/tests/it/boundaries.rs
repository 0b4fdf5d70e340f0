//! A service that depends on the client gets no part of the manager: no server, no storage, no
//! broker, no web framework, even transitively.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

#[test]
fn the_client_pulls_in_nothing_of_the_manager() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        // Only this machine's dependencies: packages for other platforms may not be on disk.
        .args(["--filter-platform", &host_tuple()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == "dials-client")
        .map(|(id, _)| *id)
        .unwrap();
    // Normal (not dev or build) dependencies, transitively.
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id]) {
                stack.push(dep_id);
            }
        }
    }
    let forbidden = [
        "dials-server",
        "dials-store",
        "dials-mqtt",
        "sqlx",
        "axum",
        "rumqttd",
        "utoipa-swagger-ui",
    ];
    let found: Vec<_> = forbidden.iter().filter(|c| seen.contains(**c)).collect();
    assert!(found.is_empty(), "dials-client pulls in {found:?}");
}

/// The platform this test runs on, as rustc names it.
fn host_tuple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .args(["--print", "host-tuple"])
        .output()
        .expect("rustc runs");
    String::from_utf8(out.stdout)
        .expect("rustc prints UTF-8")
        .trim()
        .to_owned()
}
