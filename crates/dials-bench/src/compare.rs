//! Two builds of dials measured by turns on one machine: a server of each, then write runs and
//! read runs in the order before, after, after, before, … so that whatever drifts on the
//! machine during the runs weighs on both alike. Reports each run's p50, the medians and their
//! ratio, for durable PUTs and for GETs of the config (one connection).

use std::fmt::Write as _;
use std::time::Duration;

use crate::api::Api;
use crate::cli::CompareArgs;
use crate::get::{self, GetOptions};
use crate::put;
use crate::server::{self, Launch};
use crate::stats::Ms;

pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let quiet = |binary| {
        let mut launch = Launch::new(binary, &[])?;
        launch
            .extra
            .extend(["--mqtt".to_owned(), "none".to_owned()]);
        anyhow::Ok(launch)
    };
    let before = quiet(&args.before)?;
    let after = quiet(&args.after)?;
    let dir = args.dir.as_deref();
    let (before_runs, after_runs) = server::measure_with(&before, dir, |_, old| {
        server::measure_with(&after, dir, |_, new| {
            let old_api = Api::at(old.addr(), &old.admin_token()?)?;
            let new_api = Api::at(new.addr(), &new.admin_token()?)?;
            let mut b = Runs::default();
            let mut a = Runs::default();
            for turn in 0..args.runs * 2 {
                // before, after, after, before, before, after, …
                let after_first = turn % 4 == 1 || turn % 4 == 2;
                let (api, pid, runs, who) = if after_first {
                    (&new_api, new.pid()?, &mut a, "after")
                } else {
                    (&old_api, old.pid()?, &mut b, "before")
                };
                let report = put::run(api, "bench", args.writes, Some(pid))?;
                eprintln!("{who}: {report}");
                runs.put.push(report.latency.p50);
                runs.put_errors += report.errors;
                let options = GetOptions {
                    connections: 1,
                    threads: 1,
                    seconds: Duration::from_secs(args.get_seconds),
                    warmup: Duration::from_millis(500),
                    server_pid: Some(pid),
                };
                let report = get::run(api, "bench", &options)?;
                eprintln!("{who}: {report}");
                runs.get.push(report.latency.p50);
                runs.get_errors += report.errors;
            }
            Ok((b, a))
        })
    })?;
    print!("{}", table(&before_runs, &after_runs, args));
    Ok(())
}

/// The p50 of each run of one build.
#[derive(Debug, Default)]
struct Runs {
    put: Vec<Duration>,
    put_errors: u64,
    get: Vec<Duration>,
    get_errors: u64,
}

fn median(p50s: &[Duration]) -> Duration {
    let mut p50s = p50s.to_vec();
    p50s.sort();
    match p50s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => p50s[n / 2],
        n => (p50s[n / 2 - 1] + p50s[n / 2]) / 2,
    }
}

fn table(before: &Runs, after: &Runs, args: &CompareArgs) -> String {
    let mut out = String::from(
        "| build | request | p50 of each run | median | errors |\n|---|---|---|---|---|\n",
    );
    for (request, pick) in [
        (
            "PUT",
            (|r: &Runs| (&r.put, r.put_errors)) as fn(&Runs) -> (&Vec<Duration>, u64),
        ),
        ("GET", |r: &Runs| (&r.get, r.get_errors)),
    ] {
        for (name, runs) in [("before", before), ("after", after)] {
            let (p50s, errors) = pick(runs);
            let each: Vec<String> = p50s.iter().map(|d| Ms(*d).to_string()).collect();
            let _ = writeln!(
                out,
                "| {name} | {request} | {} | {} | {errors} |",
                each.join(", "),
                Ms(median(p50s))
            );
        }
    }
    let ratio = |pick: fn(&Runs) -> &Vec<Duration>| {
        median(pick(after)).as_secs_f64() / median(pick(before)).as_secs_f64().max(1e-12)
    };
    let _ = writeln!(
        out,
        "\nafter/before: PUT {:.2}, GET {:.2} ({} runs of each build: {} durable writes, then \
         {} s of GETs on one connection; MQTT off)",
        ratio(|r| &r.put),
        ratio(|r| &r.get),
        args.runs,
        args.writes,
        args.get_seconds
    );
    out
}
