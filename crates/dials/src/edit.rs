//! `dials edit SERVICE`: the config in `$EDITOR`, validated before it is saved, saved only
//! over the version that was read.
//!
//! The editor reopens with the errors on top until the document fits the schema or the user
//! quits by saving the file unchanged (or empty).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use dials_wire::{
    ConfigResponse, FieldError, PutConfig, SECRET_MASK, ValidateRequest, ValidateResponse,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::EditArgs;
use crate::client::{Api, EXIT_CONFLICT, EXIT_INVALID, Failure, failure, service_path};
use crate::output::{Paint, paint, print_json};
use crate::values::resolve;

/// Lines of ours at the top of the file: they are dropped before the document is read.
const YAML_MARK: &str = "#!";
const JSON_MARK: &str = "//";

pub async fn run(args: EditArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let json = args.client.json;
    let base = service_path(&args.service)?;
    let current: ConfigResponse = api.get(&format!("{base}/config")).await?;
    let schema = crate::write::schema(&api, &args.service).await?;
    let header = format!(
        "{service}, version {version}. Save and quit to apply; quit without saving a change \
         (or empty the file) to cancel.",
        service = current.service,
        version = current.version
    );
    let body = if json {
        serde_json::to_string_pretty(&current.config)? + "\n"
    } else {
        let mut out = String::new();
        yaml_with_comments(
            &mut out,
            &current.config,
            schema.as_ref(),
            schema.as_ref(),
            0,
        )?;
        out
    };
    let file = tempfile::Builder::new()
        .prefix(&format!("dials-{}-v{}-", current.service, current.version))
        .suffix(if json { ".json" } else { ".yaml" })
        .tempfile()
        .context("cannot create a file to edit")?;
    let mut errors: Vec<String> = Vec::new();
    let mut text = body;
    loop {
        let written = with_header(&header, &errors, &text, json);
        write_file(file.path(), &written)?;
        open_editor(file.path())?;
        let edited = std::fs::read_to_string(file.path())
            .with_context(|| format!("cannot read {}", file.path().display()))?;
        let document = strip_ours(&edited, json);
        if edited == written || document.trim().is_empty() {
            if errors.is_empty() {
                eprintln!(
                    "no change: {} stays at version {}",
                    current.service, current.version
                );
                return Ok(());
            }
            return Err(Failure {
                code: EXIT_INVALID,
                message: format!(
                    "not saved: the edited {} does not fit its schema",
                    current.service
                ),
                details: errors,
            }
            .into());
        }
        text = document.clone();
        let config = match parse(&document, json) {
            Ok(config) => config,
            Err(e) => {
                errors = vec![format!("cannot read the file: {e}")];
                continue;
            }
        };
        if config == current.config {
            eprintln!(
                "no change: {} stays at version {}",
                current.service, current.version
            );
            return Ok(());
        }
        let check: ValidateResponse =
            api.call(api.request(Method::POST, &format!("{base}/validate")).json(
                &ValidateRequest {
                    config: config.clone(),
                },
            ))
            .await?;
        errors = real_errors(&check.errors, &config);
        if !errors.is_empty() {
            continue;
        }
        let response = api
            .send(
                api.request(Method::PUT, &format!("{base}/config"))
                    .header("If-Match", format!("\"{}\"", current.version))
                    .json(&PutConfig {
                        config,
                        expected_version: None,
                        reason: args.reason.clone(),
                    }),
            )
            .await?;
        let status = response.status();
        if status == StatusCode::PRECONDITION_FAILED || status == StatusCode::CONFLICT {
            let f = failure(response).await;
            let now = now_version(&f);
            let (_, kept) = file.keep().context("cannot keep the edited file")?;
            return Err(Failure::new(
                EXIT_CONFLICT,
                format!(
                    "conflict: {} changed while you edited it: you edited version {}, it is now \
                     at {now}; nothing saved, your edit is kept in {} (run `dials edit {}` again)",
                    current.service,
                    current.version,
                    kept.display(),
                    current.service
                ),
            )
            .into());
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            // Another schema arrived meanwhile: show its verdict like the validation's.
            errors = failure(response).await.details;
            continue;
        }
        if !status.is_success() {
            return Err(failure(response).await.into());
        }
        let saved: ConfigResponse = response.json().await?;
        if json {
            return print_json(&saved);
        }
        crate::output::outln!(
            "{}",
            paint(
                &format!(
                    "{} saved as version {} (was {})",
                    saved.service, saved.version, current.version
                ),
                Paint::Green
            )
        );
        return Ok(());
    }
}

