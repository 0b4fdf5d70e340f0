-- Leases between the processes that share this database: a name, the process holding it and
-- until when (the database's clock, so the processes' clocks do not matter). The publisher's
-- lease lets exactly one process drain the outbox at a time; another takes it over once it
-- expires.
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT COLLATE "C" NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
