//! Decode + parse throughput on one core, next to a bare memchr line scan.
//!
//! The input is ~64 MB of generated bunny.net syslog (LF framing, realistic
//! agents, sites and paths). Each iteration decodes the whole stream with
//! `SyslogDecoder` and parses every message with `parse_message`; the
//! baseline only counts its line feeds with `memchr`. Targets (issue 2):
//! pipe >= 1 GB/s, JSON >= 500 MB/s.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ecstatic_benches::generate::stream;
use ecstatic_benches::{BodyFormat, Framing, GeneratorConfig};
use ecstatic_ingest::{Frame, SyslogDecoder, parse_message};
use tokio_util::codec::Decoder;

const STREAM_BYTES: usize = 64 * 1024 * 1024;

fn generated(format: BodyFormat) -> (Vec<u8>, u64) {
    let config = GeneratorConfig {
        seed: 1,
        sites: 200,
        ..GeneratorConfig::default()
    };
    stream(config, format, Framing::Lf, false, STREAM_BYTES)
}

fn ingest_format(format: BodyFormat) -> ecstatic_ingest::BodyFormat {
    match format {
        BodyFormat::Pipe => ecstatic_ingest::BodyFormat::Pipe,
        BodyFormat::Json => ecstatic_ingest::BodyFormat::Json,
    }
}

/// Decodes and parses the whole buffer; returns the records accepted.
fn decode_and_parse(mut buf: BytesMut, format: ecstatic_ingest::BodyFormat) -> u64 {
    let mut decoder = SyslogDecoder::default();
    let mut accepted = 0;
    while let Some(frame) = decoder
        .decode_eof(&mut buf)
        .expect("the stream is well framed")
    {
        if let Frame::Message(message) = frame {
            accepted += u64::from(black_box(parse_message(&message, format)).is_ok());
        }
    }
    accepted
}

fn bench_decode_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_parse");
    group.sample_size(10);
    for format in [BodyFormat::Pipe, BodyFormat::Json] {
        let (bytes, records) = generated(format);
        let name = format!("{format:?}").to_lowercase();
        let accepted = decode_and_parse(BytesMut::from(&bytes[..]), ingest_format(format));
        assert_eq!(accepted, records, "every generated {name} record parses");

        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{name}/memchr_lf_scan"), |b| {
            b.iter(|| memchr::memchr_iter(b'\n', black_box(&bytes)).count())
        });
        group.bench_function(format!("{name}/decode_parse"), |b| {
            b.iter_batched(
                || BytesMut::from(&bytes[..]),
                |buf| decode_and_parse(buf, ingest_format(format)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode_parse);
criterion_main!(benches);
