//! The boundaries ARCHITECTURE.md promises, checked: the pure crates stay free of I/O, even
//! through their dependencies, and SQL stays in the store.

use std::path::Path;

use crate::metadata::{metadata, normal_dependencies};

/// Crates that do network, database or async I/O.
const IO_CRATES: [&str; 9] = [
    "tokio", "sqlx", "hyper", "axum", "rumqttc", "rumqttd", "reqwest", "mio", "socket2",
];

#[test]
fn the_pure_crates_depend_on_no_io_crate_even_transitively() {
    let meta = metadata(env!("CARGO_MANIFEST_DIR"));
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
