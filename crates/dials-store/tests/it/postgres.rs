//! The conformance suite on PostgreSQL, each test on a database of its own, plus what only a
//! shared database shows: several dials processes ("replicas") writing to it at once.

use std::sync::Arc;

use dials_domain::{ChangeKind, Document, ServiceName, Version, diff};
use dials_store::{
    ConfigReads, ConfigWrites, Database, NewChange, PgStore, SecurityStore, StoreError,
};
use serde_json::json;

use crate::conformance;
use crate::throwaway::ThrowawayDb;

async fn open(db: &ThrowawayDb) -> PgStore {
    PgStore::open(db.url()).await.expect("open postgres")
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let db = ThrowawayDb::create().await;
            let store = open(&db).await;
            conformance::$name(&store).await;
            store.close().await;
        }
    )*};
}

crate::conformance::every_conformance_test!(conformance_tests);

fn put(service: &str, base: u64, before: &Document, after: &Document) -> NewChange {
    NewChange {
        service: ServiceName::parse(service).unwrap(),
        base_version: Version(base),
        kind: ChangeKind::Put,
        changes: diff(before, after),
        document: Some(after.clone()),
        actor: "tester".into(),
        reason: None,
        at: time::OffsetDateTime::now_utc(),
        origin: None,
        secrets: Vec::new(),
    }
}

fn counter(n: u64) -> Document {
    Document::from_value(json!({"n": n})).unwrap()
}

#[tokio::test]
async fn the_url_picks_postgres_and_the_database_keeps_one_epoch_for_every_process() {
    let db = ThrowawayDb::create().await;
    // Two processes starting together on a new database: one creates the schema and epoch,
    // the other waits for it and reads the same epoch.
    let other_url = db.url().replacen("postgres://", "postgresql://", 1);
    let (a, b) = tokio::join!(dials_store::open(db.url()), dials_store::open(&other_url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.backend(), b.backend()), ("postgres", "postgres"));
    assert_eq!(a.epoch(), b.epoch());
    assert!(
        a.created() ^ b.created(),
        "exactly one of them created the database's epoch"
    );
    let epoch = a.epoch();
    a.close().await;
    b.close().await;
    let again = open(&db).await;
    assert_eq!(again.epoch(), epoch, "the epoch lives in the database");
    assert!(!again.created());
    assert_eq!(
        again.schema_version().await.unwrap(),
        dials_store::PgStore::known_schema_version()
    );
    again.close().await;
}

#[tokio::test]
async fn two_replicas_racing_on_one_service_have_exactly_one_winner_per_version() {
    let db = ThrowawayDb::create().await;
    let (a, b) = (open(&db).await, open(&db).await);
    a.commit(put("svc", 0, &Document::new(), &counter(0)))
        .await
        .unwrap();
    for round in 1..=20u64 {
        let before = counter(round - 1);
        let (ra, rb) = tokio::join!(
            a.commit(put("svc", round, &before, &counter(round))),
            b.commit(put("svc", round, &before, &counter(round + 1000))),
        );
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: {ra:?} {rb:?}"
        );
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(
            matches!(loser, Err(StoreError::Conflict { current }) if current.0 == round + 1),
            "round {round}: {loser:?}"
        );
        // The loser's replica reads the winner's write at once: nothing is cached.
        let seen = b
            .service(&ServiceName::parse("svc").unwrap())
            .await
            .unwrap();
        assert_eq!(seen.unwrap().version.0, round + 1);
    }
    a.close().await;
    b.close().await;
}

