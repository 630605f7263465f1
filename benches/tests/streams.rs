//! The generated and rewritten streams are what `ecstatic-ingest` expects:
//! each message is UTF-8, its pipe body has 12 fields that read back from
//! both ends, its JSON body parses, and octet counts are exact.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

use ecstatic_benches::apache::{self, Rewriter};
use ecstatic_benches::generate::stream;
use ecstatic_benches::render::{self, BOM};
use ecstatic_benches::{Access, BodyFormat, Framing, Generator, GeneratorConfig};
use proptest::prelude::*;

/// Splits an LF- or octet-framed stream into messages, checking every octet
/// count against the bytes that follow it.
fn split_frames(stream: &[u8], framing: Framing) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        match framing {
            Framing::Lf => {
                let end = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .expect("every message ends in LF");
                frames.push(&rest[..end]);
                rest = &rest[end + 1..];
            }
            Framing::Octet => {
                let space = rest
                    .iter()
                    .position(|&b| b == b' ')
                    .expect("length, then a space");
                let len: usize = std::str::from_utf8(&rest[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_ne!(rest[0], b'0', "no leading zero in an octet count");
                let message = &rest[space + 1..space + 1 + len];
                assert!(
                    message.starts_with(b"<134>1 "),
                    "count must land on the next header"
                );
                frames.push(message);
                rest = &rest[space + 1 + len..];
            }
        }
    }
    frames
}

/// The body after the RFC 5424 header and its BOM.
fn body(message: &[u8]) -> &str {
    let text = std::str::from_utf8(message).expect("message is UTF-8");
    let (header, body) = text.split_once('\u{feff}').expect("BOM after the header");
    let fields: Vec<&str> = header.split(' ').collect();
    assert_eq!(fields.len(), 8, "{header}");
    assert_eq!(&fields[..2], ["<134>1", fields[1]]);
    assert!(
        fields[1].parse::<jiff::Timestamp>().is_ok(),
        "{}",
        fields[1]
    );
    assert_eq!(&fields[3..], ["bunnycdn", "-", "-", "-", ""]);
    let _ = BOM;
    body
}

/// The pipe fields, reading the fixed-shape ones from both ends (the URL and
/// the agent are free text).
struct PipeFields<'a> {
    left: [&'a str; 6],
    middle: &'a str,
    request_id: &'a str,
    country: &'a str,
}

fn pipe_fields(body: &str) -> PipeFields<'_> {
    let mut left = body.splitn(7, '|');
    let fields: [&str; 6] = std::array::from_fn(|_| left.next().expect("six leading fields"));
    let rest = left.next().expect("fields after the sixth");
    let mut right = rest.rsplitn(3, '|');
    let country = right.next().unwrap();
    let request_id = right.next().unwrap();
    let middle = right.next().expect("referer to agent");
    PipeFields {
        left: fields,
        middle,
        request_id,
        country,
    }
}

fn check_pipe(body: &str, access: Option<&Access<'_>>) {
    let fields = pipe_fields(body);
    let [cache, status, ts, bytes, zone, ip] = fields.left;
    assert!(cache.chars().all(|c| c.is_ascii_uppercase()), "{body}");
    let status: u16 = status.parse().unwrap();
    let ts: i64 = ts.parse().unwrap();
    let bytes: u64 = bytes.parse().unwrap();
    let zone: u64 = zone.parse().unwrap();
    let ip: IpAddr = ip.parse().unwrap();
    assert_eq!(fields.request_id.len(), 32);
    assert!(
        fields
            .request_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(fields.country == "-" || fields.country.len() == 2, "{body}");
    assert!(zone > 0);
    if let Some(access) = access {
        assert_eq!(
            (status, ts, bytes, zone, ip),
            (
                access.status,
                access.timestamp_ms,
                access.bytes_sent,
                access.pull_zone_id,
                access.remote_ip,
            )
        );
        assert_eq!(fields.request_id, access.request_id.to_string());
        let mut url = Vec::new();
        render::write_url(access, &mut url);
        let url = String::from_utf8(url).unwrap();
        assert!(fields.middle.contains(&url), "{body}");
    }
}

fn check_json(body: &str) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON body parses");
    for key in [
        "PullZoneId",
        "Timestamp",
        "Status",
        "BytesSent",
        "BodyBytesSent",
    ] {
        assert!(value[key].is_u64(), "{key} in {body}");
    }
    for key in [
        "Host",
        "PathAndQuery",
        "Scheme",
        "Protocol",
        "UserAgent",
        "Referer",
        "RemoteIp",
        "Country",
        "ServerZone",
        "RequestId",
        "HeaderRange",
    ] {
        assert!(value[key].is_string(), "{key} in {body}");
    }
    for key in ["IsSSL", "Cached", "IsValid"] {
        assert!(value[key].is_boolean(), "{key} in {body}");
    }
    assert!(value["GzipRatio"].is_f64());
    assert!(
        value["RemoteIp"]
            .as_str()
            .unwrap()
            .parse::<IpAddr>()
            .is_ok()
    );
    assert!(value["PathAndQuery"].as_str().unwrap().starts_with('/'));
    value
}

