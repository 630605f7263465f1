//! Many connections at once, and input faster than ClickHouse takes it.

mod serve_support;

use std::time::Duration;

use serve_support::*;
use tokio::io::AsyncWriteExt;

/// A thousand connections, each sending a burst at the same moment: every
/// row lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_all_land() {
    let database = fresh_database("test_serve_thousand").await;
    let ingest = Ingest::start(&database).await;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(1000));
    let mut senders = Vec::new();
    for connection in 0..1000u64 {
        let (addr, start) = (ingest.syslog, std::sync::Arc::clone(&start));
        senders.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let burst: String = (0..20)
                .map(|n| pipe_line(900 + connection % 7, connection * 100 + n))
                .collect();
            start.wait().await;
            stream.write_all(burst.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    wait_for_rows(&database, 20_000, Duration::from_secs(120)).await;
    // One more: the harness's own probe that the port listens.
    assert_eq!(
        ingest.metric("ingest_connections_accepted_total").await,
        1001.0
    );
    let sites = clickhouse(&format!(
        "SELECT uniqExact(site_id) FROM {database}.access_log"
    ))
    .await;
    assert_eq!(sites.trim(), "7");
}

/// The input outruns ClickHouse (a link throttled to 1 MB/s): the intake
/// stops reading instead of buffering, its memory stays under the bound the
/// README states for these settings, and every row lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_faster_than_clickhouse_keeps_memory_bounded() {
    /// Peak resident memory allowed with `--max-buffer-bytes 16 MiB`:
    /// the budget, the read buffers, the UA cache and the runtime.
    const RSS_BOUND_BYTES: u64 = 150 << 20;
    const ROWS: u64 = 200_000;

    let database = fresh_database("test_serve_backpressure").await;
    let proxy = ChProxy::start().await;
    let options = IngestOptions {
        clickhouse_url: proxy.url.clone(),
        args: ["--max-buffer-bytes", "16777216", "--batch-rows", "20000"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let ingest = Ingest::start_with(&database, options).await;
    send_tcp(ingest.syslog, pipe_line(950, 0).as_bytes()).await;
    wait_for_rows(&database, 1, Duration::from_secs(30)).await;
    proxy.set_rate(1_000_000);

    let addr = ingest.syslog;
    let sender = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        for chunk in 0..ROWS / 1000 {
            let lines: String = (0..1000)
                .map(|n| pipe_line(950, 1 + chunk * 1000 + n))
                .collect();
            stream.write_all(lines.as_bytes()).await.unwrap();
        }
        stream.shutdown().await.unwrap();
    });
    // While the link is slow, the queue never exceeds the budget.
    let mut max_queue = 0.0f64;
    while !sender.is_finished() {
        max_queue = max_queue.max(ingest.metric("ingest_queue_bytes{stage=\"queued\"}").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sender.await.unwrap();
    proxy.set_rate(0);
    wait_for_rows(&database, ROWS + 1, Duration::from_secs(180)).await;

    assert!(
        max_queue <= 16.0 * 1024.0 * 1024.0 + 300_000.0,
        "queue reached {max_queue} bytes"
    );
    let peak = ingest.peak_rss_bytes();
    assert!(peak < RSS_BOUND_BYTES, "peak RSS {} MiB", peak >> 20);
    assert_eq!(ingest.metric("ingest_rows_spooled_total").await, 0.0);
}
