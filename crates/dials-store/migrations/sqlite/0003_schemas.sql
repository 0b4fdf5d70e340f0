-- Each service's JSON Schema, as registered by the service or uploaded by an admin.
CREATE TABLE schemas (
    service    TEXT PRIMARY KEY NOT NULL,
    schema     TEXT NOT NULL,
    hash       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
) STRICT;
