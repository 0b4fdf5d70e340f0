//! The behaviour every backend must show, written once against `&dyn Store`.

use dials_domain::{ChangeKind, Document, ServiceName, Version, diff};
use dials_store::{
    AuditQuery, AuditRecord, HistoryQuery, ImportBatch, InstanceLimits, InstanceReport, NewChange,
    ProfileMember, ProfileRecord, Redaction, Resealed, SchemaRecord, SecretRecord, SessionRecord,
    Store, StoreError, TokenRecord,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

/// Calls `$each!` with the name of every conformance test: each backend's module runs them all
/// through this one list, so a new test cannot be left out on one backend.
macro_rules! every_conformance_test {
    ($each:ident) => {
        $each!(
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
            documents_and_schemas_read_back_exactly_as_written,
        );
    };
}
pub(crate) use every_conformance_test;

fn name(s: &str) -> ServiceName {
    ServiceName::parse(s).unwrap()
}

fn doc(v: serde_json::Value) -> Document {
    Document::from_value(v).unwrap()
}

fn change(service: &str, base: u64, before: &Document, after: Option<Document>) -> NewChange {
    let empty = Document::new();
    let changes = diff(before, after.as_ref().unwrap_or(&empty));
    NewChange {
        service: name(service),
        base_version: Version(base),
        kind: if after.is_some() {
            ChangeKind::Put
        } else {
            ChangeKind::Delete
        },
        document: after,
        changes,
        actor: "tester".into(),
        reason: Some("because".into()),
        at: OffsetDateTime::now_utc(),
        origin: Some("127.0.0.1".into()),
        secrets: Vec::new(),
    }
}

fn sealed(service: &str, key: &str, version: u64, key_id: &str, bytes: &[u8]) -> SecretRecord {
    SecretRecord {
        service: name(service),
        key: key.into(),
        version: Version(version),
        key_id: key_id.into(),
        nonce: vec![version as u8; 12],
        ciphertext: bytes.to_vec(),
        created_at: OffsetDateTime::now_utc(),
        created_by: "tester".into(),
    }
}

pub async fn secrets_are_stored_with_their_change_and_found_by_place(store: &dyn Store) {
    let v1 = doc(json!({"api_key": {"$secret": 1}, "voice": "amy"}));
    let mut first = change("llm-worker", 0, &Document::new(), Some(v1.clone()));
    first.secrets = vec![sealed("llm-worker", "/api_key", 1, "k1", b"one")];
    store.commit(first).await.unwrap();
    let v2 = doc(json!({"api_key": {"$secret": 2}, "voice": "amy"}));
    let mut second = change("llm-worker", 1, &v1, Some(v2.clone()));
    second.secrets = vec![sealed("llm-worker", "/api_key", 2, "k1", b"two")];
    store.commit(second).await.unwrap();

    let places = [
        ("/api_key".to_owned(), Version(1)),
        ("/api_key".to_owned(), Version(2)),
        ("/missing".to_owned(), Version(2)),
    ];
    let mut found = store.secrets(&name("llm-worker"), &places).await.unwrap();
    found.sort_by_key(|s| s.version);
    let got: Vec<_> = found
        .iter()
        .map(|s| (s.version.0, s.ciphertext.clone(), s.nonce.len()))
        .collect();
    assert_eq!(got, [(1, b"one".to_vec(), 12), (2, b"two".to_vec(), 12)]);
    assert!(
        store
            .secrets(&name("tts-worker"), &places)
            .await
            .unwrap()
            .is_empty(),
        "another service's places hold nothing"
    );
    assert!(
        store
            .secrets(&name("llm-worker"), &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.secret_key_ids().await.unwrap(),
        [("k1".to_owned(), 2)]
    );
    // History holds the placeholders, never the sealed bytes.
    let history = store
        .history(&HistoryQuery {
            service: Some(name("llm-worker")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history[0].new, Some(json!({"$secret": 2})));
    assert_eq!(history[0].old, Some(json!({"$secret": 1})));
}

pub async fn a_secret_is_not_stored_when_its_change_loses(store: &dyn Store) {
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    let mut stale = change(
        "svc",
        0,
        &Document::new(),
        Some(doc(json!({"k": {"$secret": 1}}))),
    );
    stale.secrets = vec![sealed("svc", "/k", 1, "k1", b"x")];
    assert!(matches!(
        store.commit(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    // A secret stamped with another version than the one written is refused.
    let mut wrong = change("svc", 1, &v1, Some(doc(json!({"k": {"$secret": 7}}))));
    wrong.secrets = vec![sealed("svc", "/k", 7, "k1", b"x")];
    assert!(matches!(
        store.commit(wrong).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.secret_key_ids().await.unwrap().is_empty());
    assert_eq!(
        store.service(&name("svc")).await.unwrap().unwrap().version,
        Version(1)
    );
}

pub async fn resealing_rewrites_every_secret_in_one_transaction(store: &dyn Store) {
    let mut previous = Document::new();
    for v in 1..=3u64 {
        let next = doc(json!({"k": {"$secret": v}}));
        let mut c = change("svc", v - 1, &previous, Some(next.clone()));
        c.secrets = vec![sealed(
            "svc",
            "/k",
            v,
            if v == 3 { "new" } else { "old" },
            b"x",
        )];
        store.commit(c).await.unwrap();
        previous = next;
    }
    // A failure part way leaves every value as it was.
    let err = store
        .reseal_secrets(&|s| {
            if s.version == Version(2) {
                Err("cannot open".into())
            } else {
                Ok(Some(Resealed {
                    key_id: "new".into(),
                    nonce: vec![0; 12],
                    ciphertext: b"y".to_vec(),
                }))
            }
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Aborted(ref m) if m == "cannot open"),
        "{err:?}"
    );
    assert_eq!(
        store.secret_key_ids().await.unwrap(),
        [("new".to_owned(), 1), ("old".to_owned(), 2)]
    );
    let changed = store
        .reseal_secrets(&|s| {
            Ok((s.key_id != "new").then(|| Resealed {
                key_id: "new".into(),
                nonce: vec![9; 12],
                ciphertext: b"y".to_vec(),
            }))
        })
        .await
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        store.secret_key_ids().await.unwrap(),
        [("new".to_owned(), 3)]
    );
    let found = store
        .secrets(&name("svc"), &[("/k".to_owned(), Version(1))])
        .await
        .unwrap();
    assert_eq!(
        (found[0].nonce.clone(), found[0].ciphertext.clone()),
        (vec![9; 12], b"y".to_vec())
    );
}

pub async fn first_commit_creates_version_one_and_revision_one(store: &dyn Store) {
    let d = doc(json!({"voice": "amy", "rate": 1.0}));
    let c = store
        .commit(change("tts-worker", 0, &Document::new(), Some(d.clone())))
        .await
        .unwrap();
    assert_eq!((c.version.0, c.revision.0), (1, 1));
    let state = store.service(&name("tts-worker")).await.unwrap().unwrap();
    assert_eq!(state.document, Some(d));
    assert_eq!(state.version.0, 1);
    assert_eq!(state.updated_by, "tester");
    assert_eq!(store.latest_revision().await.unwrap(), 1);
}

pub async fn a_commit_from_a_stale_version_is_a_conflict_and_writes_nothing(store: &dyn Store) {
    let a = doc(json!({"x": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(a.clone())))
        .await
        .unwrap();
    let err = store
        .commit(change(
            "svc",
            0,
            &Document::new(),
            Some(doc(json!({"x": 2}))),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current } if current.0 == 1),
        "{err:?}"
    );
    let state = store.service(&name("svc")).await.unwrap().unwrap();
    assert_eq!(state.document, Some(a));
    assert_eq!(
        store.latest_revision().await.unwrap(),
        1,
        "no revision was spent"
    );
}

pub async fn every_changed_key_gets_a_history_row(store: &dyn Store) {
    let v1 = doc(json!({"a": 1, "b": {"c": 2}}));
    let v2 = doc(json!({"a": 1, "b": {"c": 3}, "d": true}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store.commit(change("svc", 1, &v1, Some(v2))).await.unwrap();
    let rows = store
        .history(&HistoryQuery {
            service: Some(name("svc")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = rows.iter().map(|r| (r.version.0, r.key.as_str())).collect();
    // Newest first; within one change, in reverse insertion (key) order.
    assert_eq!(keys, [(2, "/d"), (2, "/b/c"), (1, "/b/c"), (1, "/a")]);
    let bc = &rows[1];
    assert_eq!(
        (bc.old.clone(), bc.new.clone()),
        (Some(json!(2)), Some(json!(3)))
    );
    assert_eq!(bc.reason.as_deref(), Some("because"));
}

pub async fn a_deleted_service_keeps_its_history_and_never_reuses_a_version(store: &dyn Store) {
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    let deleted = store.commit(change("svc", 1, &v1, None)).await.unwrap();
    assert_eq!(deleted.version.0, 2);
    let state = store.service(&name("svc")).await.unwrap().unwrap();
    assert_eq!(state.document, None);
    // Re-creating continues from the tombstone's version.
    let again = store
        .commit(change("svc", 2, &Document::new(), Some(v1)))
        .await
        .unwrap();
    assert_eq!(again.version.0, 3);
    let rows = store
        .history(&HistoryQuery {
            service: Some(name("svc")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        3,
        "create, delete and re-create each recorded /a"
    );
    assert_eq!(rows[1].kind, ChangeKind::Delete);
    assert_eq!(rows[1].new, None);
}

pub async fn versions_are_found_by_number_and_by_time(store: &dyn Store) {
    let v1 = doc(json!({"a": 1}));
    let v2 = doc(json!({"a": 2}));
    let mut c1 = change("svc", 0, &Document::new(), Some(v1.clone()));
    c1.at = datetime!(2026-01-01 10:00 UTC);
    let mut c2 = change("svc", 1, &v1, Some(v2.clone()));
    c2.at = datetime!(2026-01-01 11:00 UTC);
    store.commit(c1).await.unwrap();
    store.commit(c2).await.unwrap();
    let one = store
        .version(&name("svc"), Version(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.document, Some(v1.clone()));
    assert_eq!(one.at, datetime!(2026-01-01 10:00 UTC));
    assert!(
        store
            .version(&name("svc"), Version(3))
            .await
            .unwrap()
            .is_none()
    );
    let svc = name("svc");
    let at = |t| store.version_at(&svc, t);
    assert_eq!(
        at(datetime!(2026-01-01 10:30 UTC))
            .await
            .unwrap()
            .unwrap()
            .version
            .0,
        1
    );
    assert_eq!(
        at(datetime!(2026-01-01 11:00 UTC))
            .await
            .unwrap()
            .unwrap()
            .version
            .0,
        2
    );
    assert!(at(datetime!(2025-12-31 00:00 UTC)).await.unwrap().is_none());
}

pub async fn history_filters_and_pages_newest_first(store: &dyn Store) {
    let mut before = Document::new();
    for i in 0..5u64 {
        let after = doc(json!({"mqtt": {"port": 1000 + i}, "other": i}));
        let mut c = change("svc", i, &before, Some(after.clone()));
        c.actor = if i % 2 == 0 {
            "alice".into()
        } else {
            "bob".into()
        };
        store.commit(c).await.unwrap();
        before = after;
    }
    store
        .commit(change(
            "else",
            0,
            &Document::new(),
            Some(doc(json!({"mqtt": 1}))),
        ))
        .await
        .unwrap();

    let q = |f: fn(&mut HistoryQuery)| {
        let mut q = HistoryQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let by_key = store
        .history(&q(|q| {
            q.service = Some(name("svc"));
            q.key = Some("/mqtt".into());
        }))
        .await
        .unwrap();
    assert_eq!(by_key.len(), 5, "a key filter includes the keys below it");
    assert!(by_key.iter().all(|r| r.key == "/mqtt/port"));
    let by_actor = store
        .history(&q(|q| q.actor = Some("bob".into())))
        .await
        .unwrap();
    assert_eq!(
        by_actor.len(),
        4,
        "bob wrote versions 2 and 4, two keys each"
    );

    // Paging: three at a time, newest first, no record twice, none lost.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .history(&HistoryQuery {
                limit: 3,
                before_id: cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen.len(), 11);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first: {seen:?}"
    );
}

pub async fn every_commit_leaves_an_outbox_row(store: &dyn Store) {
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store.commit(change("svc", 1, &v1, None)).await.unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 2);
}

pub async fn tokens_are_found_only_by_their_hash(store: &dyn Store) {
    let token = TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: "ci".into(),
        role: "viewer".into(),
        service: None,
        hash: [7; 32],
        created_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        created_by: "admin".into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_token(&token).await.unwrap();
    assert_eq!(store.token_by_hash(&[7; 32]).await.unwrap(), Some(token));
    assert_eq!(store.token_by_hash(&[8; 32]).await.unwrap(), None);
}

pub async fn concurrent_commits_from_the_same_version_have_exactly_one_winner(store: &dyn Store) {
    let v1 = doc(json!({"n": 0}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    for round in 1..=20u64 {
        let a = store.commit(change("svc", round, &v1, Some(doc(json!({"n": "a"})))));
        let b = store.commit(change("svc", round, &v1, Some(doc(json!({"n": "b"})))));
        let (a, b) = tokio::join!(a, b);
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(loser, Err(StoreError::Conflict { current }) if current.0 == round + 1));
    }
}

pub async fn a_read_between_commits_sees_the_last_one(store: &dyn Store) {
    let mut before = Document::new();
    for base in 0..5u64 {
        let state = store.service(&name("svc")).await.unwrap();
        assert_eq!(state.map_or(0, |s| s.version.0), base);
        let after = doc(json!({"n": base}));
        let committed = store
            .commit(change("svc", base, &before, Some(after.clone())))
            .await
            .unwrap();
        assert_eq!(committed.version.0, base + 1);
        let state = store.service(&name("svc")).await.unwrap().unwrap();
        assert_eq!(state.version, committed.version);
        assert_eq!(state.revision, committed.revision);
        assert_eq!(state.document.as_ref(), Some(&after));
        before = after;
    }
    // A stale write is refused, and the state read after it is still the last commit.
    let stale = store
        .commit(change("svc", 2, &before, Some(doc(json!({"n": "stale"})))))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { current }) if current.0 == 5));
    let state = store.service(&name("svc")).await.unwrap().unwrap();
    assert_eq!(state.version.0, 5);
    assert_eq!(state.document, Some(before));
}

/// Writes that arrive together (and are committed together by a backend that groups them) each
/// keep their own compare-and-swap, version, history and outbox row.
pub async fn many_concurrent_writers_each_keep_their_own_compare_and_swap(store: &dyn Store) {
    let shared_v1 = doc(json!({"writer": "none"}));
    store
        .commit(change(
            "shared",
            0,
            &Document::new(),
            Some(shared_v1.clone()),
        ))
        .await
        .unwrap();
    let own = (0..48).map(|i| {
        let after = doc(json!({"writer": i}));
        store.commit(change(
            &format!("own-{i}"),
            0,
            &Document::new(),
            Some(after),
        ))
    });
    let shared = (0..16).map(|i| {
        let after = doc(json!({"writer": i}));
        store.commit(change("shared", 1, &shared_v1, Some(after)))
    });
    let (own, shared) = tokio::join!(
        futures::future::join_all(own),
        futures::future::join_all(shared)
    );
    for (i, result) in own.iter().enumerate() {
        let committed = result.as_ref().expect("a write to its own service lands");
        assert_eq!(committed.version.0, 1, "own-{i}");
        let state = store.service(&name(&format!("own-{i}"))).await.unwrap();
        assert_eq!(state.unwrap().document, Some(doc(json!({"writer": i}))));
    }
    let winners: Vec<usize> = shared
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "one writer from version 1 wins: {shared:?}"
    );
    for (i, result) in shared.iter().enumerate() {
        if i != winners[0] {
            assert!(
                matches!(result, Err(StoreError::Conflict { current }) if current.0 == 2),
                "writer {i}: {result:?}"
            );
        }
    }
    let state = store.service(&name("shared")).await.unwrap().unwrap();
    assert_eq!(state.version.0, 2);
    assert_eq!(state.document, Some(doc(json!({"writer": winners[0]}))));
    // Revisions are unique and every landed write has exactly one outbox row.
    let pending = store.pending_outbox(0, 1000).await.unwrap();
    assert_eq!(pending.len(), 1 + 48 + 1);
    let mut revisions: Vec<u64> = pending.iter().map(|p| p.revision.0).collect();
    revisions.dedup();
    assert_eq!(revisions.len(), pending.len());
    let history = store
        .history(&HistoryQuery {
            service: Some(name("shared")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "the losers left no history: {history:?}");
}

pub async fn the_outbox_hands_out_pending_changes_in_order_until_marked(store: &dyn Store) {
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store
        .commit(change("other", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store.commit(change("svc", 1, &v1, None)).await.unwrap();
    let pending = store.pending_outbox(0, 100).await.unwrap();
    let order: Vec<_> = pending
        .iter()
        .map(|p| (p.service.as_str(), p.version.0))
        .collect();
    assert_eq!(order, [("svc", 1), ("other", 1), ("svc", 2)]);
    assert_eq!(pending[0].document, Some(v1));
    assert_eq!(pending[2].kind, ChangeKind::Delete);
    assert_eq!(pending[2].document, None);
    let after_first = store.pending_outbox(pending[0].id, 100).await.unwrap();
    assert_eq!(after_first.len(), 2);

    store
        .mark_published(&[pending[0].id, pending[2].id], OffsetDateTime::now_utc())
        .await
        .unwrap();
    let left = store.pending_outbox(0, 100).await.unwrap();
    assert_eq!(
        left.iter().map(|p| p.id).collect::<Vec<_>>(),
        [pending[1].id]
    );
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
}

pub async fn changes_since_a_revision_replay_in_revision_order(store: &dyn Store) {
    let mut before = Document::new();
    for i in 0..5u64 {
        let after = doc(json!({"n": i}));
        store
            .commit(change("svc", i, &before, Some(after.clone())))
            .await
            .unwrap();
        before = after;
    }
    let since = store.changes_since(2, 100).await.unwrap();
    let revs: Vec<_> = since.iter().map(|c| c.revision.0).collect();
    assert_eq!(revs, [3, 4, 5]);
    assert_eq!(since[0].document, Some(doc(json!({"n": 2}))));
    assert_eq!(
        store.changes_since(1, 2).await.unwrap().len(),
        2,
        "limit applies"
    );
    assert!(store.changes_since(5, 100).await.unwrap().is_empty());
}

fn instance_report(service: &str, instance: &str, version: u64, status: &str) -> InstanceReport {
    InstanceReport {
        service: name(service),
        instance: instance.into(),
        version: Version(version),
        status: status.into(),
        error: (status != "applied").then(|| "bad value".to_owned()),
        schema_hash: Some("abc".into()),
        overrides: Some(json!(["/voice"])),
        reported_at: datetime!(2026-01-01 10:00 UTC),
        received_at: datetime!(2026-01-01 10:00:01 UTC),
    }
}

const ROOMY: InstanceLimits = InstanceLimits {
    per_service: 1000,
    stale_before: datetime!(2000-01-01 0:00 UTC),
};

/// Writes versions 1..=`versions` of `service`.
async fn service_at(store: &dyn Store, service: &str, versions: u64) {
    let mut before = Document::new();
    for v in 1..=versions {
        let after = doc(json!({"n": v}));
        store
            .commit(change(service, v - 1, &before, Some(after.clone())))
            .await
            .unwrap();
        before = after;
    }
}

pub async fn an_instance_report_replaces_the_previous_one(store: &dyn Store) {
    service_at(store, "tts-worker", 2).await;
    let report = |instance: &str, version: u64, status: &str| {
        instance_report("tts-worker", instance, version, status)
    };
    let first = [report("pi-1", 1, "applied"), report("pi-2", 1, "applied")];
    let recorded = store.record_instances(&first, &ROOMY).await.unwrap();
    assert_eq!((recorded.recorded, recorded.refused), (2, 0));
    store
        .record_instances(&[report("pi-1", 2, "rejected")], &ROOMY)
        .await
        .unwrap();
    let all = store
        .instances(&name("tts-worker"), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], report("pi-1", 2, "rejected"));
    assert!(
        store
            .instances(&name("router"), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.all_instances().await.unwrap().len(), 2);

    // Within one batch, the later report of an instance wins.
    let batch = [report("pi-2", 2, "failed"), report("pi-2", 1, "applied")];
    store.record_instances(&batch, &ROOMY).await.unwrap();
    let all = store
        .instances(&name("tts-worker"), None, 100)
        .await
        .unwrap();
    assert_eq!(all[1], report("pi-2", 1, "applied"));
}

pub async fn reports_for_unknown_services_or_impossible_versions_are_refused(store: &dyn Store) {
    service_at(store, "tts-worker", 2).await;
    service_at(store, "gone", 1).await;
    store
        .commit(change("gone", 1, &doc(json!({"n": 1})), None))
        .await
        .unwrap();
    let batch = [
        instance_report("tts-worker", "pi-ok", 2, "applied"),
        instance_report("tts-worker", "pi-future", 3, "applied"),
        instance_report("tts-worker", "pi-zero", 0, "applied"),
        instance_report("never-written", "pi-1", 1, "applied"),
        instance_report("gone", "pi-1", 1, "applied"),
    ];
    let recorded = store.record_instances(&batch, &ROOMY).await.unwrap();
    assert_eq!((recorded.recorded, recorded.refused), (1, 4));
    let names: Vec<String> = store
        .all_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.service, r.instance))
        .collect();
    assert_eq!(names, ["tts-worker/pi-ok"]);
}

pub async fn a_full_service_makes_room_only_by_evicting_a_stale_instance(store: &dyn Store) {
    service_at(store, "tts-worker", 1).await;
    service_at(store, "router", 1).await;
    let at = |service: &str, instance: &str, received_at: OffsetDateTime| InstanceReport {
        received_at,
        ..instance_report(service, instance, 1, "applied")
    };
    let limits = InstanceLimits {
        per_service: 3,
        stale_before: datetime!(2026-01-02 0:00 UTC),
    };
    let stale = datetime!(2026-01-01 9:00 UTC);
    let fresh = datetime!(2026-01-03 9:00 UTC);
    let batch = [
        at("tts-worker", "old-b", stale),
        at("tts-worker", "old-a", datetime!(2026-01-01 8:00 UTC)),
        at("tts-worker", "fresh", fresh),
        at("router", "r-old", stale),
        at("router", "r-1", fresh),
        at("router", "r-2", fresh),
    ];
    store.record_instances(&batch, &limits).await.unwrap();
    // Both full. tts-worker: two newcomers take the places of the two stale instances, stalest
    // first; a third finds no stale one left and is refused. router: its one stale instance
    // reports again in the same batch, so it is fresh and the newcomer is refused. Updates of
    // known instances always land.
    let batch = [
        at("tts-worker", "new-1", fresh),
        at("tts-worker", "new-2", fresh),
        at("tts-worker", "new-3", fresh),
        at("tts-worker", "fresh", fresh),
        at("router", "r-new", fresh),
        at("router", "r-old", fresh),
    ];
    let recorded = store.record_instances(&batch, &limits).await.unwrap();
    assert_eq!(
        (recorded.recorded, recorded.refused, recorded.evicted),
        (4, 2, 2)
    );
    let names = |service: &'static str| async move {
        store
            .instances(&name(service), None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.instance)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("tts-worker").await, ["fresh", "new-1", "new-2"]);
    assert_eq!(names("router").await, ["r-1", "r-2", "r-old"]);
}

pub async fn instances_are_listed_by_name_a_page_at_a_time(store: &dyn Store) {
    service_at(store, "tts-worker", 1).await;
    let batch: Vec<_> = ["d", "b", "a", "c", "e"]
        .iter()
        .map(|i| instance_report("tts-worker", i, 1, "applied"))
        .collect();
    store.record_instances(&batch, &ROOMY).await.unwrap();
    let page = |after: Option<&'static str>| async move {
        store
            .instances(&name("tts-worker"), after, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.instance)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(None).await, ["a", "b"]);
    assert_eq!(page(Some("b")).await, ["c", "d"]);
    assert_eq!(page(Some("d")).await, ["e"]);
    assert!(page(Some("e")).await.is_empty());
}

fn schema_record(service: &str, hash: &str) -> SchemaRecord {
    SchemaRecord {
        service: name(service),
        schema: json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
        hash: hash.into(),
        updated_at: datetime!(2026-01-01 10:00 UTC),
        updated_by: "admin".into(),
    }
}

pub async fn a_schema_is_stored_replaced_and_removed_with_its_service(store: &dyn Store) {
    assert!(store.schema(&name("svc")).await.unwrap().is_none());
    assert_eq!(
        store
            .put_schema(&schema_record("svc", "h1"), None, None)
            .await
            .unwrap(),
        None
    );
    store
        .put_schema(&schema_record("svc", "h2"), None, None)
        .await
        .unwrap();
    assert_eq!(
        store.schema(&name("svc")).await.unwrap(),
        Some(schema_record("svc", "h2"))
    );
    assert_eq!(store.schemas().await.unwrap().len(), 1);
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store.commit(change("svc", 1, &v1, None)).await.unwrap();
    assert!(
        store.schema(&name("svc")).await.unwrap().is_none(),
        "deleting the service removes its schema"
    );
}

pub async fn a_schema_with_a_migration_lands_together_or_not_at_all(store: &dyn Store) {
    let v1 = doc(json!({"a": "x", "b": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    let mut migration = change("svc", 1, &v1, Some(doc(json!({"b": 1}))));
    migration.kind = ChangeKind::Migrate;
    let committed = store
        .put_schema(&schema_record("svc", "h1"), Some(migration.clone()), None)
        .await
        .unwrap();
    assert_eq!(committed.map(|c| c.version.0), Some(2));
    assert_eq!(
        store
            .version(&name("svc"), Version(2))
            .await
            .unwrap()
            .unwrap()
            .kind,
        ChangeKind::Migrate
    );

    // A migration computed from a stale version fails, and the schema is not replaced.
    let err = store
        .put_schema(&schema_record("svc", "h2"), Some(migration), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current } if current.0 == 2),
        "{err:?}"
    );
    assert_eq!(
        store.schema(&name("svc")).await.unwrap().unwrap().hash,
        "h1"
    );
}

pub async fn tokens_are_listed_revoked_once_and_touched(store: &dyn Store) {
    let token = |n: u8| TokenRecord {
        id: uuid::Uuid::from_u128(n.into()),
        name: format!("t{n}"),
        role: "viewer".into(),
        service: None,
        hash: [n; 32],
        created_at: datetime!(2026-01-01 10:00 UTC),
        created_by: "admin".into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_token(&token(1)).await.unwrap();
    store.insert_token(&token(2)).await.unwrap();
    assert_eq!(store.tokens().await.unwrap().len(), 2);
    let session = SessionRecord {
        hash: [9; 32],
        token_id: token(1).id,
        csrf: "c".into(),
        created_at: datetime!(2026-01-01 10:00 UTC),
        expires_at: datetime!(2099-01-01 10:00 UTC),
    };
    store.insert_session(&session).await.unwrap();
    assert_eq!(store.session(&[9; 32]).await.unwrap(), Some(session));
    assert!(
        store
            .revoke_token(token(1).id, datetime!(2026-01-02 10:00 UTC))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_token(token(1).id, datetime!(2026-01-03 10:00 UTC))
            .await
            .unwrap(),
        "only once"
    );
    assert_eq!(
        store
            .token_by_id(token(1).id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(datetime!(2026-01-02 10:00 UTC))
    );
    assert_eq!(
        store.session(&[9; 32]).await.unwrap(),
        None,
        "revoking ends its sessions"
    );
    store
        .touch_token(token(2).id, datetime!(2026-01-05 10:00 UTC))
        .await
        .unwrap();
    assert_eq!(
        store
            .token_by_id(token(2).id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(datetime!(2026-01-05 10:00 UTC))
    );
}

pub async fn config_changes_and_other_events_are_audited_and_pruned(store: &dyn Store) {
    let v1 = doc(json!({"a": 1}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1)))
        .await
        .unwrap();
    store
        .insert_audit(&AuditRecord {
            id: 0,
            at: datetime!(2020-01-01 10:00 UTC),
            actor: "anonymous".into(),
            action: "GET /api/v1/tokens".into(),
            target: None,
            address: Some("10.0.0.9".into()),
            outcome: "denied".into(),
            reason: Some("no credentials".into()),
        })
        .await
        .unwrap();
    let all = store
        .audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let config = store
        .audit(&AuditQuery {
            action: Some("config.".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(config.len(), 1);
    assert_eq!(
        (
            config[0].actor.as_str(),
            config[0].target.as_deref(),
            config[0].address.as_deref()
        ),
        ("tester", Some("svc"), Some("127.0.0.1"))
    );
    let denied = store
        .audit(&AuditQuery {
            outcome: Some("denied".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(denied[0].reason.as_deref(), Some("no credentials"));
    assert_eq!(
        store
            .prune(datetime!(2021-01-01 00:00 UTC), u64::MAX)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .audit(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn a_schema_can_redact_the_past_of_its_service_only(store: &dyn Store) {
    let v1 = doc(json!({"k": "clear-1", "n": 1}));
    let v2 = doc(json!({"k": "clear-2", "n": 2}));
    store
        .commit(change("svc", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    store
        .commit(change("svc", 1, &v1, Some(v2.clone())))
        .await
        .unwrap();
    store
        .commit(change("other", 0, &Document::new(), Some(v1.clone())))
        .await
        .unwrap();
    let mask = |d: &Document| {
        let mut out = d.clone();
        let key = dials_domain::KeyPath::parse("/k").unwrap();
        (out.get(&key)? != &json!("***")).then(|| {
            out.set(&key, json!("***"));
            out
        })
    };
    let value = |key: &str, v: &serde_json::Value| {
        (key == "/k" && v != &json!("***")).then(|| json!("***"))
    };
    let redaction = Redaction {
        document: &mask,
        value: &value,
    };
    store
        .put_schema(&schema_record("svc", "h1"), None, Some(&redaction))
        .await
        .unwrap();
    for v in [1, 2] {
        let record = store
            .version(&name("svc"), Version(v))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.document.unwrap().into_value()["k"],
            "***",
            "version {v}"
        );
    }
    let history = store
        .history(&HistoryQuery {
            service: Some(name("svc")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    for h in history.iter().filter(|h| h.key == "/k") {
        for v in [&h.old, &h.new].into_iter().flatten() {
            assert_eq!(v, &json!("***"));
        }
    }
    assert!(
        history
            .iter()
            .any(|h| h.key == "/n" && h.new == Some(json!(2))),
        "other keys stay"
    );
    let other = store
        .version(&name("other"), Version(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        other.document.unwrap().into_value()["k"],
        "clear-1",
        "other services stay"
    );
}

pub async fn numbers_beyond_the_database_range_find_nothing(store: &dyn Store) {
    store
        .commit(change(
            "tts-worker",
            0,
            &Document::new(),
            Some(doc(json!({"a": 1}))),
        ))
        .await
        .unwrap();
    let huge = Version(u64::MAX);
    assert!(
        store
            .version(&name("tts-worker"), huge)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .version(&name("tts-worker"), Version(i64::MAX as u64 + 1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.changes_since(u64::MAX, 10).await.unwrap().is_empty());
    let err = store
        .commit(change("tts-worker", u64::MAX, &Document::new(), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { current } if current.0 == 1));
}

pub async fn the_audit_log_keeps_at_most_a_number_of_newest_entries(store: &dyn Store) {
    for i in 0..30 {
        store
            .insert_audit(&AuditRecord {
                id: 0,
                at: OffsetDateTime::now_utc(),
                actor: "anonymous".into(),
                action: format!("GET /{i}"),
                target: None,
                address: None,
                outcome: "denied".into(),
                reason: None,
            })
            .await
            .unwrap();
    }
    let pruned = store
        .prune(datetime!(2000-01-01 00:00 UTC), 10)
        .await
        .unwrap();
    assert_eq!(pruned, 20);
    let left = store
        .audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 10);
    assert_eq!(left[0].action, "GET /29", "the newest stay");
    assert_eq!(left[9].action, "GET /20");
    assert_eq!(
        store
            .prune(datetime!(2000-01-01 00:00 UTC), 10)
            .await
            .unwrap(),
        0
    );
}

pub async fn many_changes_commit_together_each_with_its_own_version_and_outbox_row(
    store: &dyn Store,
) {
    let a1 = doc(json!({"volume": 5}));
    store
        .commit(change("tts", 0, &Document::new(), Some(a1.clone())))
        .await
        .unwrap();
    let a2 = doc(json!({"volume": 3}));
    let b1 = doc(json!({"model": "small"}));
    let committed = store
        .commit_many(vec![
            change("tts", 1, &a1, Some(a2.clone())),
            change("stt", 0, &Document::new(), Some(b1.clone())),
        ])
        .await
        .unwrap();
    let got: Vec<_> = committed.iter().map(|c| c.version.0).collect();
    assert_eq!(got, [2, 1]);
    assert!(committed[0].revision < committed[1].revision);
    let tts = store.service(&name("tts")).await.unwrap().unwrap();
    assert_eq!((tts.version, tts.document), (Version(2), Some(a2)));
    let stt = store.service(&name("stt")).await.unwrap().unwrap();
    assert_eq!((stt.version, stt.document), (Version(1), Some(b1)));
    let history = store
        .history(&HistoryQuery {
            service: Some(name("tts")),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "one history row per version of tts");
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);
}

pub async fn many_changes_with_one_stale_write_nothing(store: &dyn Store) {
    let a1 = doc(json!({"volume": 5}));
    store
        .commit(change("tts", 0, &Document::new(), Some(a1.clone())))
        .await
        .unwrap();
    let before = store.latest_revision().await.unwrap();
    let err = store
        .commit_many(vec![
            change("stt", 0, &Document::new(), Some(doc(json!({"model": "x"})))),
            change("tts", 0, &Document::new(), Some(doc(json!({"volume": 1})))),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { current } if current == Version(1)),
        "{err:?}"
    );
    assert!(store.service(&name("stt")).await.unwrap().is_none());
    assert_eq!(store.latest_revision().await.unwrap(), before);
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
    // The store is still writable after the failed batch.
    store
        .commit(change(
            "stt",
            0,
            &Document::new(),
            Some(doc(json!({"model": "y"}))),
        ))
        .await
        .unwrap();
}

fn profile(name_: &str, description: &str, members: &[(&str, u64, Document)]) -> ProfileRecord {
    ProfileRecord {
        name: name_.into(),
        description: description.into(),
        members: members
            .iter()
            .map(|(s, v, d)| ProfileMember {
                service: name(s),
                version: Version(*v),
                document: d.clone(),
            })
            .collect(),
        created_at: datetime!(2026-01-02 03:04:05.123456 UTC),
        created_by: "tester".into(),
    }
}

pub async fn profiles_are_saved_listed_replaced_only_when_asked_and_deleted(store: &dyn Store) {
    let night = profile(
        "night",
        "quiet",
        &[
            (
                "tts",
                7,
                doc(json!({"volume": 3, "api_key": {"$secret": 4}})),
            ),
            ("stt", 2, doc(json!({"model": "small"}))),
        ],
    );
    assert!(store.save_profile(&night, false).await.unwrap());
    assert_eq!(store.profile("night").await.unwrap(), Some(night.clone()));

    let other = profile("night", "loud", &[("tts", 8, doc(json!({"volume": 9})))]);
    assert!(!store.save_profile(&other, false).await.unwrap());
    assert_eq!(store.profile("night").await.unwrap(), Some(night.clone()));
    assert!(store.save_profile(&other, true).await.unwrap());
    assert_eq!(store.profile("night").await.unwrap(), Some(other.clone()));

    let day = profile("day", "", &[]);
    store.save_profile(&day, false).await.unwrap();
    let names: Vec<_> = store
        .profiles()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["day", "night"]);

    assert!(store.delete_profile("night").await.unwrap());
    assert!(!store.delete_profile("night").await.unwrap());
    assert_eq!(store.profile("night").await.unwrap(), None);
}

pub async fn an_import_lands_schemas_configs_and_profiles_together_or_not_at_all(
    store: &dyn Store,
) {
    let schema = SchemaRecord {
        service: name("tts"),
        schema: json!({"type": "object"}),
        hash: "h1".into(),
        updated_at: OffsetDateTime::now_utc(),
        updated_by: "tester".into(),
    };
    let tts = doc(json!({"volume": 3}));
    let batch = ImportBatch {
        schemas: vec![schema.clone()],
        changes: vec![change("tts", 0, &Document::new(), Some(tts.clone()))],
        profiles: vec![profile("night", "", &[("tts", 1, tts.clone())])],
    };
    // A stale change among them: nothing of the batch lands.
    let mut stale = batch.clone();
    stale
        .changes
        .push(change("stt", 4, &Document::new(), Some(doc(json!({})))));
    assert!(matches!(
        store.import(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.schema(&name("tts")).await.unwrap().is_none());
    assert!(store.service(&name("tts")).await.unwrap().is_none());
    assert!(store.profiles().await.unwrap().is_empty());

    let committed = store.import(batch).await.unwrap();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].version, Version(1));
    assert_eq!(
        store.schema(&name("tts")).await.unwrap().map(|s| s.hash),
        Some("h1".into())
    );
    assert_eq!(
        store.service(&name("tts")).await.unwrap().unwrap().document,
        Some(tts)
    );
    assert_eq!(store.profiles().await.unwrap().len(), 1);
}

pub async fn documents_and_schemas_read_back_exactly_as_written(store: &dyn Store) {
    // Keys in the order written (not sorted, not by length), a NUL character, a long number.
    let text = r#"{"zeta":1,"alpha":{"yy":"a\u0000b","b":[3,1]},"mid":18446744073709551615}"#;
    let document: Document = serde_json::from_str(text).unwrap();
    store
        .commit(change("svc", 0, &Document::new(), Some(document.clone())))
        .await
        .unwrap();
    let state = store.service(&name("svc")).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(state.document.as_ref().unwrap()).unwrap(),
        text
    );
    let v1 = store
        .version(&name("svc"), Version(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_string(v1.document.as_ref().unwrap()).unwrap(),
        text
    );

    // A schema's properties keep their order: a form lists settings in it.
    let mut schema = schema_record("svc", "h1");
    schema.schema = serde_json::from_str(
        r#"{"type":"object","properties":{"voice":{"type":"string"},"a":{"type":"integer"},"speed":{"type":"number"}}}"#,
    )
    .unwrap();
    store.put_schema(&schema, None, None).await.unwrap();
    let stored = store.schema(&name("svc")).await.unwrap().unwrap();
    let keys: Vec<&String> = stored.schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(keys, ["voice", "a", "speed"]);
}