/// Writers on two replicas keep incrementing one counter by compare-and-swap (read, compute,
/// commit, retry on conflict) while a watcher on a third follows the change log: every version
/// is written exactly once, revisions become visible strictly in order with no gap (a watcher
/// that saw revision N never later finds a smaller one), and the counter ends at the number of
/// increments.
#[tokio::test]
async fn replicas_writing_at_once_never_reuse_a_version_and_the_change_log_has_no_gaps() {
    const WRITERS_PER_REPLICA: u64 = 4;
    const INCREMENTS: u64 = 15;
    let db = ThrowawayDb::create().await;
    let replicas = [Arc::new(open(&db).await), Arc::new(open(&db).await)];
    let watcher = open(&db).await;
    let name = ServiceName::parse("counter").unwrap();
    replicas[0]
        .commit(put("counter", 0, &Document::new(), &counter(0)))
        .await
        .unwrap();
    // Writers to other services too, so that revisions interleave across services.
    let mut writers = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        for w in 0..WRITERS_PER_REPLICA {
            let (replica, name) = (replica.clone(), name.clone());
            writers.push(tokio::spawn(async move {
                let mut conflicts = 0u64;
                for i in 0..INCREMENTS {
                    let own = format!("own-{r}-{w}");
                    let own_before = if i == 0 {
                        Document::new()
                    } else {
                        counter(i - 1)
                    };
                    replica
                        .commit(put(&own, i, &own_before, &counter(i)))
                        .await
                        .unwrap();
                    loop {
                        let state = replica.service(&name).await.unwrap().unwrap();
                        let before = state.document.unwrap();
                        let n = before.clone().into_value()["n"].as_u64().unwrap();
                        match replica
                            .commit(put("counter", state.version.0, &before, &counter(n + 1)))
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { current }) => {
                                assert!(current > state.version);
                                conflicts += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            }));
        }
    }
    let watching = async {
        let mut seen = Vec::new();
        loop {
            let after = seen.last().copied().unwrap_or(0);
            let batch = watcher.changes_since(after, 50).await.unwrap();
            for (i, change) in batch.iter().enumerate() {
                assert_eq!(
                    change.revision.0,
                    after + 1 + i as u64,
                    "revisions appear in order, without a gap to be filled later"
                );
            }
            seen.extend(batch.iter().map(|c| c.revision.0));
            let total = 1 + 2 * WRITERS_PER_REPLICA * INCREMENTS * 2;
            if seen.len() as u64 >= total {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    };
    let (seen, results) = tokio::join!(watching, futures::future::join_all(writers));
    let conflicts: u64 = results.into_iter().map(|r| r.unwrap()).sum();
    let increments = 2 * WRITERS_PER_REPLICA * INCREMENTS;
    let state = watcher.service(&name).await.unwrap().unwrap();
    assert_eq!(state.version.0, 1 + increments);
    assert_eq!(
        state.document.unwrap().into_value()["n"],
        json!(increments),
        "no increment was lost"
    );
    let versions: Vec<u64> = watcher
        .changes_since(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.service == name)
        .map(|c| c.version.0)
        .collect();
    assert_eq!(versions, (1..=1 + increments).collect::<Vec<_>>());
    assert_eq!(seen.len() as u64, watcher.latest_revision().await.unwrap());
    eprintln!("{increments} increments from two replicas, {conflicts} conflicts retried");
    for replica in &replicas {
        replica.close().await;
    }
    watcher.close().await;
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_unavailable_with_a_clear_message() {
    // Nothing listens on port 1.
    let err = PgStore::open("postgres://postgres@127.0.0.1:1/dials")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("cannot reach PostgreSQL at 127.0.0.1:1/dials"),
        "{message}"
    );

    // A store whose server went away answers "unavailable" too, not "bug".
    let db = ThrowawayDb::create().await;
    let store = open(&db).await;
    store.close().await;
    let err = store
        .insert_token(&dials_store::TokenRecord {
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
        })
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test]
async fn a_database_a_newer_dials_migrated_is_refused() {
    let db = ThrowawayDb::create().await;
    let store = open(&db).await;
    let known = PgStore::known_schema_version();
    store.close().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from a newer dials', TRUE, '\\x00', 0)",
    )
    .bind(known + 1)
    .execute(&mut conn)
    .await
    .unwrap();
    let err = PgStore::open(db.url()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known: k } if found == known + 1 && k == known),
        "{err:?}"
    );
}

