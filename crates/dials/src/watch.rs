//! `dials watch [SERVICE]`: follows `GET /api/v1/watch` (Server-Sent Events), one line per
//! change, and reconnects after the last revision it saw, so nothing is missed or repeated.

use std::time::Duration;

use anyhow::Context;
use dials_wire::{Status, WatchEvent};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::WatchArgs;
use crate::client::{Api, failure, with_query};
use crate::output::{Paint, paint};

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One parsed SSE event.
#[derive(Debug, Default, PartialEq)]
struct Event {
    name: String,
    data: String,
}

/// Splits an SSE byte stream into events, whatever the chunk boundaries.
#[derive(Debug, Default)]
struct Parser {
    buffer: Vec<u8>,
    current: Event,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if !event.data.is_empty() || !event.name.is_empty() {
                    events.push(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.name = value.to_owned(),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        events
    }
}

/// How a connection ended.
enum End {
    /// `--count` changes were printed.
    Done,
    /// The stream closed or broke: reconnect.
    Lost(String),
    /// The server said the revision is in its future: the database was re-created.
    Recreated(String),
}

pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let api = Api::from_args(&args.client)?;
    let mut since = match args.since {
        Some(rev) => rev,
        None => latest(&api).await?,
    };
    let mut seen = 0u64;
    let mut backoff = Duration::from_millis(250);
    loop {
        match follow(&api, &args, &mut since, &mut seen).await {
            Ok(End::Done) => return Ok(()),
            Ok(End::Recreated(detail)) => {
                let latest = latest(&api).await?;
                say(&format!(
                    "dials: the database at {} was re-created ({detail}); following from its \
                     latest revision {latest}",
                    api.base()
                ));
                since = latest;
                backoff = Duration::from_millis(250);
            }
            Ok(End::Lost(why)) => {
                say(&format!(
                    "dials: {why}; reconnecting after revision {since} in {:.1}s",
                    backoff.as_secs_f64()
                ));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The latest revision, from `GET /api/v1/status`.
async fn latest(api: &Api) -> anyhow::Result<u64> {
    let status: Status = api.get("/api/v1/status").await?;
    Ok(status.revision)
}

/// One connection: prints every change until the stream ends.
async fn follow(
    api: &Api,
    args: &WatchArgs,
    since: &mut u64,
    seen: &mut u64,
) -> anyhow::Result<End> {
    let mut query = vec![("since", since.to_string())];
    if let Some(s) = &args.service {
        query.push(("service", s.clone()));
    }
    let request = api
        .request(Method::GET, &with_query("/api/v1/watch", &query))
        .header("Accept", "text/event-stream");
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Ok(End::Lost(format!(
                "cannot reach dials at {}: {e}",
                api.base()
            )));
        }
    };
    let status = response.status();
    if status == StatusCode::BAD_REQUEST {
        let f = failure(response).await;
        if f.message.contains("future revision") {
            return Ok(End::Recreated(f.message));
        }
        return Err(f.into());
    }
    if status.is_server_error() {
        return Ok(End::Lost(format!("the server answered {status}")));
    }
    if !status.is_success() {
        return Err(failure(response).await.into());
    }
    say(&format!(
        "watching {} after revision {since} (Ctrl-C to stop)",
        args.service.as_deref().unwrap_or("every service")
    ));
    let mut parser = Parser::default();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(End::Lost("the server closed the stream".into())),
            Err(e) => return Ok(End::Lost(format!("the stream broke: {e}"))),
        };
        for event in parser.feed(&chunk) {
            match event.name.as_str() {
                "change" | "" => {
                    let change: WatchEvent = serde_json::from_str(&event.data)
                        .context("the server sent a change that is not a change")?;
                    *since = change.revision.max(*since);
                    print_change(&change, args.client.json)?;
                    *seen += 1;
                    if args.count.is_some_and(|n| *seen >= n) {
                        return Ok(End::Done);
                    }
                }
                "lagged" => {
                    let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
                    if let Some(resume) = data["resume_from"].as_u64() {
                        *since = resume;
                    }
                    return Ok(End::Lost(
                        "this watcher fell behind and the server dropped it".into(),
                    ));
                }
                _ => {}
            }
        }
    }
}

/// A note on stderr. A watch runs for days: a closed stderr must not stop it.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn print_change(c: &WatchEvent, json: bool) -> anyhow::Result<()> {
    if json {
        crate::output::outln!("{}", serde_json::to_string(c)?);
        return Ok(());
    }
    let reason = c
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    crate::output::outln!(
        "{}  {} {}  {}  by {}{reason}",
        paint(&format!("rev {}", c.revision), Paint::Dim),
        paint(&c.service, Paint::Bold),
        paint(&format!("v{}", c.version), Paint::Green),
        c.kind,
        c.actor,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_across_chunk_boundaries_and_comments_skipped() {
        let mut p = Parser::default();
        assert!(p.feed(b": keep-alive\n\nevent: chan").is_empty());
        let events = p.feed(b"ge\r\nid: 3\r\ndata: {\"a\":1}\r\n\r\nevent: lagged\ndata: x\n\n");
        assert_eq!(
            events,
            [
                Event {
                    name: "change".into(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    name: "lagged".into(),
                    data: "x".into()
                }
            ]
        );
    }
}
