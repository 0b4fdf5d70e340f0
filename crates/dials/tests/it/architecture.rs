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

/// The source files of every crate of the workspace (`crates/*/src`).
fn sources() -> Vec<std::path::PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for krate in std::fs::read_dir(&crates).unwrap().flatten() {
        out.extend(
            walk(&krate.path().join("src"))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "rs")),
        );
    }
    out
}

#[test]
fn every_module_opens_with_a_doc_comment_saying_what_it_is_for() {
    let missing: Vec<_> = sources()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! line: {missing:?}"
    );
}

#[test]
fn no_two_modules_of_one_crate_import_each_other_in_a_loop() {
    use std::collections::{BTreeMap, BTreeSet};
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = krate.path().join("src");
        // Top-level modules: `src/x.rs` or `src/x/…`.
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let files: Vec<_> = walk(&src)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        let module_of = |path: &Path| -> Option<String> {
            let rel = path.strip_prefix(&src).ok()?;
            let first = rel
                .components()
                .next()?
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            let name = first.trim_end_matches(".rs").to_owned();
            (name != "lib" && name != "main").then_some(name)
        };
        let modules: BTreeSet<String> = files.iter().filter_map(|p| module_of(p)).collect();
        for path in &files {
            let Some(from) = module_of(path) else {
                continue;
            };
            // Code only: a doc comment may name any module.
            let text: String = std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) && name != from {
                    edges.entry(from.clone()).or_default().insert(name);
                }
            }
        }
        // Depth-first search for a cycle.
        fn visit(
            node: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(start) = path.iter().position(|n| n == node) {
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            if done.contains(node) {
                return None;
            }
            path.push(node.to_owned());
            for next in edges.get(node).into_iter().flatten() {
                if let Some(cycle) = visit(next, edges, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(node.to_owned());
            None
        }
        let mut done = BTreeSet::new();
        for module in &modules {
            let cycle = visit(module, &edges, &mut Vec::new(), &mut done);
            assert!(
                cycle.is_none(),
                "{}: modules import each other in a loop: {:?}",
                krate.file_name().to_string_lossy(),
                cycle
            );
        }
    }
}

#[test]
fn the_code_map_in_architecture_md_names_every_dependency_between_our_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let meta = metadata(env!("CARGO_MANIFEST_DIR"));
    let ours: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut rows_above: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `crates/")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let krate = cells[1]
            .trim_matches('`')
            .trim_start_matches("crates/")
            .to_owned();
        let allowed = cells[cells.len() - 2];
        let direct: Vec<String> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == krate.as_str())
            .unwrap_or_else(|| panic!("{krate} in ARCHITECTURE.md is a workspace crate"))["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .filter(|d| ours.contains(d))
            .collect();
        for dep in direct {
            let named = allowed.contains(&dep)
                || (allowed.contains("all of the above") && rows_above.contains(&dep));
            assert!(
                named,
                "ARCHITECTURE.md says {krate} may depend on `{allowed}`, but it depends on {dep}"
            );
        }
        rows_above.push(krate);
    }
    assert!(
        rows_above.len() >= ours.len(),
        "every crate has a row: {rows_above:?}"
    );
}