/// A SQLite installation with something of everything, as a store's own calls leave it.
async fn an_installation_of_everything(store: &dyn dials_store::Store) {
    use dials_store::{
        AuditRecord, InstanceLimits, InstanceReport, ProfileMember, ProfileRecord, SchemaRecord,
        SecretRecord, SessionRecord, TokenRecord,
    };
    use time::macros::datetime;
    let now = time::OffsetDateTime::now_utc();
    let mut before = Document::new();
    for v in 1..=3u64 {
        let after = Document::from_value(
            json!({"n": v, "key": {"$secret": v}, "o": {"z": 1, "a": [1.5, null]}}),
        )
        .unwrap();
        let mut change = put("llm", v - 1, &before, &after);
        change.secrets = vec![SecretRecord {
            service: ServiceName::parse("llm").unwrap(),
            key: "/key".into(),
            version: Version(v),
            key_id: "k1".into(),
            nonce: vec![v as u8; 12],
            ciphertext: vec![0, 255, v as u8],
            created_at: now,
            created_by: "tester".into(),
        }];
        store.commit(change).await.unwrap();
        before = after;
    }
    let gone = counter(1);
    store
        .commit(put("gone", 0, &Document::new(), &gone))
        .await
        .unwrap();
    let mut delete = put("gone", 1, &gone, &Document::new());
    delete.document = None;
    delete.kind = ChangeKind::Delete;
    delete.changes = diff(&gone, &Document::new());
    store.commit(delete).await.unwrap();
    store
        .put_schema(
            &SchemaRecord {
                service: ServiceName::parse("llm").unwrap(),
                schema: json!({"type": "object"}),
                hash: "h".into(),
                updated_at: now,
                updated_by: "admin".into(),
            },
            None,
            None,
        )
        .await
        .unwrap();
    let pending = store.pending_outbox(0, 10).await.unwrap();
    store
        .mark_published(&[pending[0].id, pending[2].id], now)
        .await
        .unwrap();
    let token = TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: "ci".into(),
        role: "service".into(),
        service: Some("llm".into()),
        hash: [3; 32],
        created_at: datetime!(2026-01-01 10:00 UTC),
        created_by: "admin".into(),
        expires_at: Some(datetime!(2099-01-01 10:00 UTC)),
        last_used_at: Some(now),
        revoked_at: None,
    };
    store.insert_token(&token).await.unwrap();
    store
        .insert_session(&SessionRecord {
            hash: [4; 32],
            token_id: token.id,
            csrf: "c".into(),
            created_at: now,
            expires_at: datetime!(2099-01-01 10:00 UTC),
        })
        .await
        .unwrap();
    store
        .save_profile(
            &ProfileRecord {
                name: "night".into(),
                description: "quiet".into(),
                members: vec![ProfileMember {
                    service: ServiceName::parse("llm").unwrap(),
                    version: Version(3),
                    document: before.clone(),
                }],
                created_at: now,
                created_by: "tester".into(),
            },
            false,
        )
        .await
        .unwrap();
    store
        .record_instances(
            &[InstanceReport {
                service: ServiceName::parse("llm").unwrap(),
                instance: "pi-1".into(),
                version: Version(2),
                status: "rejected".into(),
                error: Some("bad".into()),
                schema_hash: None,
                overrides: Some(json!(["/n"])),
                reported_at: now,
                received_at: now,
            }],
            &InstanceLimits {
                per_service: 10,
                stale_before: datetime!(2000-01-01 0:00 UTC),
            },
        )
        .await
        .unwrap();
    store
        .insert_audit(&AuditRecord {
            id: 0,
            at: now,
            actor: "anonymous".into(),
            action: "GET /x".into(),
            target: None,
            address: Some("10.0.0.1".into()),
            outcome: "denied".into(),
            reason: Some("no token".into()),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_whole_installation_moves_from_sqlite_to_postgres_and_back_unchanged() {
    use dials_store::{SqliteStore, Transfer};
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let source = SqliteStore::open(&sqlite_url("source.db")).await.unwrap();
    an_installation_of_everything(&source).await;
    let dump = source.export().await.unwrap();
    source.close().await;
    assert!(
        dump.counts().iter().all(|(_, n)| *n > 0),
        "{:?}",
        dump.counts()
    );

    let db = ThrowawayDb::create().await;
    let pg = open(&db).await;
    pg.import_all(&dump).await.unwrap();
    let err = pg.import_all(&dump).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Aborted(_)),
        "a second import is refused: {err}"
    );
    pg.close().await;
    let pg = open(&db).await;
    assert_eq!(pg.epoch(), dump.epoch, "the epoch came along");
    assert_eq!(
        pg.export().await.unwrap(),
        dump,
        "PostgreSQL holds exactly what SQLite held"
    );
    // It goes on from there: the next commit takes the next revision and outbox id.
    let next = pg
        .commit(put("llm", 3, &Document::new(), &counter(9)))
        .await
        .unwrap();
    assert_eq!(next.revision.0, dump.revision + 1);
    assert!(next.outbox > dump.outbox.last().unwrap().id);
    let moved = pg.export().await.unwrap();
    pg.close().await;

    let back = SqliteStore::open(&sqlite_url("back.db")).await.unwrap();
    back.import_all(&moved).await.unwrap();
    assert_eq!(
        back.export().await.unwrap(),
        moved,
        "and back to SQLite unchanged"
    );
    back.close().await;
}

