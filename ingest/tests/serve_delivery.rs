//! Every sample and field case, sent to a running `ecstatic-ingest serve`
//! over TCP (as recorded, re-framed by LF, re-framed by octet counting) and
//! over UDP, lands in ClickHouse as exactly the rows that the `parse`
//! command (itself checked against each case's expectations) makes of it.

mod serve_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use ecstatic_ingest::{Frame, SyslogDecoder};
use serde_json::Value;
use serve_support::*;
use tokio_util::codec::Decoder;

/// Columns compared; `visitor` is left out because each process draws its
/// own visitor key, and `time` is compared as epoch seconds.
const COLUMNS: &[&str] = &[
    "site_id",
    "request_id",
    "status",
    "status_class",
    "bytes_sent",
    "cache_status",
    "edge_location",
    "host",
    "path",
    "referrer_host",
    "country",
    "browser",
    "os",
    "device",
    "file_type",
    "is_bot",
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Every input file of the shared samples and field cases.
fn inputs() -> Vec<PathBuf> {
    let mut files = vec![
        testdata().join("bunny/forward-pipe.syslog"),
        testdata().join("bunny/forward-json.syslog"),
        testdata().join("bunny/octet-counted.syslog"),
        testdata().join("bunny/logging-api-v1.log"),
    ];
    let mut cases: Vec<PathBuf> = std::fs::read_dir(testdata().join("cases"))
        .expect("testdata/cases is missing")
        .map(|e| e.unwrap().path().join("input"))
        .filter(|input| input.exists())
        .collect();
    cases.sort();
    files.extend(cases);
    files
}

/// A row reduced to the compared columns, as text.
type Row = BTreeMap<String, String>;

fn reduce(object: &serde_json::Map<String, Value>) -> Row {
    let mut row: Row = COLUMNS
        .iter()
        .map(|c| {
            let value = object
                .get(*c)
                .unwrap_or_else(|| panic!("no `{c}` in {object:?}"));
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => u8::from(*b).to_string(),
                other => other.to_string(),
            };
            ((*c).to_owned(), text)
        })
        .collect();
    let time = &object["time"];
    let epoch = match time {
        Value::Number(n) => n.to_string(),
        Value::String(s) => jiff::Timestamp::strptime("%Y-%m-%d %H:%M:%S%z", format!("{s}+0000"))
            .or_else(|_| s.parse::<jiff::Timestamp>())
            .map(|t| t.as_second().to_string())
            .unwrap_or_else(|_| panic!("cannot read time `{s}`")),
        other => panic!("unexpected time {other}"),
    };
    row.insert("time".into(), epoch);
    row
}

/// What the `parse` command makes of all inputs, as a sorted multiset.
fn expected_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for file in inputs() {
        let output = Command::new(env!("CARGO_BIN_EXE_ecstatic-ingest"))
            .arg("parse")
            .arg(&file)
            .output()
            .unwrap();
        // Exit 1 means "some frames were rejected", which several cases expect.
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "parse failed on {}",
            file.display()
        );
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let object: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            rows.push(reduce(&object));
        }
    }
    rows.sort();
    assert!(
        rows.len() >= 40,
        "only {} records in the fixtures",
        rows.len()
    );
    rows
}

async fn stored_rows(database: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT {}, toUnixTimestamp(time) AS time FROM {database}.access_log FORMAT JSONEachRow",
        COLUMNS.join(", ")
    );
    let text = clickhouse(&sql).await;
    let mut rows: Vec<Row> = text
        .lines()
        .map(|line| {
            let object: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
            reduce(&object)
        })
        .collect();
    rows.sort();
    rows
}

/// The messages of a file, as the decoder cuts them.
fn messages(file: &Path) -> Vec<Vec<u8>> {
    let mut buf = BytesMut::from(&std::fs::read(file).unwrap()[..]);
    let mut decoder = SyslogDecoder::new(1 << 20);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        if let Frame::Message(message) = frame {
            out.push(message.to_vec());
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Delivery {
    AsRecorded,
    LineFramed,
    OctetCounted,
    Udp,
}

async fn deliver(ingest: &Ingest, how: Delivery) {
    for file in inputs() {
        match how {
            Delivery::AsRecorded => send_tcp(ingest.syslog, &std::fs::read(&file).unwrap()).await,
            Delivery::LineFramed | Delivery::OctetCounted => {
                let mut stream = Vec::new();
                for message in messages(&file) {
                    if let Delivery::OctetCounted = how {
                        stream.extend_from_slice(format!("{} ", message.len()).as_bytes());
                        stream.extend_from_slice(&message);
                    } else {
                        stream.extend_from_slice(&message);
                        stream.push(b'\n');
                    }
                }
                send_tcp(ingest.syslog, &stream).await;
            }
            Delivery::Udp => {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                for message in messages(&file) {
                    socket.send_to(&message, ingest.syslog).await.unwrap();
                    // Loopback drops datagrams only when the receive buffer
                    // overflows; pacing keeps this test about parsing.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }
}

async fn check(database: &str, how: Delivery) {
    let expected = expected_rows();
    let database = fresh_database(database).await;
    let ingest = Ingest::start(&database).await;
    deliver(&ingest, how).await;
    wait_for_rows(&database, expected.len() as u64, Duration::from_secs(60)).await;
    let stored = stored_rows(&database).await;
    assert_eq!(stored.len(), expected.len());
    for (stored, expected) in stored.iter().zip(&expected) {
        assert_eq!(stored, expected, "{how:?}");
    }
    let accepted = ingest.metric("ingest_records_accepted_total").await;
    assert_eq!(accepted as usize, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_over_tcp_as_recorded_land_exactly() {
    check("test_serve_tcp_recorded", Delivery::AsRecorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_over_tcp_line_framed_land_exactly() {
    check("test_serve_tcp_lf", Delivery::LineFramed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_over_tcp_octet_counted_land_exactly() {
    check("test_serve_tcp_octet", Delivery::OctetCounted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_over_udp_land_exactly() {
    check("test_serve_udp", Delivery::Udp).await;
}

/// A bad frame between good ones: the good ones land, the bad ones are
/// counted by reason, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_counted_and_skipped() {
    let database = fresh_database("test_serve_malformed").await;
    let ingest = Ingest::start(&database).await;
    let mut stream = String::new();
    stream.push_str(&pipe_line(700, 1));
    stream.push_str("<13>Dec  4 10:40:00 router kernel: [WAN_LOCAL-default-D] IN=eth0\n");
    stream.push_str(&pipe_line(700, 2).replace("|1002|", "|-1|"));
    stream.push_str("{\"PullZoneId\": 700, \"Timestamp\": \n");
    stream.push_str(&pipe_line(700, 3));
    send_tcp(ingest.syslog, stream.as_bytes()).await;

    wait_for_rows(&database, 2, Duration::from_secs(30)).await;
    let metrics = ingest.metrics().await;
    let rejected = |reason: &str| {
        metric_value(
            &metrics,
            &format!("ingest_records_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(rejected("not_access_log"), 1.0, "{metrics}");
    assert_eq!(rejected("bad_number"), 1.0, "{metrics}");
    assert_eq!(rejected("malformed_json"), 1.0, "{metrics}");
    assert_eq!(metric_value(&metrics, "ingest_records_accepted_total"), 2.0);
    let ids = clickhouse(&format!(
        "SELECT request_id FROM {database}.access_log ORDER BY request_id FORMAT TSV"
    ))
    .await;
    assert_eq!(ids.lines().count(), 2);
}
