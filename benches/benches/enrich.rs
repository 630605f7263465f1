//! Parse + enrich with a warm user-agent cache, in records per second on
//! one core. Target (issue 2): 2 million records/s.
//!
//! The messages are decoded once, outside the measurement; each iteration
//! parses every message and builds its stored row.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecstatic_benches::BodyFormat;
use ecstatic_ingest::{Enricher, EnricherConfig, parse_message};

mod common;

const RECORDS_BYTES: usize = 16 * 1024 * 1024;

/// Parses and enriches every message; returns a checksum of the visitors.
fn parse_enrich(enricher: &Enricher, messages: &[Bytes], format: BodyFormat) -> u64 {
    let format = common::ingest_format(format);
    let mut sum = 0u64;
    for message in messages {
        let raw = parse_message(message, format).expect("generated records parse");
        sum = sum.wrapping_add(enricher.with_row(&raw, |row| black_box(row).visitor));
    }
    sum
}

fn bench_enrich(c: &mut Criterion) {
    // Large enough for every distinct agent of the stream (the Intoli corpus
    // has 10,000, plus the crawlers): a warm cache answers every lookup.
    let enricher = Enricher::new(EnricherConfig {
        ua_cache_capacity: 16_384,
        visitor_key: [7; 16],
    });
    let mut group = c.benchmark_group("parse_enrich");
    group.sample_size(10);
    for format in [BodyFormat::Pipe, BodyFormat::Json] {
        let messages = common::messages(format, RECORDS_BYTES);
        let name = format!("{format:?}").to_lowercase();
        // Warm the agent cache before measuring.
        parse_enrich(&enricher, &messages, format);

        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function(format!("{name}/parse_enrich"), |b| {
            b.iter(|| parse_enrich(&enricher, &messages, format))
        });
        group.bench_function(format!("{name}/parse_only"), |b| {
            let format = common::ingest_format(format);
            b.iter(|| {
                messages
                    .iter()
                    .filter(|message| black_box(parse_message(message, format)).is_ok())
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_enrich);
criterion_main!(benches);
