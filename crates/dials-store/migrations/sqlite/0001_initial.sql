-- dials storage, SQLite backend, first schema.
-- Times are integer microseconds since the Unix epoch (UTC), so they order and compare exactly.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- The current state of every service ever written. A deleted service keeps its row with a NULL
-- document so its version counter carries on and is never reused.
CREATE TABLE services (
    name       TEXT PRIMARY KEY NOT NULL,
    version    INTEGER NOT NULL,
    revision   INTEGER NOT NULL,
    document   TEXT,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;

-- One row per change: the global revision, the per-service version and the full document as
-- of that version (NULL for a deletion). AUTOINCREMENT: a revision is never reused.
CREATE TABLE changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    service  TEXT NOT NULL,
    version  INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    document TEXT,
    actor    TEXT NOT NULL,
    reason   TEXT,
    at       INTEGER NOT NULL,
    UNIQUE (service, version)
) STRICT;
CREATE INDEX changes_service_at ON changes (service, at);

-- One row per changed key of each change.
CREATE TABLE history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    revision  INTEGER NOT NULL REFERENCES changes (revision),
    service   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    key       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    actor     TEXT NOT NULL,
    reason    TEXT,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX history_service_key ON history (service, key, id);
CREATE INDEX history_at ON history (at);
CREATE INDEX history_actor ON history (actor, id);

-- Changes waiting to be published over MQTT, written in the same transaction as the change.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    revision     INTEGER NOT NULL REFERENCES changes (revision),
    service      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
) STRICT;
CREATE INDEX outbox_pending ON outbox (published_at, id);

-- API tokens, stored only as the SHA-256 of the secret.
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    service      TEXT,
    hash         BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
