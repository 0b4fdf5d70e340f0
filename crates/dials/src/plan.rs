//! How the CLI prints a plan — the answer of `profile apply`, `restore --all` and `import`:
//! one line per service, then its changes key by key.

use std::fmt::Write as _;

use dials_wire::{Plan, PlanAction, PlanItem};

use crate::output::{Paint, compact, paint};

/// Prints a plan for people.
pub fn print(plan: &Plan) -> anyhow::Result<()> {
    let mut out = String::new();
    let width = plan
        .services
        .iter()
        .map(|s| s.service.len())
        .max()
        .unwrap_or(0);
    for s in &plan.services {
        let versions = match s.action {
            PlanAction::Create | PlanAction::Update => {
                format!("version {} → {}", s.from_version, s.version)
            }
            PlanAction::Unchanged => format!("version {}", s.version),
            PlanAction::Skipped | PlanAction::Invalid => String::new(),
        };
        let action = action_word(s.action);
        let line = format!("{:<width$}  {:<9}  {versions}", s.service, action);
        let _ = writeln!(out, "{}", paint(line.trim_end(), colour_of(s.action)));
        for c in &s.changes {
            let line = match (&c.old, &c.new) {
                (None, Some(new)) => format!("  + {} = {}", c.key, compact(new)),
                (Some(old), None) => format!("  - {} (was {})", c.key, compact(old)),
                (Some(old), Some(new)) => {
                    format!("  ~ {}: {} → {}", c.key, compact(old), compact(new))
                }
                (None, None) => format!("  ~ {}", c.key),
            };
            let _ = writeln!(out, "{line}");
        }
        for e in &s.errors {
            let path = if e.path.is_empty() { "/" } else { &e.path };
            let _ = writeln!(
                out,
                "{}",
                paint(&format!("  ! {path}: {}", e.message), Paint::Red)
            );
        }
    }
    for (what, items) in [("schema", &plan.schemas), ("profile", &plan.profiles)] {
        if let Some(items) = items {
            print_items(&mut out, what, items);
        }
    }
    let changed = plan
        .services
        .iter()
        .filter(|s| matches!(s.action, PlanAction::Create | PlanAction::Update))
        .count();
    let unchanged = plan
        .services
        .iter()
        .filter(|s| s.action == PlanAction::Unchanged)
        .count();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let summary = if !plan.ok {
        let invalid: Vec<&str> = plan
            .services
            .iter()
            .filter(|s| s.action == PlanAction::Invalid)
            .map(|s| s.service.as_str())
            .collect();
        paint(
            &format!(
                "dry run: would fail, the config of {} does not fit its schema; nothing written",
                invalid.join(", ")
            ),
            Paint::Red,
        )
    } else if plan.dry_run {
        format!(
            "dry run: {changed} service{} would change, {unchanged} unchanged; nothing written",
            plural(changed)
        )
    } else {
        paint(
            &format!(
                "{changed} service{} changed, {unchanged} unchanged",
                plural(changed)
            ),
            Paint::Green,
        )
    };
    let _ = writeln!(out, "{summary}");
    crate::output::emit(&out)
}

fn print_items(out: &mut String, what: &str, items: &[PlanItem]) {
    for item in items {
        let _ = writeln!(out, "{what} {}: {}", item.name, action_word(item.action));
    }
}

fn action_word(action: PlanAction) -> &'static str {
    match action {
        PlanAction::Create => "create",
        PlanAction::Update => "update",
        PlanAction::Unchanged => "unchanged",
        PlanAction::Skipped => "skipped",
        PlanAction::Invalid => "invalid",
    }
}

fn colour_of(action: PlanAction) -> Paint {
    match action {
        PlanAction::Create | PlanAction::Update => Paint::Green,
        PlanAction::Unchanged | PlanAction::Skipped => Paint::Dim,
        PlanAction::Invalid => Paint::Red,
    }
}

/// A dry run that found invalid members fails like the write would (exit code 4), after the
/// plan was printed.
pub fn outcome(plan: &Plan) -> anyhow::Result<()> {
    if plan.ok {
        return Ok(());
    }
    Err(crate::client::Failure::new(
        crate::client::EXIT_INVALID,
        "the write would fail: a service's config does not fit its schema",
    )
    .into())
}
