//! Every bunny.net sample in `testdata/bunny/` parses to `expected.jsonl`,
//! through the real decoder and parser, and through the `parse` command.

mod common;

use std::process::Command;

use common::{Parsed, read_testdata, run_stream, testdata};
use serde_json::{Value, json};

const SAMPLES: &[&str] = &[
    "forward-pipe.syslog",
    "forward-json.syslog",
    "octet-counted.syslog",
    "logging-api-v1.log",
];

fn expected() -> Vec<Value> {
    let text = String::from_utf8(read_testdata("bunny/expected.jsonl")).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The raw fields of a record, keyed as in `expected.jsonl`.
fn raw_json(parsed: &Parsed) -> Value {
    let raw = &parsed.raw;
    json!({
        "cache_status": raw.cache_status,
        "status": raw.status,
        "timestamp_ms": raw.timestamp_ms,
        "bytes_sent": raw.bytes_sent,
        "pull_zone_id": raw.pull_zone_id,
        "remote_ip": raw.remote_ip.map(|ip| ip.to_string()),
        "referer": raw.referer,
        "url": raw.url(),
        "edge_location": raw.edge_location,
        "user_agent": raw.user_agent,
        "request_id": raw.request_id,
        "country": raw.country,
    })
}

fn assert_matches_expected(name: &str, actual: &[Value]) {
    let expected = expected();
    assert_eq!(actual.len(), expected.len(), "{name}: record count");
    for (n, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
        for (key, want) in expected.as_object().unwrap() {
            assert_eq!(&actual[key], want, "{name}: record {} field `{key}`", n + 1);
        }
    }
}

#[test]
fn every_sample_yields_expected_jsonl() {
    for name in SAMPLES {
        let records: Vec<Parsed> = run_stream(&read_testdata(&format!("bunny/{name}")))
            .into_iter()
            .map(|r| r.unwrap_or_else(|err| panic!("{name}: rejected: {err}")))
            .collect();
        let actual: Vec<Value> = records.iter().map(raw_json).collect();
        assert_matches_expected(name, &actual);
    }
}

#[test]
fn sample_facts_survive_enrichment() {
    let records: Vec<Parsed> = run_stream(&read_testdata("bunny/forward-pipe.syslog"))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // The fourth access is a crawler, the fifth a curl probe for a missing
    // path over IPv6, the sixth has a query string the stored path drops.
    assert_eq!(records[3].row.is_bot, 1);
    assert_eq!(records[3].row.device, "bot");
    assert!(records[4].raw.remote_ip.unwrap().is_ipv6());
    assert_eq!(
        (records[4].row.status, records[4].row.status_class.as_str()),
        (404, "4xx")
    );
    assert_eq!(records[5].row.path, "/images/cover.webp");
    assert_eq!(records[5].row.file_type, "image");
    assert_eq!(records[0].row.host, "blog.example.com");
    assert_eq!(
        (records[0].row.site_id, records[0].row.time),
        (390, 1_733_318_055)
    );
    assert_eq!(records[0].row.browser, "Chrome");
    // Same visitor (IP, agent, site, day) gives the same id; another agent not.
    assert_eq!(records[0].row.visitor, records[5].row.visitor);
    assert_ne!(records[0].row.visitor, records[1].row.visitor);
}

#[test]
fn parse_command_prints_expected_records() {
    for name in SAMPLES {
        let output = Command::new(env!("CARGO_BIN_EXE_ecstatic-ingest"))
            .arg("parse")
            .arg(testdata(&format!("bunny/{name}")))
            .output()
            .expect("run ecstatic-ingest parse");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("accepted: 6\nrejected: 0\n"),
            "{name}: {stderr}"
        );
        let lines: Vec<Value> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_matches_expected(name, &lines);
        for column in ecstatic_store::ACCESS_LOG_COLUMNS
            .iter()
            .map(|(name, _)| name)
        {
            assert!(
                lines[0].get(column).is_some(),
                "{name}: column `{column}` missing"
            );
        }
        assert_eq!(lines[5]["path"], "/images/cover.webp");
    }
}

#[test]
fn parse_command_reads_stdin_and_reports_rejections() {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_ecstatic-ingest"))
        .args(["parse", "--format", "pipe", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ecstatic-ingest parse");
    let mut input = read_testdata("bunny/logging-api-v1.log");
    input.extend_from_slice(b"\nMISS|200|1733318055456|-1|390|-|-|https://a/|NY|ua|id|US\n");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("number out of range in `bytes_sent`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("accepted: 6\nrejected: 1\nrejected.bad_number: 1\n"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 6);
}
