//! Time per record of parsing, and of parsing with enrichment (warm agent
//! cache), on one core: the best and the median of many passes over the
//! same messages.
//!
//! The criterion benches (`parse`, `enrich`) estimate means, and on a
//! shared virtual machine a mean carries the other tenants' load: the same
//! build measured minutes apart varies by a third. The best pass shows what
//! the core does when left alone, the median a typical pass.
//!
//! Run: `cargo bench -p ecstatic-benches --bench per_record`. Not a
//! criterion bench; prints a table.

use std::hint::black_box;
use std::time::Instant;

use ecstatic_benches::BodyFormat;
use ecstatic_ingest::{Enricher, EnricherConfig, parse_message};

mod common;

const RECORDS_BYTES: usize = 16 * 1024 * 1024;
const PASSES: usize = 31;

/// Best and median nanoseconds per record of `pass` over `records`.
fn time(records: usize, mut pass: impl FnMut()) -> (f64, f64) {
    pass(); // warm-up: caches, lazily built state
    let mut per_record: Vec<f64> = (0..PASSES)
        .map(|_| {
            let started = Instant::now();
            pass();
            started.elapsed().as_nanos() as f64 / records as f64
        })
        .collect();
    per_record.sort_by(f64::total_cmp);
    (per_record[0], per_record[PASSES / 2])
}

fn main() {
    let enricher = Enricher::new(EnricherConfig {
        ua_cache_capacity: 16_384,
        visitor_key: [7; 16],
    });
    println!(
        "| input | stage | best ns/record | best records/s | median ns/record | median records/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, format) in [("pipe", BodyFormat::Pipe), ("JSON", BodyFormat::Json)] {
        let messages = common::messages(format, RECORDS_BYTES);
        let ingest_format = common::ingest_format(format);
        let parse = time(messages.len(), || {
            for message in &messages {
                let raw = parse_message(message, ingest_format).expect("generated records parse");
                black_box(&raw);
            }
        });
        let enrich = time(messages.len(), || {
            for message in &messages {
                let raw = parse_message(message, ingest_format).expect("generated records parse");
                black_box(enricher.with_row(&raw, |row| row.visitor));
            }
        });
        for (stage, (best, median)) in [("parse", parse), ("parse + enrich", enrich)] {
            println!(
                "| {name} ({} records) | {stage} | {best:.0} | {:.2} M | {median:.0} | {:.2} M |",
                messages.len(),
                1e3 / best,
                1e3 / median
            );
        }
    }
}