/// "version N" from a conflict's answer, else "a newer version".
fn now_version(f: &Failure) -> String {
    let digits = f
        .message
        .rsplit("version ")
        .next()
        .map(|s| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default();
    if digits.is_empty() {
        "a newer version".into()
    } else {
        format!("version {digits}")
    }
}

/// The validation's errors, less those about a masked secret left as it was read (saving keeps
/// the stored secret there).
fn real_errors(errors: &[FieldError], config: &Value) -> Vec<String> {
    errors
        .iter()
        .filter(|e| {
            e.path.is_empty() || config.pointer(&e.path) != Some(&Value::String(SECRET_MASK.into()))
        })
        .map(|e| {
            format!(
                "{}: {}",
                if e.path.is_empty() { "/" } else { &e.path },
                e.message
            )
        })
        .collect()
}

fn with_header(header: &str, errors: &[String], body: &str, json: bool) -> String {
    let mark = if json { JSON_MARK } else { YAML_MARK };
    let mut out = format!("{mark} {header}\n");
    if !errors.is_empty() {
        out.push_str(&format!("{mark} NOT SAVED: fix these and save again:\n"));
        for e in errors {
            out.push_str(&format!("{mark}   {e}\n"));
        }
    }
    out.push_str(body);
    out
}

/// The document without the lines we put on top.
fn strip_ours(text: &str, json: bool) -> String {
    let mark = if json { JSON_MARK } else { YAML_MARK };
    text.lines()
        .filter(|l| !l.trim_start().starts_with(mark))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn parse(text: &str, json: bool) -> anyhow::Result<Value> {
    let value: Value = if json {
        serde_json::from_str(text)?
    } else {
        serde_yaml_ng::from_str(text)?
    };
    if !value.is_object() {
        bail!("the document must be a mapping of settings");
    }
    Ok(value)
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs `$VISUAL`, else `$EDITOR`, else `vi`, through the shell so that `EDITOR="code -w"`
/// works, and waits for it.
fn open_editor(path: &Path) -> anyhow::Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} failed ({status}); nothing saved");
    }
    Ok(())
}

/// Writes a mapping as block YAML with each key's schema `description` (else `title`) as a
/// comment above it.
fn yaml_with_comments(
    out: &mut String,
    value: &Value,
    root: Option<&Value>,
    schema: Option<&Value>,
    indent: usize,
) -> anyhow::Result<()> {
    let Value::Object(map) = value else {
        out.push_str(&crate::output::yaml(value)?);
        out.push('\n');
        return Ok(());
    };
    if map.is_empty() && indent == 0 {
        out.push_str("{}\n");
        return Ok(());
    }
    let pad = " ".repeat(indent);
    for (key, v) in map {
        let child = match (root, schema) {
            (Some(r), Some(s)) => resolve(r, s)
                .get("properties")
                .and_then(|p| p.get(key))
                .map(|c| resolve(r, c)),
            _ => None,
        };
        if let Some(c) = child {
            let about = c
                .get("description")
                .or_else(|| c.get("title"))
                .and_then(Value::as_str);
            if let Some(about) = about {
                for line in about.lines() {
                    out.push_str(&format!("{pad}# {line}\n"));
                }
            }
        }
        let name = scalar(&Value::String(key.clone()))?;
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str(&format!("{pad}{name}:\n"));
                yaml_with_comments(out, v, root, child, indent + 2)?;
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str(&format!("{pad}{name}:\n"));
                for line in crate::output::yaml(v)?.lines() {
                    out.push_str(&format!("{pad}  {line}\n"));
                }
            }
            _ => out.push_str(&format!("{pad}{name}: {}\n", scalar(v)?)),
        }
    }
    Ok(())
}

/// A scalar (or empty collection) on one line: YAML where it fits on one, else JSON (which
/// YAML reads too).
fn scalar(v: &Value) -> anyhow::Result<String> {
    let yaml = crate::output::yaml(v)?;
    if yaml.contains('\n') {
        Ok(serde_json::to_string(v)?)
    } else {
        Ok(yaml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(config: &Value, schema: Option<&Value>) -> String {
        let mut out = String::new();
        yaml_with_comments(&mut out, config, schema, schema, 0).unwrap();
        out
    }

    #[test]
    fn yaml_carries_descriptions_and_reads_back_as_the_same_document() {
        let schema = json!({"type": "object", "properties": {
            "rate": {"type": "number", "description": "Words per second."},
            "mqtt": {"$ref": "#/$defs/M"},
            "tags": {"type": "array"},
            "note": {"type": "string", "title": "A note"},
        }, "$defs": {"M": {"type": "object", "description": "The broker.",
            "properties": {"host": {"type": "string", "description": "Its name."}}}}});
        let config = json!({"rate": 1.5, "mqtt": {"host": "yes"}, "tags": ["a", {"b": 1}],
            "note": "two\nlines", "empty": {}});
        let text = render(&config, Some(&schema));
        assert_eq!(
            text,
            "# Words per second.\nrate: 1.5\n# The broker.\nmqtt:\n  # Its name.\n  host: yes\n\
             tags:\n  - a\n  - b: 1\n# A note\nnote: \"two\\nlines\"\nempty: {}\n"
        );
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn our_header_lines_are_dropped_before_reading() {
        let text = with_header("svc", &["/a: bad".into()], "a: 1\n", false);
        assert!(text.starts_with("#! svc\n#! NOT SAVED"));
        assert_eq!(strip_ours(&text, false), "a: 1\n");
        let json = with_header("svc", &[], "{\"a\": 1}\n", true);
        assert_eq!(
            parse(&strip_ours(&json, true), true).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn an_unchanged_masked_secret_is_not_an_error() {
        let config = json!({"key": SECRET_MASK, "n": "x"});
        let errors = vec![
            FieldError {
                service: None,
                path: "/key".into(),
                message: "too short".into(),
            },
            FieldError {
                service: None,
                path: "/n".into(),
                message: "not a number".into(),
            },
        ];
        assert_eq!(real_errors(&errors, &config), ["/n: not a number"]);
    }
}
