//! The commands that only read: `status`, `services`, `get`, `diff`, `history`.

use comfy_table::Color;
use dials_wire::{ConfigResponse, DiffResponse, HistoryPage, ServiceList, Status};
use serde_json::{Value, json};

use crate::cli::{ClientArgs, DiffArgs, GetArgs, HistoryArgs};
use crate::client::{Api, EXIT_ERROR, Failure, service_path, with_query};
use crate::output::{
    self, Paint, align_right, cell, compact, paint, print_json, print_table, table, when, when_opt,
};
use crate::values::{key_segments, parse_time, pointer, rfc3339};

/// `dials status`.
pub async fn status(args: ClientArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args)?;
    let s: Status = api.get("/api/v1/status").await?;
    if args.json {
        return print_json(&s);
    }
    let mode = serde_json::to_value(s.mode)?;
    let mode = mode.as_str().unwrap_or("?");
    let rows = [
        ("server", format!("{} (dials {})", api.base(), s.version)),
        (
            "mode",
            paint(
                mode,
                if mode == "normal" {
                    Paint::Green
                } else {
                    Paint::Yellow
                },
            ),
        ),
        (
            "database",
            format!(
                "{} {} (schema {}){}",
                s.database.backend,
                if s.database.ok {
                    paint("ok", Paint::Green)
                } else {
                    paint("failing", Paint::Red)
                },
                s.database.schema_version,
                s.database
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ),
        ("broker", broker(&s.broker)),
        ("epoch", s.epoch.to_string()),
        ("revision", s.revision.to_string()),
        ("outbox", format!("{} waiting", s.outbox_backlog)),
        ("uptime", output::duration(s.uptime_seconds)),
    ];
    let replica = s.replica.as_ref().filter(|r| r.shared).map(|r| {
        format!(
            "{}, {}, followed to revision {}",
            r.id,
            if r.publishing {
                "publishing"
            } else {
                "standby"
            },
            r.followed_revision
        )
    });
    for (name, value) in rows {
        crate::output::outln!("{name:<9} {value}");
    }
    if let Some(replica) = replica {
        crate::output::outln!("{:<9} {replica}", "replica");
    }
    Ok(())
}

/// The broker's status object as one phrase: `embedded 127.0.0.1:1883, connected`.
fn broker(b: &Value) -> String {
    let mode = b["mode"].as_str().unwrap_or("?");
    if mode == "none" {
        return "none (MQTT disabled)".into();
    }
    let mut text = mode.to_owned();
    for field in ["url", "address", "addr"] {
        if let Some(v) = b[field].as_str() {
            text.push(' ');
            text.push_str(v);
            break;
        }
    }
    if b["publishing"] == Value::Bool(false) && b["connected"] == Value::Bool(false) {
        return format!("{text}, standby (another replica publishes)");
    }
    match b["connected"].as_bool() {
        Some(true) => format!("{text}, {}", paint("connected", Paint::Green)),
        Some(false) => format!("{text}, {}", paint("disconnected", Paint::Red)),
        None => text,
    }
}

/// `dials services`.
pub async fn services(args: ClientArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args)?;
    let list: ServiceList = api.get("/api/v1/services").await?;
    if args.json {
        return print_json(&list);
    }
    if list.services.is_empty() {
        eprintln!("no services yet: `dials seed` loads a demo fleet");
        return Ok(());
    }
    let mut t = table(&["SERVICE", "VERSION", "UPDATED", "BY", "SCHEMA", "INSTANCES"]);
    for s in &list.services {
        let instances = if s.instances.total == 0 {
            cell("-", None)
        } else {
            cell(
                format!("{}/{} current", s.instances.current, s.instances.total),
                (s.instances.current < s.instances.total).then_some(Color::Yellow),
            )
        };
        t.add_row(vec![
            cell(s.name.clone(), None),
            cell(s.version.to_string(), None),
            cell(when_opt(s.updated_at), None),
            cell(s.updated_by.clone().unwrap_or_else(|| "-".into()), None),
            cell(if s.has_schema { "yes" } else { "no" }, None),
            instances,
        ]);
    }
    align_right(&mut t, 1);
    print_table(&t);
    Ok(())
}

