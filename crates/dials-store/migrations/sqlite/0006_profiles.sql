-- Profiles: named snapshots of chosen services. `members` is a JSON array of
-- {"service", "version", "document"}, each document as stored (placeholders where secrets are,
-- so a profile refers to sealed values in `secrets` and never holds one).
CREATE TABLE profiles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    members     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
) STRICT;
