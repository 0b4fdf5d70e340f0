-- Secret values, sealed with AES-256-GCM under a master key kept outside the database. A stored
-- document holds {"$secret": version} where a secret is; this table holds the value of each
-- (service, key, version), so earlier versions can still be restored. `key_id` names the master
-- key that sealed the value, so a rotation can find and reseal what the old key sealed.
CREATE TABLE secrets (
    service    TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (service, key, version)
) STRICT;
CREATE INDEX secrets_key_id ON secrets (key_id);