/// `dials get SERVICE [KEY]`.
pub async fn get(args: GetArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let segments = args.key.as_deref().map(key_segments).transpose()?;
    let path = format!("{}/config", service_path(&args.service)?);
    let answer: ConfigResponse = api.get(&path).await?;
    let Some(segments) = segments else {
        if args.client.json {
            return print_json(&answer);
        }
        return print_document(&answer.config, args.yaml);
    };
    let key = pointer(&segments);
    let Some(value) = answer.config.pointer(&key) else {
        return Err(Failure::new(
            EXIT_ERROR,
            format!(
                "{} has no key {key} (version {})",
                answer.service, answer.version
            ),
        )
        .into());
    };
    if args.client.json {
        return print_json(&json!({
            "service": answer.service, "version": answer.version, "key": key, "value": value,
        }));
    }
    print_document(value, args.yaml)
}

fn print_document(value: &Value, yaml: bool) -> anyhow::Result<()> {
    if yaml {
        crate::output::outln!("{}", output::yaml(value)?);
        Ok(())
    } else {
        print_json(value)
    }
}

/// `dials diff SERVICE [--from V] [--to V]`.
pub async fn diff(args: DiffArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let mut query = Vec::new();
    if let Some(v) = args.from {
        query.push(("from", v.to_string()));
    }
    if let Some(v) = args.to {
        query.push(("to", v.to_string()));
    }
    let path = format!("{}/diff", service_path(&args.service)?);
    let d: DiffResponse = api.get(&with_query(&path, &query)).await?;
    if args.client.json {
        return print_json(&d);
    }
    crate::output::outln!(
        "{}",
        paint(
            &format!("{} v{} -> v{}", d.service, d.from, d.to),
            Paint::Bold
        )
    );
    if d.changes.is_empty() {
        crate::output::outln!("no changes");
    }
    for c in &d.changes {
        let show = |v: &Option<Value>| v.as_ref().map(compact).unwrap_or_default();
        let line = match c.op.as_str() {
            "added" => paint(&format!("+ {}: {}", c.key, show(&c.new)), Paint::Green),
            "removed" => paint(&format!("- {}: {}", c.key, show(&c.old)), Paint::Red),
            _ => paint(
                &format!("~ {}: {} -> {}", c.key, show(&c.old), show(&c.new)),
                Paint::Yellow,
            ),
        };
        crate::output::outln!("{line}");
    }
    Ok(())
}

/// `dials history [SERVICE] [--key K] [--since T] [--actor A] [--limit N]`.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let mut query = Vec::new();
    if let Some(s) = &args.service {
        query.push(("service", s.clone()));
    }
    if let Some(k) = &args.key {
        query.push(("key", pointer(&key_segments(k)?)));
    }
    if let Some(t) = &args.since {
        query.push(("since", rfc3339(parse_time(t)?)));
    }
    if let Some(a) = &args.actor {
        query.push(("actor", a.clone()));
    }
    if let Some(n) = args.limit {
        query.push(("limit", n.to_string()));
    }
    let page: HistoryPage = api.get(&with_query("/api/v1/history", &query)).await?;
    if args.client.json {
        return print_json(&page);
    }
    if page.items.is_empty() {
        eprintln!("no changes match");
        return Ok(());
    }
    let mut t = table(&[
        "REV", "WHEN", "SERVICE", "VERSION", "KIND", "KEY", "CHANGE", "BY", "REASON",
    ]);
    for h in &page.items {
        let show = |v: &Option<Value>| v.as_ref().map(compact).unwrap_or_else(|| "-".into());
        t.add_row(vec![
            cell(h.revision.to_string(), None),
            cell(when(h.at), None),
            cell(h.service.clone(), None),
            cell(h.version.to_string(), None),
            cell(h.kind.clone(), None),
            cell(h.key.clone(), None),
            cell(
                format!("{} -> {}", show(&h.old), show(&h.new)),
                Some(Color::Yellow),
            ),
            cell(h.actor.clone(), None),
            cell(h.reason.clone().unwrap_or_default(), None),
        ]);
    }
    align_right(&mut t, 0);
    align_right(&mut t, 3);
    print_table(&t);
    if page.next_cursor.is_some() {
        eprintln!("older changes exist: narrow with --since or --key, or raise --limit");
    }
    Ok(())
}
