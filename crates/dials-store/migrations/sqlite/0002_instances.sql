-- What each running instance of a service reported on config/applied/{service}/{instance}.
CREATE TABLE instances (
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    schema_hash TEXT,
    overrides   TEXT,
    reported_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (service, instance)
) STRICT;
