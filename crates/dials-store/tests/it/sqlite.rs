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

conformance_tests!(
    first_commit_creates_version_one_and_revision_one,
    a_commit_from_a_stale_version_is_a_conflict_and_writes_nothing,
    every_changed_key_gets_a_history_row,
    a_deleted_service_keeps_its_history_and_never_reuses_a_version,
    versions_are_found_by_number_and_by_time,
    history_filters_and_pages_newest_first,
    every_commit_leaves_an_outbox_row,
    tokens_are_found_only_by_their_hash,
    concurrent_commits_from_the_same_version_have_exactly_one_winner,
    many_concurrent_writers_each_keep_their_own_compare_and_swap,
    a_read_between_commits_sees_the_last_one,
    the_outbox_hands_out_pending_changes_in_order_until_marked,
    changes_since_a_revision_replay_in_revision_order,
    an_instance_report_replaces_the_previous_one,
    reports_for_unknown_services_or_impossible_versions_are_refused,
    a_full_service_makes_room_only_by_evicting_a_stale_instance,
    instances_are_listed_by_name_a_page_at_a_time,
    a_schema_is_stored_replaced_and_removed_with_its_service,
    a_schema_with_a_migration_lands_together_or_not_at_all,
    tokens_are_listed_revoked_once_and_touched,
    config_changes_and_other_events_are_audited_and_pruned,
    secrets_are_stored_with_their_change_and_found_by_place,
    a_secret_is_not_stored_when_its_change_loses,
    resealing_rewrites_every_secret_in_one_transaction,
    a_schema_can_redact_the_past_of_its_service_only,
    numbers_beyond_the_database_range_find_nothing,
    the_audit_log_keeps_at_most_a_number_of_newest_entries,
    many_changes_commit_together_each_with_its_own_version_and_outbox_row,
    many_changes_with_one_stale_write_nothing,
    profiles_are_saved_listed_replaced_only_when_asked_and_deleted,
    an_import_lands_schemas_configs_and_profiles_together_or_not_at_all,
);

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
    let name = dials_domain::ServiceName::parse("tts-worker").unwrap();
    let state = again
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
    use dials_domain::{ChangeKind, Document, ServiceName, Version, diff};
    use dials_store::NewChange;

    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let write = |i: usize| {
        let after = Document::from_value(serde_json::json!({"i": i})).unwrap();
        NewChange {
            service: ServiceName::parse(&format!("svc-{i}")).unwrap(),
            base_version: Version(0),
            kind: ChangeKind::Put,
            changes: diff(&Document::new(), &after),
            document: Some(after),
            actor: "tester".into(),
            reason: None,
            at: time::OffsetDateTime::now_utc(),
            origin: None,
            secrets: Vec::new(),
        }
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
    use dials_domain::{ChangeKind, Document, ServiceName, Version, diff};
    use dials_store::{NewChange, StoreError};

    let disk = crate::disk::SmallDisk::mount(4);
    let url = format!("sqlite://{}", disk.path().join("dials.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let name = ServiceName::parse("tts-worker").unwrap();
    let write = |base: u64, fill: usize| {
        let before = Document::new();
        let after =
            Document::from_value(serde_json::json!({"blob": "x".repeat(fill), "base": base}))
                .unwrap();
        NewChange {
            service: name.clone(),
            base_version: Version(base),
            kind: ChangeKind::Put,
            changes: diff(&before, &after),
            document: Some(after),
            actor: "tester".into(),
            reason: None,
            at: time::OffsetDateTime::now_utc(),
            origin: None,
            secrets: Vec::new(),
        }
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