fn config(seed: u64, sites: u32) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        sites,
        ..GeneratorConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn generated_pipe_stream_is_well_formed(
        seed in any::<u64>(), sites in 1u32..500, octet in any::<bool>(),
    ) {
        let framing = if octet { Framing::Octet } else { Framing::Lf };
        let (bytes, count) = stream(config(seed, sites), BodyFormat::Pipe, framing, false, 40_000);
        let frames = split_frames(&bytes, framing);
        prop_assert_eq!(frames.len() as u64, count);
        for frame in frames {
            let body = body(frame);
            prop_assert_eq!(body.split('|').count(), 12, "{}", body);
            check_pipe(body, None);
        }
    }

    #[test]
    fn generated_json_stream_is_well_formed(
        seed in any::<u64>(), octet in any::<bool>(), escape in any::<bool>(),
    ) {
        let framing = if octet { Framing::Octet } else { Framing::Lf };
        let (bytes, count) = stream(config(seed, 40), BodyFormat::Json, framing, escape, 40_000);
        let frames = split_frames(&bytes, framing);
        prop_assert_eq!(frames.len() as u64, count);
        for frame in frames {
            let body = body(frame);
            check_json(body);
            prop_assert_eq!(body.contains("\\/"), escape);
        }
    }

    #[test]
    fn pipe_fields_read_back_as_generated(seed in any::<u64>()) {
        let mut generator = Generator::new(config(seed, 30));
        for _ in 0..200 {
            let access = generator.next_access();
            let mut out = Vec::new();
            render::write_pipe_body(&access, &mut out);
            check_pipe(std::str::from_utf8(&out).unwrap(), Some(&access));
        }
    }
}

