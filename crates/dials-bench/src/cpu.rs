//! CPU used during a run, by this process and by the whole machine, from `/proc`: to tell a
//! saturated client or machine from a slow server.

use std::time::Instant;

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on every Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    process: u64,
    server: Option<u64>,
    server_switches: Option<u64>,
    machine: u64,
    at: Instant,
}

/// Cores kept busy between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// By this process (the client, and the floor server when it is measured).
    pub process: f64,
    /// By the server process, when its id is known.
    pub server: Option<f64>,
    /// By everything on the machine.
    pub machine: f64,
    /// Context switches of the server's threads: each is a sleep and a wake-up.
    pub server_switches: Option<u64>,
}

impl Usage {
    /// By anything else: a figure well above zero means the run was disturbed.
    pub fn others(&self) -> Option<f64> {
        self.server
            .map(|server| (self.machine - self.process - server).max(0.0))
    }
}

/// Reads the counters, also of process `server` if given; `None` where `/proc` cannot tell.
pub fn sample(server: Option<u32>) -> Option<Sample> {
    Some(Sample {
        process: process_ticks("self")?,
        server: server.and_then(|pid| process_ticks(&pid.to_string())),
        server_switches: server.and_then(context_switches),
        machine: machine_busy_ticks()?,
        at: Instant::now(),
    })
}

/// The cores used between `from` and `to`.
pub fn between(from: Option<Sample>, to: Option<Sample>) -> Option<Usage> {
    let (from, to) = (from?, to?);
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
    Some(Usage {
        process: cores(to.process.saturating_sub(from.process)),
        server: to
            .server
            .zip(from.server)
            .map(|(t, f)| cores(t.saturating_sub(f))),
        machine: cores(to.machine.saturating_sub(from.machine)),
        server_switches: to
            .server_switches
            .zip(from.server_switches)
            .map(|(t, f)| t.saturating_sub(f)),
    })
}

/// utime + stime of a process (fields 14 and 15 of `/proc/PID/stat`).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is at index 0, so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Voluntary and involuntary context switches of all threads of a process.
fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        for line in status.lines() {
            if let Some((key, value)) = line.split_once(':')
                && key.ends_with("ctxt_switches")
            {
                total += value.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Busy ticks of all CPUs: everything but idle and iowait.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| values.get(i))
        .sum();
    Some(busy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_its_cpu_use() {
        let me = std::process::id();
        let a = sample(Some(me)).expect("/proc is readable");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let usage = between(Some(a), sample(Some(me))).expect("usage");
        assert!(usage.process >= 0.0 && usage.machine >= 0.0);
        assert!(usage.server.is_some() && usage.others().is_some());
        assert!(usage.server_switches.is_some());
    }
}
