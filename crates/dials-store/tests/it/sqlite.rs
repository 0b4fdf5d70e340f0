//! The conformance suite on SQLite, plus what is SQLite-specific (files, reopening).

use dials_store::{SqliteStore, Store};

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
async fn the_database_runs_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&dir).await;
    // WAL leaves its side files next to the database while a connection is open.
    assert!(dir.path().join("dials.db-wal").exists());
}
