//! The conformance suite on SQLite, plus what is SQLite-specific (files, reopening).

use dials_store::{ConfigReads, ConfigWrites, Database, SqliteStore};

use crate::conformance;

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("dials.db").display());
    SqliteStore::open(&url).await.expect("open sqlite")
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let store = open(&dir).await;
            conformance::$name(&store).await;
        }
    )*};
}

crate::conformance::every_conformance_test!(conformance_tests);

#[tokio::test]
async fn a_new_database_gets_an_epoch_that_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir).await;
    assert!(first.created());
    let epoch = first.epoch();
    conformance::first_commit_creates_version_one_and_revision_one(&first).await;
    first.close().await;

    let again = open(&dir).await;
    assert!(!again.created(), "reopening is not a first start");
    assert_eq!(again.epoch(), epoch);
    assert_first_commit_kept(&again).await;
}

/// What `first_commit_creates_version_one_and_revision_one` wrote is there after reopening.
async fn assert_first_commit_kept(store: &SqliteStore) {
    let name = dials_domain::ServiceName::parse("tts-worker").unwrap();
    let state = store
        .service(&name)
        .await
        .unwrap()
        .expect("the write survived reopening");
    assert_eq!(state.version.0, 1);
}

#[tokio::test]
async fn a_recreated_database_gets_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir).await.epoch();
    let other = tempfile::tempdir().unwrap();
    assert_ne!(open(&other).await.epoch(), first);
}

#[tokio::test]
async fn writes_that_arrive_together_are_committed_together() {
    use dials_domain::{Document, ServiceName};

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let write = |i: usize| {
        put(
            &format!("svc-{i}"),
            0,
            &Document::new(),
            serde_json::json!({"i": i}),
        )
    };
    let before = store.writer_stats();
    let results = futures::future::join_all((0..64).map(|i| store.commit(write(i)))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let stats = store.writer_stats();
    let (transactions, jobs) = (
        stats.transactions - before.transactions,
        stats.jobs - before.jobs,
    );
    assert_eq!(jobs, 64);
    // All 64 were queued within microseconds; the first transaction's fsync alone takes longer,
    // so the rest share at most a few.
    assert!(
        transactions <= 8,
        "64 writes sent at once took {transactions} transactions"
    );
    // Each answered write is on disk: a fresh store sees every one.
    store.close().await;
    let again = open(&dir).await;
    for i in 0..64 {
        let name = ServiceName::parse(&format!("svc-{i}")).unwrap();
        assert!(again.service(&name).await.unwrap().is_some(), "svc-{i}");
    }
}

/// A PUT of `after` over `before`, at `base` (0 creates the service).
fn put(
    service: &str,
    base: u64,
    before: &dials_domain::Document,
    after: serde_json::Value,
) -> dials_store::NewChange {
    let after = dials_domain::Document::from_value(after).unwrap();
    dials_store::NewChange {
        service: dials_domain::ServiceName::parse(service).unwrap(),
        base_version: dials_domain::Version(base),
        kind: dials_domain::ChangeKind::Put,
        changes: dials_domain::diff(before, &after),
        document: Some(after),
        actor: "tester".into(),
        reason: None,
        at: time::OffsetDateTime::now_utc(),
        origin: None,
        secrets: Vec::new(),
    }
}

#[tokio::test]
async fn the_log_is_checkpointed_beside_the_writes_and_stays_short() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let log = dir.path().join("dials.db-wal");
    // Each version of a 24 KiB value is written three times (the service row, the change row,
    // the history row's new value) and once more as the next row's old value: about 100 KiB of
    // log per write, 16 MiB in all, four times the length at which a checkpoint is due.
    let mut before = dials_domain::Document::new();
    let (mut longest, mut step) = (0, 0);
    for i in 0..160u64 {
        let value = serde_json::json!({"blob": format!("{i:05}").repeat(24 * 1024 / 5)});
        let change = put("big-model", i, &before, value);
        before = change.document.clone().unwrap();
        store.commit(change).await.expect("write");
        let length = std::fs::metadata(&log).unwrap().len();
        step = step.max(length.saturating_sub(longest));
        longest = longest.max(length);
    }
    let stats = store.writer_stats();
    assert!(
        stats.checkpoints >= 1,
        "the checkpoint thread never ran: {stats:?}"
    );
    // However far behind the checkpointer falls, the writer copies the log itself once it
    // passes 8 MiB: it never grows by more than the commit that crossed that length.
    assert!(
        longest <= (8 << 20) + step,
        "the log grew to {longest} bytes (one commit adds up to {step}); it was not kept short"
    );
    let main = std::fs::metadata(dir.path().join("dials.db"))
        .unwrap()
        .len();
    assert!(
        main >= 1 << 20,
        "the database file holds only {main} bytes: nothing was copied into it"
    );
    // What was checkpointed reads back, and so does what came after.
    let name = dials_domain::ServiceName::parse("big-model").unwrap();
    assert_eq!(store.service(&name).await.unwrap().unwrap().version.0, 160);
    store.close().await;
    let again = open(&dir).await;
    let state = again.service(&name).await.unwrap().unwrap();
    assert_eq!(state.version.0, 160);
    assert_eq!(state.document, Some(before));
}

