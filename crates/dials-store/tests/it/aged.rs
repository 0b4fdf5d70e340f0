//! Databases as other dials versions leave them, made from a current one (for the binary's
//! tests of upgrades and refusals, which include this file by path: SQL stays in this crate).

use std::path::Path;

/// Marks the database at `db` as migrated by a dials that knows schema `version`.
pub fn from_a_newer_dials(db: &Path, version: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?1, 'from a newer dials', 1, x'00', 0)",
        [version],
    )
    .unwrap();
}

/// Takes the database at `db` back to before migration 6, which only creates `profiles`.
pub fn from_before_profiles(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("DELETE FROM _sqlx_migrations WHERE version = 6; DROP TABLE profiles;")
        .unwrap();
}

/// Whether the database at `db` has a table `name`.
pub fn has_table(db: &Path, name: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}
