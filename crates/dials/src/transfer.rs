//! `dials export [FILE]` and `dials import FILE`: the whole fleet as one JSON or YAML file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dials_wire::{EXPORT_PASSPHRASE_HEADER, Plan};
use reqwest::Method;

use crate::cli::{ExportArgs, ImportArgs};
use crate::client::{Api, failure, usage};
use crate::output::{Paint, paint, print_json};

/// The environment variable holding an export's passphrase.
const PASSPHRASE_ENV: &str = "DIALS_EXPORT_PASSPHRASE";

/// Whether a file is YAML by its extension (`.yaml`, `.yml`); anything else is JSON.
fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The passphrase: the first line of `--passphrase-file`, else `DIALS_EXPORT_PASSPHRASE`.
fn passphrase(file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
        let line = text.lines().next().unwrap_or_default().to_owned();
        if line.is_empty() {
            return Err(usage(format!(
                "the passphrase file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(line));
    }
    Ok(std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty()))
}

/// Asks for the passphrase on the terminal, without echo; `confirm` asks twice.
fn prompt(confirm: bool) -> anyhow::Result<String> {
    if !crate::output::stderr_is_terminal() {
        return Err(usage(
            "no passphrase: give --passphrase-file or set DIALS_EXPORT_PASSPHRASE (there is no \
             terminal to ask on)",
        ));
    }
    let first = rpassword::prompt_password("passphrase for the secrets: ")
        .context("cannot read the passphrase")?;
    if first.is_empty() {
        return Err(usage("the passphrase is empty"));
    }
    if confirm {
        let again = rpassword::prompt_password("the same passphrase again: ")
            .context("cannot read the passphrase")?;
        if again != first {
            return Err(usage("the two passphrases differ"));
        }
    }
    Ok(first)
}

/// A spinner on stderr when it is a terminal; hidden otherwise.
fn spinner(message: String) -> indicatif::ProgressBar {
    if !crate::output::stderr_is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {bytes}") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// `dials export [FILE]`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let yaml = args.yaml || args.file.as_deref().is_some_and(is_yaml);
    let passphrase = match passphrase(args.passphrase_file.as_ref())? {
        None if args.with_secrets => Some(prompt(true)?),
        given => given,
    };
    let mut request = api.request(Method::GET, "/api/v1/export").header(
        reqwest::header::ACCEPT,
        if yaml {
            "application/yaml"
        } else {
            "application/json"
        },
    );
    if let Some(p) = &passphrase {
        request = request.header(EXPORT_PASSPHRASE_HEADER, p);
    }
    let bar = spinner("exporting".into());
    let mut response = api.send(request).await?;
    if !response.status().is_success() {
        bar.finish_and_clear();
        return Err(failure(response).await.into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bar.inc(chunk.len() as u64);
        body.extend_from_slice(&chunk);
    }
    bar.finish_and_clear();
    let Some(path) = &args.file else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&body)?;
        if !body.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        return Ok(());
    };
    // The file may hold encrypted secrets: readable by its owner only, written whole.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, &body)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let summary: serde_json::Value = if yaml {
        serde_yaml_ng::from_slice(&body)?
    } else {
        serde_json::from_slice(&body)?
    };
    let services = summary["services"].as_array().map_or(0, Vec::len);
    let profiles = summary["profiles"].as_array().map_or(0, Vec::len);
    let secrets = if summary.get("secrets").is_some() {
        "secret values encrypted with the passphrase"
    } else {
        "secrets named, not valued"
    };
    if args.client.json {
        return print_json(&serde_json::json!({
            "file": path.display().to_string(),
            "services": services,
            "profiles": profiles,
            "secrets": summary.get("secrets").is_some(),
        }));
    }
    crate::output::outln!(
        "{}",
        paint(
            &format!(
                "exported {services} service{} and {profiles} profile{} to {} ({secrets})",
                if services == 1 { "" } else { "s" },
                if profiles == 1 { "" } else { "s" },
                path.display()
            ),
            Paint::Green
        )
    );
    Ok(())
}

/// Whether an export file carries encrypted secret values (a file that does not parse is left
/// for the server to refuse).
fn carries_secrets(body: &[u8], yaml: bool) -> bool {
    let file: Option<serde_json::Value> = if yaml {
        serde_yaml_ng::from_slice(body).ok()
    } else {
        serde_json::from_slice(body).ok()
    };
    file.is_some_and(|f| f.get("secrets").is_some_and(|s| !s.is_null()))
}

/// `dials import FILE [--dry-run]`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let api = Api::from_args(&args.client)?;
    let mut passphrase = passphrase(args.passphrase_file.as_ref())?;
    if passphrase.is_none() && carries_secrets(&body, is_yaml(&args.file)) {
        passphrase = Some(prompt(false)?);
    }
    let content_type = if is_yaml(&args.file) {
        "application/yaml"
    } else {
        "application/json"
    };
    let path = format!("/api/v1/import?dry_run={}", args.dry_run);
    let mut request = api
        .request(Method::POST, &path)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(p) = &passphrase {
        request = request.header(EXPORT_PASSPHRASE_HEADER, p);
    }
    let bar = spinner(format!("importing {}", args.file.display()));
    let plan: Result<Plan, _> = api.call(request).await;
    bar.finish_and_clear();
    let plan = plan?;
    if args.client.json {
        print_json(&plan)?;
    } else {
        crate::plan::print(&plan)?;
    }
    crate::plan::outcome(&plan)
}
