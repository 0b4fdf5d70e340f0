//! The counters that order changes: per-service versions, the global revision and the epoch.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A per-service version: 1 for the first write, +1 on every change, never reused.
/// Version 0 means "nothing written yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    /// The version of a service that has never been written.
    pub const NONE: Version = Version(0);

    /// The version after this one.
    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The global revision: one strictly increasing counter over every change of every service,
/// used to resume a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of one database's life. A rebuilt or re-created database gets a new epoch, so a
/// receiver can tell that versions started over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub Uuid);

impl Epoch {
    /// A fresh random epoch (UUID v4).
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What kind of change produced a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A whole document replaced (PUT), including the first write.
    Put,
    /// An RFC 7396 merge patch applied (PATCH).
    Patch,
    /// An earlier version written again as a new one.
    Restore,
    /// The service removed; its history stays.
    Delete,
    /// The document repaired to fit a newly registered schema.
    Migrate,
    /// A secret set or removed through its own route.
    Secret,
}

impl ChangeKind {
    /// The stable lowercase name stored and shown for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Put => "put",
            ChangeKind::Patch => "patch",
            ChangeKind::Restore => "restore",
            ChangeKind::Delete => "delete",
            ChangeKind::Migrate => "migrate",
            ChangeKind::Secret => "secret",
        }
    }

    /// Parses the stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "put" => ChangeKind::Put,
            "patch" => ChangeKind::Patch,
            "restore" => ChangeKind::Restore,
            "delete" => ChangeKind::Delete,
            "migrate" => ChangeKind::Migrate,
            "secret" => ChangeKind::Secret,
            _ => return None,
        })
    }
}
