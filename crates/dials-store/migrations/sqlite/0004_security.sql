-- Browser sessions: a cookie's SHA-256, the token it stands for, and its CSRF token.
CREATE TABLE sessions (
    hash       BLOB PRIMARY KEY NOT NULL,
    token_id   TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_token ON sessions (token_id);

-- The access log: writes, reveals, token and session changes, denied attempts.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    address TEXT,
    outcome TEXT NOT NULL,
    reason  TEXT
) STRICT;
CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_actor ON audit (actor, id);
