//! The fdatasync floor: 4 KiB written in place and made durable, N times. A durable write of
//! dials (SQLite, WAL, `synchronous=FULL`) pays at least one of these per commit, so this is
//! the least a durable PUT can cost on this disk. With a gap between rounds it shows what the
//! same fdatasync costs a writer that leaves the disk idle in between (a paced one).

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::server;
use crate::stats::{self, Ms, Summary};

const BLOCK: usize = 4096;

/// What the fdatasync rounds measured.
#[derive(Debug, Clone)]
pub struct FsyncReport {
    pub latency: Summary,
    /// The directory measured in.
    pub dir: PathBuf,
    /// The filesystem under it, as `/proc/mounts` names it (`ext4 on /dev/vda`).
    pub filesystem: String,
    /// Idle time between rounds.
    pub gap: Duration,
}

impl fmt::Display for FsyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "fdatasync of 4 KiB in {} ({}), {} rounds{}\n  p50 {}  p90 {}  p99 {}  max {}",
            self.dir.display(),
            self.filesystem,
            l.count,
            if self.gap.is_zero() {
                " back to back".to_owned()
            } else {
                format!(", {} ms idle before each", self.gap.as_millis())
            },
            Ms(l.p50),
            Ms(l.p90),
            Ms(l.p99),
            Ms(l.max),
        )
    }
}

/// Writes 4 KiB at offset 0 and calls `sync_data`, `count` times, `gap` apart, in a temporary
/// directory under `dir` (or the system temp dir).
pub fn run(count: u32, dir: Option<&Path>, gap: Duration) -> anyhow::Result<FsyncReport> {
    let root = server::scratch(dir)?;
    let path = root.path().join("fsync-probe");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut block = [0u8; BLOCK];
    // The file gets its size (and block) once, so each round is a pure overwrite.
    file.write_all_at(&block, 0)?;
    file.sync_all()?;

    let mut hist = stats::histogram()?;
    for i in 0..count {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        block[..4].copy_from_slice(&i.to_le_bytes());
        let started = Instant::now();
        file.write_all_at(&block, 0)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("cannot fdatasync {}", path.display()))?;
        stats::record(&mut hist, started.elapsed());
    }
    let dir = root.path().parent().unwrap_or(root.path()).to_owned();
    Ok(FsyncReport {
        latency: Summary::of(&hist),
        filesystem: filesystem_of(&dir),
        dir,
        gap,
    })
}

/// The filesystem type and device of the mount that holds `dir`.
pub fn filesystem_of(dir: &Path) -> String {
    let Ok(dir) = dir.canonicalize() else {
        return "unknown filesystem".into();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "unknown filesystem".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), format!("{kind} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".into(), |(_, name)| name)
}
