//! Who may send: the PROXY protocol header names the real sender, and the
//! allowlist refuses (and counts) everyone else.

mod serve_support;

use std::time::Duration;

use serve_support::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_senders_are_checked_against_the_allowlist() {
    let database = fresh_database("test_serve_proxy_allow").await;
    let options = IngestOptions {
        args: args(&[
            "--proxy-protocol",
            "--allow",
            "198.51.100.0/24,2001:db8::/32",
        ]),
        ..Default::default()
    };
    let ingest = Ingest::start_with(&database, options).await;

    // v1 from an allowed network: stored.
    let allowed = format!(
        "PROXY TCP4 198.51.100.7 127.0.0.1 40000 5140\r\n{}",
        pipe_line(960, 1)
    );
    send_tcp(ingest.syslog, allowed.as_bytes()).await;
    // v1 from elsewhere: refused before a byte of syslog is read.
    let foreign = format!(
        "PROXY TCP4 203.0.113.9 127.0.0.1 40000 5140\r\n{}",
        pipe_line(960, 2)
    );
    send_tcp(ingest.syslog, foreign.as_bytes()).await;
    // No header at all: refused.
    send_tcp(ingest.syslog, pipe_line(960, 3).as_bytes()).await;
    // v2 over IPv6 from an allowed network: stored.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x21, 0, 36]);
    v2.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(&[0; 16]);
    v2.extend_from_slice(&[0x9c, 0x40, 0x14, 0x14]);
    v2.extend_from_slice(pipe_line(960, 4).as_bytes());
    send_tcp(ingest.syslog, &v2).await;

    wait_for_rows(&database, 2, Duration::from_secs(30)).await;
    let refused = |reason: &str| format!("ingest_connections_refused_total{{reason=\"{reason}\"}}");
    wait_for_metric(&ingest, &refused("proxy_header"), 1.0).await;
    assert_eq!(ingest.metric(&refused("not_allowed")).await, 1.0);
    // The harness's readiness probe sent no header either.
    assert!(ingest.metric(&refused("proxy_header")).await >= 1.0);
    let ids = clickhouse(&format!(
        "SELECT request_id FROM {database}.access_log ORDER BY request_id FORMAT TSV"
    ))
    .await;
    let expected: Vec<String> = [1u64, 4]
        .iter()
        .map(|n| format!("{:016x}{n:016x}", 960))
        .collect();
    assert_eq!(ids.lines().collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_from_outside_the_allowlist_are_dropped_and_counted() {
    let database = fresh_database("test_serve_udp_allow").await;
    let options = IngestOptions {
        args: args(&["--allow", "10.0.0.0/8"]),
        ..Default::default()
    };
    let ingest = Ingest::start_with(&database, options).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(pipe_line(961, 1).as_bytes(), ingest.syslog)
        .await
        .unwrap();

    let series = "ingest_connections_refused_total{reason=\"not_allowed\"}";
    wait_for_metric(&ingest, series, 1.0).await;
    assert_eq!(count_rows(&database).await, 0);
}

/// A connection that sends nothing is closed after `--idle-timeout-secs`
/// and counted, so idle peers cannot hold every slot; one that ends inside
/// an octet-counted frame gets that frame counted as rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_truncated_connections_are_closed_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = fresh_database("test_serve_idle").await;
    let options = IngestOptions {
        args: args(&["--idle-timeout-secs", "1"]),
        ..Default::default()
    };
    let ingest = Ingest::start_with(&database, options).await;

    let mut idle = tokio::net::TcpStream::connect(ingest.syslog).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection stayed open"
    );
    let idle_series = "ingest_connections_refused_total{reason=\"idle\"}";
    assert!(ingest.metric(idle_series).await >= 1.0);

    let line = pipe_line(962, 1);
    let mut cut = tokio::net::TcpStream::connect(ingest.syslog).await.unwrap();
    let frame = format!("{} {}", line.len() + 50, line);
    cut.write_all(frame.as_bytes()).await.unwrap();
    cut.shutdown().await.unwrap();
    drop(cut);
    let series = "ingest_records_rejected_total{reason=\"truncated_frame\"}";
    wait_for_metric(&ingest, series, 1.0).await;
    assert_eq!(count_rows(&database).await, 0);
}