#[tokio::test]
async fn the_publisher_lease_has_one_holder_until_it_expires_or_is_given_up() {
    use std::time::Duration;
    let db = ThrowawayDb::create().await;
    let (a, b) = (open(&db).await, open(&db).await);
    let ttl = Duration::from_millis(400);
    assert!(a.claim_lease("publisher", "a", ttl).await.unwrap());
    assert!(!b.claim_lease("publisher", "b", ttl).await.unwrap());
    // Renewing keeps it, as long as the holder renews in time.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(a.claim_lease("publisher", "a", ttl).await.unwrap());
        assert!(!b.claim_lease("publisher", "b", ttl).await.unwrap());
    }
    // A holder that stops renewing loses it once it has expired, by the database's clock.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert!(b.claim_lease("publisher", "b", ttl).await.unwrap());
    assert!(!a.claim_lease("publisher", "a", ttl).await.unwrap());
    // Other leases are other rows.
    assert!(a.claim_lease("other", "a", ttl).await.unwrap());
    // Given up, it goes to the next claim at once; giving up one not held changes nothing.
    a.release_lease("publisher", "a").await.unwrap();
    assert!(!a.claim_lease("publisher", "a", ttl).await.unwrap());
    b.release_lease("publisher", "b").await.unwrap();
    assert!(a.claim_lease("publisher", "a", ttl).await.unwrap());
    assert!(a.shared() && b.shared());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_commit_a_schema_and_a_revoked_token_are_announced_to_other_processes() {
    use dials_store::{Notice, SchemaRecord, TokenRecord};
    use std::time::Duration;
    let db = ThrowawayDb::create().await;
    let (a, b) = (open(&db).await, open(&db).await);
    let mut notices = b
        .notices()
        .await
        .unwrap()
        .expect("a shared database sends notices");
    async fn next(notices: &mut tokio::sync::mpsc::Receiver<Notice>) -> Notice {
        tokio::time::timeout(Duration::from_secs(5), notices.recv())
            .await
            .expect("a notice within 5 s")
            .expect("open")
    }
    a.commit(put("svc", 0, &Document::new(), &counter(1)))
        .await
        .unwrap();
    assert_eq!(next(&mut notices).await, Notice::Changed);
    // A lost compare-and-swap commits nothing and announces nothing.
    let lost = a.commit(put("svc", 0, &Document::new(), &counter(2))).await;
    assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
    let record = SchemaRecord {
        service: ServiceName::parse("svc").unwrap(),
        schema: json!({"type": "object"}),
        hash: "h1".into(),
        updated_at: time::OffsetDateTime::now_utc(),
        updated_by: "admin".into(),
    };
    a.put_schema(&record, None, None).await.unwrap();
    assert_eq!(next(&mut notices).await, Notice::Schema("svc".into()));
    let token = TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: "ci".into(),
        role: "viewer".into(),
        service: None,
        hash: [7; 32],
        created_at: time::OffsetDateTime::now_utc(),
        created_by: "admin".into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    a.insert_token(&token).await.unwrap();
    assert!(
        a.revoke_token(token.id, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    assert_eq!(next(&mut notices).await, Notice::TokenRevoked(token.id));
    // Revoking it again changes nothing and announces nothing: the next notice is the next
    // commit's.
    assert!(
        !a.revoke_token(token.id, time::OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
    a.commit(put("svc", 1, &counter(1), &counter(3)))
        .await
        .unwrap();
    assert_eq!(next(&mut notices).await, Notice::Changed);
    a.close().await;
    b.close().await;
}
