//! Benchmarks: `check` (defaults + validation) of the largest TARS fixture, and search over
//! 10,000 synthetic settings (targets: ≤ 20 µs per check, p99 ≤ 5 ms per search).
//!
//! Besides criterion's means, `main` times every search query shape in a plain loop first and
//! prints p50 / p99 / max, because the search target is a tail latency.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use dials_domain::{Document, KeyPath};
use dials_schema::{CompiledSchema, Complexity, SearchIndex, SearchItem, SearchQuery};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tars");

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture service whose example config is largest (tts-worker: 20 keys).
const LARGEST: &str = "tts-worker";

const WORDS: [&str; 24] = [
    "mqtt",
    "host",
    "port",
    "timeout",
    "threshold",
    "voice",
    "wake",
    "window",
    "cache",
    "model",
    "retry",
    "delay",
    "buffer",
    "sample",
    "rate",
    "level",
    "path",
    "queue",
    "limit",
    "stream",
    "audio",
    "token",
    "backoff",
    "interval",
];

/// 10,000 settings: 100 services of 100 keys each, with words reused so queries hit many.
fn synthetic_items() -> Vec<SearchItem> {
    let mut items = Vec::with_capacity(10_000);
    for s in 0..100_usize {
        let service = format!("{}-{}-{s}", WORDS[s % 24], WORDS[(s * 7 + 3) % 24]);
        for k in 0..100_usize {
            let (a, b, c) = (
                WORDS[k % 24],
                WORDS[(k / 24 + s) % 24],
                WORDS[(k * 5 + s) % 24],
            );
            let key = if k % 3 == 0 {
                KeyPath::from_tokens([a, &format!("{b}_{c}_{k}")])
            } else {
                KeyPath::from_tokens([format!("{a}_{b}_{k}")])
            };
            items.push(SearchItem {
                service: service.clone(),
                key,
                title: Some(format!("{} {b} setting {k}", capitalise(a))),
                description: Some(format!(
                    "How the {c} of the {a} behaves when the {b} changes; see the manual for \
                     the {} details.",
                    WORDS[(k + 11) % 24]
                )),
                type_: ["string", "integer", "number", "boolean"][k % 4].to_owned(),
                complexity: if k % 4 == 0 {
                    Complexity::Simple
                } else {
                    Complexity::Advanced
                },
                secret: k % 50 == 0,
                restart_required: k % 7 == 0,
                value: Some(json!(k)),
                is_default: k % 2 == 0,
            });
        }
    }
    items
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn queries() -> Vec<(&'static str, SearchQuery)> {
    vec![
        ("empty query (all 10k)", SearchQuery::default()),
        ("common word", SearchQuery::text("threshold")),
        ("pointer", SearchQuery::text("/mqtt/host_host_0")),
        ("two words", SearchQuery::text("voice window")),
        ("no match", SearchQuery::text("zzzz-not-there")),
        (
            "filtered",
            SearchQuery {
                q: "cache".to_owned(),
                service: None,
                complexity: Some(Complexity::Advanced),
                type_: Some("integer".to_owned()),
            },
        ),
    ]
}

fn check(c: &mut Criterion) {
    let schema = CompiledSchema::compile(&fixture(&format!("{LARGEST}.schema.json")))
        .expect("fixture schema compiles");
    let config = Document::from_value(fixture(&format!("{LARGEST}.config.json")))
        .expect("fixture config is an object");
    let empty = Document::new();
    let invalid = Document::from_value(fixture(&format!("invalid/{LARGEST}.1.json")))
        .expect("fixture is an object");
    assert!(schema.check(&config).is_ok());

    let mut group = c.benchmark_group("check");
    group.bench_function("tts-worker example (20 keys)", |b| {
        b.iter(|| schema.check(black_box(&config)))
    });
    group.bench_function("tts-worker empty (all defaults)", |b| {
        b.iter(|| schema.check(black_box(&empty)))
    });
    group.bench_function("tts-worker invalid (1 violation)", |b| {
        b.iter(|| schema.check(black_box(&invalid)))
    });
    group.finish();

    let raw = fixture(&format!("{LARGEST}.schema.json"));
    c.bench_function("compile tts-worker schema", |b| {
        b.iter(|| CompiledSchema::compile(black_box(&raw)))
    });
}

fn search(c: &mut Criterion) {
    let index = SearchIndex::new(synthetic_items());
    let mut group = c.benchmark_group("search 10k");
    for (name, query) in queries() {
        group.bench_function(name, |b| b.iter(|| index.search(black_box(&query)).len()));
    }
    group.finish();
    c.bench_function("build search index 10k", |b| {
        b.iter_batched(
            synthetic_items,
            SearchIndex::new,
            criterion::BatchSize::LargeInput,
        )
    });
}

/// Times each query shape `ROUNDS` times and prints the distribution.
fn search_tail_latency() {
    const ROUNDS: usize = 300;
    let index = SearchIndex::new(synthetic_items());
    println!(
        "search over {} items, {ROUNDS} runs per query:",
        index.len()
    );
    let mut all = Vec::new();
    for (name, query) in queries() {
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                black_box(index.search(black_box(&query)).len());
                start.elapsed()
            })
            .collect();
        times.sort();
        let hits = index.search(&query).len();
        println!(
            "  {name:<24} hits {hits:>5}  p50 {:>9.3?}  p99 {:>9.3?}  max {:>9.3?}",
            times[ROUNDS / 2],
            times[ROUNDS * 99 / 100],
            times[ROUNDS - 1]
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "  {:<24}             p99 {:>9.3?}",
        "all queries",
        all[all.len() * 99 / 100]
    );
}

criterion_group!(benches, check, search);

fn main() {
    search_tail_latency();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
