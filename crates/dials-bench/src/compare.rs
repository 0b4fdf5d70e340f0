//! Two builds of dials measured by turns on one machine: a server of each, then write runs in
//! the order before, after, after, before, … so that whatever drifts on the machine during the
//! runs weighs on both alike. Reports each run's p50, the medians and their ratio.

use std::fmt::Write as _;
use std::time::Duration;

use crate::api::Api;
use crate::cli::CompareArgs;
use crate::put::{self, PutReport};
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
            let (mut b, mut a) = (Vec::new(), Vec::new());
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
                runs.push(report);
            }
            Ok((b, a))
        })
    })?;
    print!("{}", table(&before_runs, &after_runs, args));
    Ok(())
}

fn median(runs: &[PutReport]) -> Duration {
    let mut p50s: Vec<Duration> = runs.iter().map(|r| r.latency.p50).collect();
    p50s.sort();
    match p50s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => p50s[n / 2],
        n => (p50s[n / 2 - 1] + p50s[n / 2]) / 2,
    }
}

fn table(before: &[PutReport], after: &[PutReport], args: &CompareArgs) -> String {
    let mut out =
        String::from("| build | PUT p50 of each run | median | errors |\n|---|---|---|---|\n");
    for (name, runs) in [("before", before), ("after", after)] {
        let each: Vec<String> = runs.iter().map(|r| Ms(r.latency.p50).to_string()).collect();
        let errors: u64 = runs.iter().map(|r| r.errors).sum();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {errors} |",
            each.join(", "),
            Ms(median(runs))
        );
    }
    let ratio = median(after).as_secs_f64() / median(before).as_secs_f64().max(1e-12);
    let _ = writeln!(
        out,
        "\nafter/before: {ratio:.2} ({} runs of {} durable writes each, MQTT off)",
        args.runs, args.writes
    );
    out
}
