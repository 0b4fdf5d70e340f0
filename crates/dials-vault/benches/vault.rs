//! What a secret costs on the write and read paths: sealing and opening one value.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dials_vault::{Aad, Keyring, MasterKey};

fn bench(c: &mut Criterion) {
    let ring = Keyring::new(vec![MasterKey::generate()]).expect("one key");
    let aad = Aad {
        service: "llm-worker",
        key: "/openai_api_key",
        version: 12,
    };
    let value = br#""sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH""#;
    let sealed = ring.seal(&aad, value);
    c.bench_function("seal_api_key", |b| {
        b.iter(|| ring.seal(black_box(&aad), black_box(value)))
    });
    c.bench_function("open_api_key", |b| {
        b.iter(|| ring.open(black_box(&aad), black_box(&sealed)))
    });
    c.bench_function("master_key_from_bytes", |b| {
        b.iter(|| MasterKey::from_bytes(black_box([7; 32])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
