//! Startup time: spawn of `dials serve` to its first answered `GET /health`, for a first start
//! (empty data directory: database created, migrations run, admin token written) and for a
//! restart (the data directory already initialised: the common case).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::server::{self, Launch, Server, StartTimes, Stopped};
use crate::stats::{Ms, Summary};

/// The start times measured, one of each kind per run.
#[derive(Debug, Clone, Default)]
pub struct StartupReport {
    pub first: Vec<StartTimes>,
    pub restart: Vec<StartTimes>,
    /// Stops where SIGTERM killed the server before it had installed its handler.
    pub killed_by_sigterm: u32,
    /// SIGTERM to exit, for every stop.
    pub stops: Vec<Duration>,
}

impl StartupReport {
    fn count(&mut self, stopped: Stopped) {
        self.stops.push(stopped.took);
        if !stopped.graceful {
            self.killed_by_sigterm += 1;
        }
    }

    /// Spawn to first answer, over first starts.
    pub fn first(&self) -> Summary {
        answered(&self.first)
    }

    /// Spawn to first answer, over restarts.
    pub fn restart(&self) -> Summary {
        answered(&self.restart)
    }
}

fn answered(times: &[StartTimes]) -> Summary {
    Summary::of_samples(&times.iter().map(|t| t.answered).collect::<Vec<_>>())
}

fn listening(times: &[StartTimes]) -> Summary {
    Summary::of_samples(&times.iter().map(|t| t.listening).collect::<Vec<_>>())
}

impl fmt::Display for StartupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "startup: spawn to first 200 from /health, {} run(s) of each",
            self.first.len()
        )?;
        for (name, times) in [
            ("first start (empty data dir)", &self.first),
            ("restart (initialised data dir)", &self.restart),
        ] {
            let s = answered(times);
            write!(
                f,
                "  {name}: min {}  p50 {}  max {}  (address printed: p50 {})",
                Ms(s.min),
                Ms(s.p50),
                Ms(s.max),
                Ms(listening(times).p50),
            )?;
            writeln!(f)?;
        }
        write!(
            f,
            "  stop (SIGTERM to exit): p50 {}, max {}; killed by the signal itself, before a \
             handler was installed: {} of {} stops",
            Ms(Summary::of_samples(&self.stops).p50),
            Ms(Summary::of_samples(&self.stops).max),
            self.killed_by_sigterm,
            self.stops.len()
        )
    }
}

/// Starts and stops the server `runs` times from an empty data directory, and each time once
/// more on the directory that start initialised.
pub fn run(launch: &Launch, runs: u32, dir: Option<&Path>) -> anyhow::Result<StartupReport> {
    let runtime = crate::get::runtime(1)?;
    runtime.block_on(async {
        let mut report = StartupReport::default();
        for run in 0..runs {
            let root = server::scratch(dir)?;
            let data = root.path().join("data");
            let (first, t) = Server::start(launch, &data, &root.path().join("first.log")).await?;
            report.count(first.stop().await?);
            report.first.push(t);
            let (again, t) = Server::start(launch, &data, &root.path().join("again.log")).await?;
            report.count(again.stop().await?);
            report.restart.push(t);
            eprintln!(
                "  startup run {}/{runs}: first {}, restart {}",
                run + 1,
                Ms(report.first.last().map_or(Duration::ZERO, |t| t.answered)),
                Ms(t.answered),
            );
        }
        Ok(report)
    })
}