fn page_size(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_new_database_takes_small_pages_and_an_older_one_keeps_its_own() {
    // A new database: 1 KiB pages, so a commit writes fewer bytes to the WAL.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    conformance::first_commit_creates_version_one_and_revision_one(&store).await;
    store.close().await;
    assert_eq!(page_size(&dir.path().join("dials.db")), 1024);

    // One made with SQLite's default 4 KiB pages (as every database was before) opens, takes
    // writes and keeps its page size.
    let older = tempfile::tempdir().unwrap();
    let path = older.path().join("dials.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .unwrap();
        conn.execute_batch("CREATE TABLE scratch (x); DROP TABLE scratch;")
            .unwrap();
    }
    let store = open(&older).await;
    conformance::first_commit_creates_version_one_and_revision_one(&store).await;
    store.close().await;
    assert_eq!(page_size(&path), 4096);
    assert_first_commit_kept(&open(&older).await).await;
}

#[tokio::test]
async fn writes_after_close_fail_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.close().await;
    let token = dials_store::TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: "late".into(),
        role: "viewer".into(),
        service: None,
        hash: [7; 32],
        created_at: time::OffsetDateTime::now_utc(),
        created_by: "tester".into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    use dials_store::SecurityStore;
    let err = store.insert_token(&token).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test]
async fn the_database_runs_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&dir).await;
    // WAL leaves its side files next to the database while a connection is open.
    assert!(dir.path().join("dials.db-wal").exists());
}

#[tokio::test]
async fn a_full_disk_fails_writes_as_unavailable_and_they_resume_when_space_returns() {
    use dials_domain::{Document, ServiceName};
    use dials_store::StoreError;

    let disk = crate::disk::SmallDisk::mount(4);
    let url = format!("sqlite://{}", disk.path().join("dials.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let name = ServiceName::parse("tts-worker").unwrap();
    let write = |base: u64, fill: usize| {
        let blob = serde_json::json!({"blob": "x".repeat(fill), "base": base});
        put(name.as_str(), base, &Document::new(), blob)
    };
    store.commit(write(0, 10)).await.unwrap();
    let filler = disk.fill();

    // Writes fail, each one cleanly: the disk is full, not the program broken.
    let mut version = 1;
    let mut failures = 0;
    for _ in 0..40 {
        match store.commit(write(version, 64 * 1024)).await {
            Ok(c) => version = c.version.0,
            Err(e) => {
                assert!(
                    matches!(e, StoreError::Unavailable { .. }),
                    "a full disk is unavailability: {e}"
                );
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "the disk filled up");
    let current = store.service(&name).await.unwrap().unwrap();
    assert_eq!(
        current.version.0, version,
        "a failed write left nothing behind"
    );

    // Space returns: the very next write goes through, on the same store.
    std::fs::remove_file(filler).unwrap();
    let committed = store.commit(write(version, 10)).await.unwrap();
    assert_eq!(committed.version.0, version + 1);
    let again = store.commit(write(version + 1, 10)).await.unwrap();
    assert_eq!(again.version.0, version + 2);
    store.close().await;
}

#[tokio::test]
async fn a_database_of_its_own_needs_no_lease_and_sends_no_notices() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert!(!store.shared());
    let ttl = std::time::Duration::from_secs(1);
    assert!(store.claim_lease("publisher", "a", ttl).await.unwrap());
    assert!(store.claim_lease("publisher", "b", ttl).await.unwrap());
    assert!(store.notices().await.unwrap().is_none());
    store.close().await;
}
