//! The tables a whole installation is made of, as an export reads them: each table's columns
//! and the order its rows are read in, once for both backends. A migration that adds a column
//! or a table adds it here too; the store's tests compare this list with the tables each
//! backend's migrations make, so an export cannot silently leave a column behind.

/// One table as an export reads it.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Every column, in the order the export reads them.
    pub columns: &'static [&'static str],
    /// The `ORDER BY` of the export, so two exports of one state are the same.
    pub order: &'static str,
}

impl Table {
    /// The export's query: every column of every row, in order.
    pub fn select(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.columns.join(", "),
            self.name,
            self.order
        )
    }
}

/// Each service's current state.
pub const SERVICES: Table = Table {
    name: "services",
    columns: &[
        "name",
        "version",
        "revision",
        "document",
        "updated_at",
        "updated_by",
    ],
    order: "name",
};

/// Every version of every service.
pub const CHANGES: Table = Table {
    name: "changes",
    columns: &[
        "service", "version", "revision", "kind", "document", "actor", "reason", "at",
    ],
    order: "revision",
};

/// One row per changed key.
pub const HISTORY: Table = Table {
    name: "history",
    columns: &[
        "id",
        "revision",
        "service",
        "version",
        "key",
        "kind",
        "old_value",
        "new_value",
        "actor",
        "reason",
        "at",
    ],
    order: "id",
};

/// What the publisher has published and what it has still to.
pub const OUTBOX: Table = Table {
    name: "outbox",
    columns: &[
        "id",
        "revision",
        "service",
        "version",
        "created_at",
        "published_at",
    ],
    order: "id",
};

/// Registered schemas.
pub const SCHEMAS: Table = Table {
    name: "schemas",
    columns: &["service", "schema", "hash", "updated_at", "updated_by"],
    order: "service",
};

/// Sealed secret values.
pub const SECRETS: Table = Table {
    name: "secrets",
    columns: &[
        "service",
        "key",
        "version",
        "key_id",
        "nonce",
        "ciphertext",
        "created_at",
        "created_by",
    ],
    order: "service, key, version",
};

/// API tokens, by hash.
pub const TOKENS: Table = Table {
    name: "tokens",
    columns: &[
        "id",
        "name",
        "role",
        "service",
        "hash",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ],
    order: "created_at, id",
};

/// Browser sessions, by hash.
pub const SESSIONS: Table = Table {
    name: "sessions",
    columns: &["hash", "token_id", "csrf", "created_at", "expires_at"],
    order: "hash",
};

/// Saved profiles.
pub const PROFILES: Table = Table {
    name: "profiles",
    columns: &["name", "description", "members", "created_at", "created_by"],
    order: "name",
};

/// Each instance's last applied report.
pub const INSTANCES: Table = Table {
    name: "instances",
    columns: &[
        "service",
        "instance",
        "version",
        "status",
        "error",
        "schema_hash",
        "overrides",
        "reported_at",
        "received_at",
    ],
    order: "service, instance",
};

/// The access log.
pub const AUDIT: Table = Table {
    name: "audit",
    columns: &[
        "id", "at", "actor", "action", "target", "address", "outcome", "reason",
    ],
    order: "id",
};

/// Every table an export reads.
pub const EXPORTED: &[Table] = &[
    SERVICES, CHANGES, HISTORY, OUTBOX, SCHEMAS, SECRETS, TOKENS, SESSIONS, PROFILES, INSTANCES,
    AUDIT,
];

/// The tables an export does not read, each kept apart for a reason: `meta` holds the epoch
/// (exported on its own, and made anew by a restore or a migration), `revision` is
/// PostgreSQL's counter (the export carries the revision it stands at), `leases` says which
/// replica publishes now (nothing to carry over).
pub const NOT_EXPORTED: &[&str] = &["meta", "revision", "leases"];
