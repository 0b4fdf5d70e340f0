//! How the CLI prints: aligned tables, pretty JSON or YAML, and colours only on a terminal
//! whose user did not ask for `NO_COLOR`.

use std::io::IsTerminal;

use comfy_table::{Attribute, Cell, CellAlignment, Color, ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset or empty.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stderr is a terminal (progress bars, hints).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A colour to paint text with, when colours are on.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Green,
    Red,
    Yellow,
    Dim,
    Bold,
}

/// `text` in `paint` when colours are on, else as is.
pub fn paint(text: &str, paint: Paint) -> String {
    if !colour() {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Green => "32",
        Paint::Red => "31",
        Paint::Yellow => "33",
        Paint::Dim => "2",
        Paint::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Writes `text` to stdout. A reader that went away (`dials … | head`, `dials watch | head -3`)
/// ends the program quietly, as it ends any writer into a pipe; no panic, no message.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Writes one line to stdout through [`emit`]; what `println!` is for the commands' output.
pub fn emit_line(line: std::fmt::Arguments<'_>) {
    if let Err(e) = emit(&format!("{line}\n")) {
        eprintln!("dials: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the commands' output: through [`emit_line`], so a closed pipe ends the
/// program quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::emit_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row, no borders, columns two spaces apart.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if colour() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(
        header
            .iter()
            .map(|h| Cell::new(h).add_attribute(Attribute::Bold)),
    );
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// Right-aligns a table column (numbers).
pub fn align_right(table: &mut Table, index: usize) {
    if let Some(column) = table.column_mut(index) {
        column.set_cell_alignment(CellAlignment::Right);
    }
}

/// A coloured cell (plain when colours are off: the table drops styling then).
pub fn cell(text: impl Into<String>, colour: Option<Color>) -> Cell {
    let cell = Cell::new(text.into());
    match colour {
        Some(c) => cell.fg(c),
        None => cell,
    }
}

/// Prints a table without the trailing spaces of its last column.
pub fn print_table(table: &Table) {
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// A timestamp as people read it: `2026-05-01 12:00:00Z`, UTC, to the second.
pub fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// An optional timestamp, `-` when absent.
pub fn when_opt(at: Option<OffsetDateTime>) -> String {
    at.map(when).unwrap_or_else(|| "-".into())
}

/// A JSON value on one line, for table cells and change lines.
pub fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A JSON value as a YAML document, without the trailing newline.
pub fn yaml(value: &Value) -> anyhow::Result<String> {
    let text = serde_yaml_ng::to_string(value)?;
    Ok(text.trim_end().to_owned())
}

/// A duration in seconds as `3d 4h`, `2h 5m`, `4m 12s` or `9s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_two_largest_units() {
        assert_eq!(duration(9.7), "9s");
        assert_eq!(duration(252.0), "4m 12s");
        assert_eq!(duration(7500.0), "2h 5m");
        assert_eq!(duration(273_600.0), "3d 4h");
    }

    #[test]
    fn timestamps_are_utc_to_the_second() {
        let at = time::macros::datetime!(2026-05-01 14:00:00.123 +02:00);
        assert_eq!(when(at), "2026-05-01 12:00:00Z");
    }
}
