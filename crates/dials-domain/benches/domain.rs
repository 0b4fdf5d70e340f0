//! Hot domain functions: flattening, diffing and merge-patching a realistic document, and the
//! check every write makes for the reserved `$secret` member.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dials_domain::{Document, KeyPath, ServiceName, Version, diff, merge_patch, secret};
use serde_json::{Value, json};

fn sample(n: usize, bump: u64) -> Document {
    let mut map = serde_json::Map::new();
    for i in 0..n {
        map.insert(format!("key_{i}"), json!(i as u64 + bump));
    }
    map.insert(
        "mqtt".into(),
        json!({"host": "127.0.0.1", "port": 1883, "tls": false}),
    );
    Document::from_value(Value::Object(map)).expect("object")
}

fn bench(c: &mut Criterion) {
    let old = sample(50, 0);
    let new = sample(50, 1);
    c.bench_function("service_name_parse", |b| {
        b.iter(|| ServiceName::parse(black_box("tts-worker")))
    });
    c.bench_function("leaves_50_keys", |b| {
        b.iter(|| black_box(&old).leaves().len())
    });
    c.bench_function("diff_50_keys_all_changed", |b| {
        b.iter(|| diff(black_box(&old), black_box(&new)).len())
    });
    // Every PUT looks for the reserved member in what the caller wrote; it is almost never there.
    c.bench_function("reserved_member_50_keys_none", |b| {
        b.iter(|| secret::reserved_member_in(black_box(&old)))
    });
    c.bench_function("key_path_child", |b| {
        let parent = KeyPath::parse("/mqtt").expect("pointer");
        b.iter(|| black_box(&parent).child(black_box("password")))
    });
    let patch = json!({"key_3": 7, "mqtt": {"port": 8883, "tls": true}, "key_9": null});
    c.bench_function("merge_patch_50_keys", |b| {
        b.iter(|| merge_patch(black_box(&old), black_box(&patch)))
    });

    // Secrets: what a write and a read of a 50-key document with two secrets add.
    let secret_keys = [
        KeyPath::parse("/api_key").expect("pointer"),
        KeyPath::parse("/mqtt/password").expect("pointer"),
    ];
    let mut effective = old.clone();
    effective.set(&secret_keys[0], json!("sk-0123456789abcdef"));
    effective.set(&secret_keys[1], json!("broker-pass"));
    let mut stored = old.clone();
    stored.set(&secret_keys[0], secret::placeholder(Version(3)));
    stored.set(&secret_keys[1], secret::placeholder(Version(1)));
    c.bench_function("mask_50_keys_2_secrets", |b| {
        b.iter(|| secret::mask(black_box(&stored), black_box(&secret_keys)))
    });
    c.bench_function("mask_50_keys_no_secrets", |b| {
        b.iter(|| secret::mask(black_box(&old), black_box(&[])))
    });
    c.bench_function("seal_50_keys_2_secrets_unchanged", |b| {
        b.iter(|| {
            secret::seal(
                black_box(&effective),
                black_box(&stored),
                black_box(&effective),
                black_box(&secret_keys),
                Version(9),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
