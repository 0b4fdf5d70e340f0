//! The export's list of tables and columns (`dials_store::tables`) against the tables each
//! backend's migrations make: a column or a table a migration adds and the export does not read
//! would be lost by every export, backup-by-export and `dials migrate-store`, silently.

use std::collections::{BTreeMap, BTreeSet};

use dials_store::tables::{EXPORTED, NOT_EXPORTED};
use dials_store::{Database, PgStore, SqliteStore};
use sqlx::Connection;

use crate::throwaway::ThrowawayDb;

type Columns = BTreeMap<String, BTreeSet<String>>;

/// What the export reads, table by table.
fn exported() -> Columns {
    EXPORTED
        .iter()
        .map(|t| {
            (
                t.name.to_owned(),
                t.columns.iter().map(|c| (*c).to_owned()).collect(),
            )
        })
        .collect()
}

/// The tables and columns of `these` that `those` lacks, as `table` or `table.column`.
fn beyond(these: &Columns, those: &Columns) -> Vec<String> {
    these
        .iter()
        .flat_map(|(table, columns)| match those.get(table) {
            None => vec![format!("table {table}")],
            Some(there) => columns
                .difference(there)
                .map(|c| format!("{table}.{c}"))
                .collect(),
        })
        .collect()
}

/// `(table, column)` pairs, gathered by table.
fn by_table(pairs: Vec<(String, String)>) -> Columns {
    let mut made = Columns::new();
    for (table, column) in pairs {
        made.entry(table).or_default().insert(column);
    }
    made
}

/// Compares what the migrations made with what the export reads.
fn assert_covered(backend: &str, mut made: Columns) {
    assert!(made.contains_key("services"), "{made:?}");
    for name in NOT_EXPORTED {
        made.remove(*name);
    }
    let exported = exported();
    let missing = beyond(&made, &exported);
    assert!(
        missing.is_empty(),
        "{backend}: the export leaves behind {missing:?}: add them to dials_store::tables (and \
         the import), or to NOT_EXPORTED with the reason"
    );
    let gone = beyond(&exported, &made);
    assert!(
        gone.is_empty(),
        "{backend}: the export reads {gone:?}, which its migrations do not make"
    );
}

#[tokio::test]
async fn the_export_reads_every_column_sqlite_migrations_make() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dials.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let pairs = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let made = by_table(pairs);
    assert_covered("SQLite", made);
}

#[tokio::test]
async fn the_export_reads_every_column_postgresql_migrations_make() {
    let db = ThrowawayDb::create().await;
    let store = PgStore::open(db.url()).await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let pairs = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    let made = by_table(pairs);
    assert_covered("PostgreSQL", made);
}