#[test]
fn same_seed_same_stream_other_seed_other_stream() {
    let a = stream(config(5, 10), BodyFormat::Pipe, Framing::Lf, false, 100_000);
    let b = stream(config(5, 10), BodyFormat::Pipe, Framing::Lf, false, 100_000);
    let c = stream(config(6, 10), BodyFormat::Pipe, Framing::Lf, false, 100_000);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

#[test]
fn request_ids_are_unique_across_seeds() {
    let mut seen = HashSet::new();
    for seed in 0..4 {
        let mut generator = Generator::new(config(seed, 10));
        for _ in 0..50_000 {
            assert!(
                seen.insert(generator.next_access().request_id),
                "duplicate id"
            );
        }
    }
}

/// The stream has the mix it promises: mostly 200/304 with some errors,
/// mostly HITs, a few per cent crawlers, IPv6, several extensions, query
/// strings, skewed sites.
#[test]
fn generated_mix_is_realistic() {
    let mut generator = Generator::new(config(1, 100));
    let n = 100_000;
    let (mut ok, mut not_found, mut server_error, mut hit, mut v6, mut crawler, mut query) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut zones = std::collections::HashMap::<u64, u32>::new();
    let mut extensions = HashSet::new();
    let mut referers = 0;
    let mut last_ts = 0;
    let start = GeneratorConfig::default().start_ms;
    for _ in 0..n {
        let a = generator.next_access();
        ok += u32::from(matches!(a.status, 200 | 304));
        not_found += u32::from(a.status == 404);
        server_error += u32::from(a.status >= 500);
        hit += u32::from(a.cache_status == "HIT");
        v6 += u32::from(a.remote_ip.is_ipv6());
        crawler += u32::from(a.user_agent.contains("bot") || a.user_agent.starts_with("curl"));
        query += u32::from(a.path_and_query.contains('?'));
        referers += u32::from(!a.referer.is_empty());
        *zones.entry(a.pull_zone_id).or_default() += 1;
        let path = a.path_and_query.split('?').next().unwrap();
        if let Some((_, ext)) = path.rsplit_once('.') {
            extensions.insert(ext.to_owned());
        }
        assert!(a.timestamp_ms >= start - 2000);
        last_ts = last_ts.max(a.timestamp_ms);
    }
    let share = |count: u32| f64::from(count) / f64::from(n);
    assert!(share(ok) > 0.85, "200/304 share {}", share(ok));
    assert!(
        (0.01..0.08).contains(&share(not_found)),
        "404 share {}",
        share(not_found)
    );
    assert!(
        (0.001..0.02).contains(&share(server_error)),
        "5xx {}",
        share(server_error)
    );
    assert!(share(hit) > 0.6, "HIT share {}", share(hit));
    assert!(
        (0.05..0.25).contains(&share(v6)),
        "IPv6 share {}",
        share(v6)
    );
    assert!(
        (0.02..0.08).contains(&share(crawler)),
        "crawler share {}",
        share(crawler)
    );
    assert!(
        (0.02..0.3).contains(&share(query)),
        "query share {}",
        share(query)
    );
    assert!(share(referers) > 0.3, "referer share {}", share(referers));
    for ext in [
        "html", "jpg", "png", "webp", "js", "css", "woff2", "pdf", "json", "ico",
    ] {
        assert!(extensions.contains(ext), "no .{ext} among {extensions:?}");
    }
    // Zipf over 100 sites: the top site takes about 1/H(100) ≈ 19 %.
    let top = zones[&1000];
    assert!(
        (0.15..0.24).contains(&share(top)),
        "top site share {}",
        share(top)
    );
    assert_eq!(zones.len(), 100);
    // 1000 accesses per simulated second: 100,000 span about 100 s.
    let span_secs = (last_ts - start) / 1000;
    assert!((90..110).contains(&span_secs), "span {span_secs} s");
}

fn vendored(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/access-logs")
        .join(name)
}

/// Every line of both vendored logs rewrites, except the one truncated line
/// of `apache_access_2`, which is rejected and counted.
#[test]
fn vendored_apache_logs_rewrite_with_one_rejection() {
    for (name, lines, rejected) in [
        ("apache_access_1.log.gz", 37_738, 0),
        ("apache_access_2.log.gz", 10_000, 1),
    ] {
        let text = apache::read_log(&vendored(name)).unwrap();
        let mut rewriter = Rewriter::new(4, 2000, 9);
        let mut ids = HashSet::new();
        let mut with_pipe = 0;
        for line in text.lines() {
            let Ok(access) = rewriter.rewrite(line) else {
                continue;
            };
            ids.insert(access.request_id);
            with_pipe += u32::from(access.path_and_query.contains('|'));
            for format in [BodyFormat::Pipe, BodyFormat::Json] {
                let mut message = Vec::new();
                render::write_message(&access, format, false, 0, &mut message);
                let body = body(&message);
                match format {
                    BodyFormat::Pipe => check_pipe(body, Some(&access)),
                    BodyFormat::Json => {
                        let value = check_json(body);
                        assert_eq!(value["UserAgent"], access.user_agent);
                    }
                }
            }
        }
        assert_eq!(rewriter.rewritten() + rewriter.rejected(), lines, "{name}");
        assert_eq!(rewriter.rejected(), rejected, "{name}");
        assert_eq!(
            ids.len() as u64,
            rewriter.rewritten(),
            "request ids are unique"
        );
        if name == "apache_access_1.log.gz" {
            assert!(
                with_pipe > 0,
                "the scanner lines with `|` in the path are kept"
            );
        }
    }
}
