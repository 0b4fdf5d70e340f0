//! `dials seed`: load a folder of schemas and configs into a running manager without clobbering
//! what is already there.
//!
//! What is missing is created. What exists is compared with the folder — the schema by its
//! hash, the config key by key as the manager would store it (schema defaults filled in on both
//! sides, secrets that are set compared as set) — and left alone unless `--overwrite` is given,
//! so a live edit survives a second seed. A stored secret is never replaced by the folder's
//! example value: where the manager holds a secret, the folder's value is sent as `"********"`,
//! which keeps it. `--dry-run` writes nothing and says what would happen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dials_domain::{Document, KeyChange, SECRET_MASK as MASK, diff};
use dials_schema::CompiledSchema;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::SeedArgs;
use crate::client::{Api, problem_line};

#[derive(Default)]
struct Files {
    schema: Option<PathBuf>,
    config: Option<PathBuf>,
}

/// What seeding did, or would do, to one part (schema or config) of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// The folder has none.
    None,
    /// It was missing and is now there.
    Created,
    /// It was missing; `--dry-run` did not create it.
    WouldCreate,
    /// The manager's matches the folder's.
    Unchanged,
    /// They differ and nothing was changed (no `--overwrite`).
    Differs,
    /// They differed and the folder's replaced the manager's.
    Overwritten,
    /// They differ; `--overwrite --dry-run` did not replace it.
    WouldOverwrite,
    /// It could not be done; see `error`.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::None => "-",
            Outcome::Created => "created",
            Outcome::WouldCreate => "would create",
            Outcome::Unchanged => "unchanged",
            Outcome::Differs => "differs (not applied)",
            Outcome::Overwritten => "overwritten",
            Outcome::WouldOverwrite => "would overwrite",
            Outcome::Failed => "failed",
        }
    }
}

/// One key where the manager's config and the folder's differ.
#[derive(Debug, Serialize)]
struct Change {
    key: String,
    op: &'static str,
    /// The manager's value (secrets masked).
    stored: Option<Value>,
    /// The folder's value (secrets the manager holds shown masked: they are kept).
    seed: Option<Value>,
}

