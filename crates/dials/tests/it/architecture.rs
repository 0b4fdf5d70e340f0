//! The boundaries ARCHITECTURE.md promises, checked: the pure crates stay free of I/O, even
//! through their dependencies, and SQL stays in the store.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

/// Crates that do network, database or async I/O.
const IO_CRATES: [&str; 9] = [
    "tokio", "sqlx", "hyper", "axum", "rumqttc", "rumqttd", "reqwest", "mio", "socket2",
];

fn metadata() -> Value {
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
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

/// Every crate `root` depends on for normal builds, transitively.
fn normal_dependencies(meta: &Value, root: &str) -> BTreeSet<String> {
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
    let start = names
        .iter()
        .find(|(_, n)| **n == root)
        .map(|(id, _)| *id)
        .expect("crate in workspace");
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(names[dep_id].to_owned()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn the_pure_crates_depend_on_no_io_crate_even_transitively() {
    let meta = metadata();
    for krate in ["dials-domain", "dials-schema", "dials-wire", "dials-vault"] {
        let deps = normal_dependencies(&meta, krate);
        let io: Vec<_> = IO_CRATES.iter().filter(|c| deps.contains(**c)).collect();
        assert!(io.is_empty(), "{krate} pulls in {io:?}");
    }
}

#[test]
fn sql_is_written_only_in_the_store() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    for entry in walk(&crates) {
        let path = entry.to_string_lossy().into_owned();
        if !path.ends_with(".rs")
            || path.contains("dials-store")
            || path.contains("/target/")
            || path.ends_with("architecture.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        if text.contains("sqlx::query")
            || text.contains("\"SELECT ")
            || text.contains("\"INSERT INTO")
        {
            offenders.push(path);
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL outside dials-store: {offenders:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n == "target" || n == "node_modules")
                {
                    continue;
                }
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
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
