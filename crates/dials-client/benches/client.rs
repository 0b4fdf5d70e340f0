//! `get()`: the cost of reading the config in force (target ≤ 100 ns).
//!
//! `cargo bench -p dials-client --bench client`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dials_client::Client;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(default)]
struct Config {
    voice: String,
    volume: u32,
    rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            voice: "amy".into(),
            volume: 100,
            rate: 1.0,
        }
    }
}

fn get(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // No manager answers on port 1: the client starts from its defaults, REST-only.
    let dials = runtime
        .block_on(
            Client::<Config>::builder("bench")
                .server("http://127.0.0.1:1")
                .token("t")
                .allow_defaults(true)
                .start(),
        )
        .unwrap();
    c.bench_function("get", |b| b.iter(|| black_box(dials.get())));
    c.bench_function("get and read a field", |b| {
        b.iter(|| black_box(dials.get().volume))
    });
    runtime.block_on(dials.shutdown());
}

criterion_group!(benches, get);
criterion_main!(benches);