/// One service's line of the report.
#[derive(Debug, Serialize)]
struct Row {
    service: String,
    schema: Outcome,
    config: Outcome,
    /// The config's version after seeding (0: none).
    version: u64,
    /// Where the config differs (whether or not it was overwritten).
    changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What the flags ask for.
#[derive(Debug, Clone, Copy)]
struct Mode {
    overwrite: bool,
    dry_run: bool,
    migrate: bool,
}

/// Seeds every service found in the folder; answers whether all went without error.
pub async fn run(args: SeedArgs) -> anyhow::Result<bool> {
    let api = Api::from_args(&args.client)?;
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    let mode = Mode {
        overwrite: args.overwrite,
        dry_run: args.dry_run,
        migrate: args.migrate,
    };
    let services = scan(&dir)?;
    if services.is_empty() {
        bail!(
            "{} has no SERVICE.schema.json or SERVICE.config.json files",
            dir.display()
        );
    }
    let mut rows = Vec::new();
    let progress = progress(services.len() as u64);
    for (service, files) in &services {
        progress.set_message(service.clone());
        progress.inc(1);
        rows.push(seed_one(&api, service, files, mode).await?);
    }
    progress.finish_and_clear();
    let ok = rows.iter().all(|r| r.error.is_none());
    if args.client.json {
        crate::output::print_json(&rows)?;
    } else {
        print_human(&rows, mode);
    }
    Ok(ok)
}

fn print_human(rows: &[Row], mode: Mode) {
    crate::output::outln!(
        "{:<20} {:<22} {:<22} {:>7}  ERROR",
        "SERVICE",
        "SCHEMA",
        "CONFIG",
        "VERSION"
    );
    for r in rows {
        crate::output::outln!(
            "{:<20} {:<22} {:<22} {:>7}  {}",
            r.service,
            r.schema.label(),
            r.config.label(),
            if r.version == 0 {
                "-".to_owned()
            } else {
                r.version.to_string()
            },
            r.error.as_deref().unwrap_or("")
        );
    }
    let mut hinted = false;
    for r in rows.iter().filter(|r| !r.changes.is_empty()) {
        crate::output::outln!("\n{} ({}):", r.service, r.config.label());
        for c in &r.changes {
            crate::output::outln!(
                "  {:<30} stored {}  seed {}",
                c.key,
                shown(c.stored.as_ref()),
                shown(c.seed.as_ref())
            );
        }
        hinted |= r.config == Outcome::Differs;
    }
    if (hinted || rows.iter().any(|r| r.schema == Outcome::Differs)) && !mode.overwrite {
        crate::output::outln!(
            "\nnothing that exists was changed; `dials seed --overwrite` replaces it with the \
             folder's (stored secrets are kept), `--dry-run` first shows what that would do"
        );
    }
}

fn shown(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_else(|| "(absent)".into())
}

async fn seed_one(api: &Api, service: &str, files: &Files, mode: Mode) -> anyhow::Result<Row> {
    let mut row = Row {
        service: service.to_owned(),
        schema: Outcome::None,
        config: Outcome::None,
        version: 0,
        changes: Vec::new(),
        error: None,
    };
    // The schema the manager holds once this step is done: defaults for the comparison.
    let mut schema_in_force = stored_schema(api, service).await?;
    if let Some(path) = &files.schema {
        let schema = read_json(path)?;
        let compiled = match CompiledSchema::compile(&schema) {
            Ok(c) => c,
            Err(e) => {
                row.schema = Outcome::Failed;
                row.error = Some(format!("schema: {e}"));
                return Ok(row);
            }
        };
        let stored_hash = schema_in_force.as_ref().map(|(hash, _)| hash.clone());
        let (outcome, write) = match stored_hash {
            None if mode.dry_run => (Outcome::WouldCreate, false),
            None => (Outcome::Created, true),
            Some(hash) if hash == compiled.hash() => (Outcome::Unchanged, false),
            Some(_) if !(mode.overwrite || mode.migrate) => (Outcome::Differs, false),
            Some(_) if mode.dry_run => (Outcome::WouldOverwrite, false),
            Some(_) => (Outcome::Overwritten, true),
        };
        row.schema = outcome;
        if write {
            let path = format!(
                "/api/v1/services/{service}/schema{}",
                if mode.migrate { "?migrate=true" } else { "" }
            );
            let r = api
                .send(api.request(Method::PUT, &path).json(&schema))
                .await?;
            if !r.status().is_success() {
                let conflict = r.status() == StatusCode::CONFLICT;
                row.schema = Outcome::Failed;
                let mut error = format!("schema: {}", problem_line(r).await);
                if conflict {
                    error.push_str(
                        " (`--migrate` registers it anyway, repairing the stored config)",
                    );
                }
                row.error = Some(error);
                return Ok(row);
            }
        }
        if outcome != Outcome::Differs {
            schema_in_force = Some((compiled.hash(), compiled));
        }
    }
    let Some(path) = &files.config else {
        row.version = stored_version(api, service).await?;
        return Ok(row);
    };
    let seed = Document::from_value(read_json(path)?)
        .with_context(|| format!("{} is not a config document", path.display()))?;
    let path = format!("/api/v1/services/{service}/config");
    let r = api.send(api.request(Method::GET, &path)).await?;
    let stored: Option<(u64, Document)> = match r.status() {
        StatusCode::NOT_FOUND => None,
        s if s.is_success() => {
            let body: Value = r.json().await?;
            let version = body["version"].as_u64().unwrap_or(0);
            let config = Document::from_value(body["config"].clone())
                .context("the manager's config is not a document")?;
            (version > 0).then_some((version, config))
        }
        _ => {
            row.config = Outcome::Failed;
            row.error = Some(format!("config: {}", problem_line(r).await));
            return Ok(row);
        }
    };
    let Some((version, stored)) = stored else {
        if mode.dry_run {
            row.config = Outcome::WouldCreate;
            return Ok(row);
        }
        let body = json!({"config": seed.to_value(), "reason": "dials seed"});
        let mut request = api.request(Method::PUT, &path).json(&body);
        if schema_in_force.is_none() {
            request = request.header("If-None-Match", "*");
        }
        return finish_write(api, row, request, Outcome::Created).await;
    };
    row.version = version;
    // The folder's document as the manager would hold it: secrets it holds are kept (sent as
    // the mask), defaults filled like a read fills them.
    let mut kept = seed.clone();
    for (key, value) in stored.leaves() {
        if value.as_str() == Some(MASK) {
            kept.set(&key, Value::String(MASK.into()));
        }
    }
    let filled = match &schema_in_force {
        Some((_, compiled)) => compiled.service_defaults(&kept),
        None => kept.clone(),
    };
    row.changes = diff(&stored, &filled).into_iter().map(change).collect();
    if row.changes.is_empty() {
        row.config = Outcome::Unchanged;
        return Ok(row);
    }
    if !mode.overwrite {
        row.config = Outcome::Differs;
        return Ok(row);
    }
    if mode.dry_run {
        row.config = Outcome::WouldOverwrite;
        return Ok(row);
    }
    let body = json!({
        "config": kept.to_value(),
        "expected_version": version,
        "reason": "dials seed --overwrite",
    });
    let request = api.request(Method::PUT, &path).json(&body);
    finish_write(api, row, request, Outcome::Overwritten).await
}

/// Sends a config write and records its outcome in `row`.
async fn finish_write(
    api: &Api,
    mut row: Row,
    request: reqwest::RequestBuilder,
    success: Outcome,
) -> anyhow::Result<Row> {
    let r = api.send(request).await?;
    if r.status().is_success() {
        let answer: Value = r.json().await?;
        row.version = answer["version"].as_u64().unwrap_or(0);
        row.config = success;
    } else {
        row.config = Outcome::Failed;
        row.error = Some(format!("config: {}", problem_line(r).await));
    }
    Ok(row)
}

fn change(c: KeyChange) -> Change {
    Change {
        key: c.key.to_string(),
        op: c.op(),
        stored: c.old,
        seed: c.new,
    }
}

/// The schema the manager holds for `service`, with its hash, if any.
async fn stored_schema(
    api: &Api,
    service: &str,
) -> anyhow::Result<Option<(String, CompiledSchema)>> {
    let r = api
        .send(api.request(Method::GET, &format!("/api/v1/services/{service}/schema")))
        .await?;
    if r.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !r.status().is_success() {
        bail!(
            "{service}: cannot read its schema: {}",
            problem_line(r).await
        );
    }
    let body: Value = r.json().await?;
    let compiled = CompiledSchema::compile(&body["schema"])
        .with_context(|| format!("{service}: the manager's schema does not compile here"))?;
    Ok(Some((compiled.hash(), compiled)))
}

async fn stored_version(api: &Api, service: &str) -> anyhow::Result<u64> {
    let r = api
        .send(api.request(Method::GET, &format!("/api/v1/services/{service}/config")))
        .await?;
    if !r.status().is_success() {
        return Ok(0);
    }
    let body: Value = r.json().await?;
    Ok(body["version"].as_u64().unwrap_or(0))
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if !crate::output::stderr_is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} seeding [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn scan(dir: &Path) -> anyhow::Result<BTreeMap<String, Files>> {
    let mut services: BTreeMap<String, Files> = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(service) = name.strip_suffix(".schema.json") {
            services.entry(service.to_owned()).or_default().schema = Some(path.clone());
        } else if let Some(service) = name.strip_suffix(".config.json") {
            services.entry(service.to_owned()).or_default().config = Some(path.clone());
        }
    }
    Ok(services)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// `examples/tars` of the source tree this binary was built from, else of the working directory.
fn default_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tars");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("examples/tars")
    }
}
