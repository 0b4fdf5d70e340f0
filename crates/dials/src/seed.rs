//! `dials seed`: load a folder of schemas and configs into a running manager.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::SeedArgs;
use crate::client::{Api, problem_line};

#[derive(Default)]
struct Files {
    schema: Option<PathBuf>,
    config: Option<PathBuf>,
}

/// Loads every `SERVICE.schema.json` then every `SERVICE.config.json` in the folder.
pub async fn run(args: SeedArgs) -> anyhow::Result<bool> {
    let api = Api::from_args(&args.client)?;
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    let services = scan(&dir)?;
    if services.is_empty() {
        bail!(
            "{} has no SERVICE.schema.json or SERVICE.config.json files",
            dir.display()
        );
    }
    let mut ok = true;
    let mut rows = Vec::new();
    let progress = progress(services.len() as u64);
    for (service, files) in &services {
        progress.set_message(service.clone());
        progress.inc(1);
        let mut row = json!({"service": service, "schema": "-", "version": null, "error": null});
        if let Some(path) = &files.schema {
            let schema = read_json(path)?;
            let r = api
                .send(
                    api.request(Method::PUT, &format!("/api/v1/services/{service}/schema"))
                        .json(&schema),
                )
                .await?;
            if r.status().is_success() {
                row["schema"] = json!("registered");
            } else {
                row["error"] = json!(format!("schema: {}", problem_line(r).await));
                ok = false;
                rows.push(row);
                continue;
            }
        }
        if let Some(path) = &files.config {
            let config = read_json(path)?;
            match write_config(&api, service, config, files.schema.is_some()).await? {
                Ok(version) => row["version"] = json!(version),
                Err(e) => {
                    row["error"] = json!(format!("config: {e}"));
                    ok = false;
                }
            }
        }
        rows.push(row);
    }
    progress.finish_and_clear();
    if args.client.json {
        crate::output::outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        crate::output::outln!("{:<20} {:<11} {:>7}  ERROR", "SERVICE", "SCHEMA", "VERSION");
        for r in &rows {
            crate::output::outln!(
                "{:<20} {:<11} {:>7}  {}",
                r["service"].as_str().unwrap_or(""),
                r["schema"].as_str().unwrap_or(""),
                r["version"]
                    .as_u64()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                r["error"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ok)
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

/// Replaces the config; a service with neither schema nor document is created first.
async fn write_config(
    api: &Api,
    service: &str,
    config: Value,
    has_schema: bool,
) -> anyhow::Result<Result<u64, String>> {
    let path = format!("/api/v1/services/{service}/config");
    let body = json!({"config": config, "reason": "dials seed"});
    let mut r = api
        .send(api.request(Method::PUT, &path).json(&body))
        .await?;
    if r.status() == StatusCode::NOT_FOUND && !has_schema {
        r = api
            .send(
                api.request(Method::PUT, &path)
                    .header("If-None-Match", "*")
                    .json(&body),
            )
            .await?;
    }
    if r.status().is_success() {
        let answer: Value = r.json().await?;
        Ok(Ok(answer["version"].as_u64().unwrap_or(0)))
    } else {
        Ok(Err(problem_line(r).await))
    }
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
