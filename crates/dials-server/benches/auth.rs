//! What checking a token adds to a request: hashing the presented secret, the in-memory lookup,
//! the constant-time compare and the expiry check (the path every authenticated request takes).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dials_server::keys::ServerKeys;
use dials_server::{AppState, ServerSettings, hash_token, new_token_secret};
use dials_store::{SqliteStore, Store, TokenRecord};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("dials.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
        let keys = ServerKeys::load(dir.path(), &Default::default()).expect("keys");
        AppState::new(store, ServerSettings::local(dir.path()), keys, None)
    });
    let secret = new_token_secret();
    rt.block_on(state.store.insert_token(&TokenRecord {
        id: uuid::Uuid::new_v4(),
        name: "bench".into(),
        role: "viewer".into(),
        service: None,
        hash: hash_token(&secret),
        created_at: time::OffsetDateTime::now_utc(),
        created_by: "bench".into(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }))
    .expect("token");
    rt.block_on(state.authenticate(&secret)).expect("valid");

    c.bench_function("hash_token", |b| b.iter(|| hash_token(black_box(&secret))));
    c.bench_function("token_check", |b| {
        b.to_async(&rt)
            .iter(|| async { state.authenticate(black_box(&secret)).await.is_ok() })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
