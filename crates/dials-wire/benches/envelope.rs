//! The signed envelope: what the manager does for every change it publishes, and what every
//! receiving service does for every envelope it takes. Measured on a 1 KiB config, the size the
//! write benchmarks use, and split into its parts: the canonical form, the checksum and the
//! Ed25519 signature.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dials_wire::envelope::{Envelope, EnvelopeSigner, canonical, checksum};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value, json};
use time::macros::datetime;
use uuid::Uuid;

/// A text-to-speech service's config of about 1 KiB.
fn config() -> Map<String, Value> {
    let value = json!({
        "voice": "en_GB-alba-medium",
        "rate": 1.05,
        "pitch": 0.0,
        "volume": 0.8,
        "cache": {"enabled": true, "max_entries": 2048, "dir": "/var/cache/tts"},
        "mqtt": {"host": "127.0.0.1", "port": 1883, "tls": false, "topic": "voice/tts/say"},
        "api_key": {"$secret": 3},
        "languages": ["en", "de", "fr", "nl", "es"],
        "phonemes": {"espeak_data": "/usr/share/espeak-ng-data", "fallback": true},
        "limits": {"max_chars": 4000, "timeout_ms": 15000, "concurrency": 2},
        "notes": "x".repeat(560),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

fn bench(c: &mut Criterion) {
    let signer = EnvelopeSigner::from_seed(&[7; 32]);
    let config = config();
    let epoch = Uuid::from_u128(0x5eed);
    let at = datetime!(2026-12-06 12:00 UTC);
    let sign = || {
        signer.sign_to_bytes(
            black_box("tts-worker"),
            black_box(42),
            black_box(1042),
            black_box(&config),
            epoch,
            at,
        )
    };
    let bytes = sign().expect("signed");
    assert!(bytes.len() > 1024, "a 1 KiB config");

    // The whole of what the publisher does per change.
    c.bench_function("envelope_sign_to_bytes_1kib", |b| b.iter(sign));
    // Its parts.
    let value = Value::Object(config.clone());
    c.bench_function("envelope_canonical_config_1kib", |b| {
        b.iter(|| canonical(black_box(&value)))
    });
    c.bench_function("envelope_checksum_1kib", |b| {
        b.iter(|| checksum(black_box(&value)))
    });
    let key = SigningKey::from_bytes(&[7; 32]);
    c.bench_function("ed25519_sign_1_3kib", |b| {
        b.iter(|| key.sign(black_box(&bytes)))
    });
    // What a receiving service does with each envelope.
    let trusted = [signer.verifying_key()];
    c.bench_function("envelope_verify_1kib", |b| {
        b.iter(|| Envelope::verify(black_box(&bytes), &trusted))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
