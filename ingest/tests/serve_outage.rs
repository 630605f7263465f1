//! ClickHouse going away, losing answers or stalling, and the intake being
//! stopped: every accepted record lands, exactly once.

mod serve_support;

use std::time::Duration;

use serve_support::*;

fn lines(site_id: u64, range: std::ops::Range<u64>) -> String {
    range.map(|n| pipe_line(site_id, n)).collect()
}

/// An intake whose link to ClickHouse goes through a proxy the test steers.
async fn ingest_behind_proxy(database: &str) -> (ChProxy, Ingest) {
    let proxy = ChProxy::start().await;
    let options = IngestOptions {
        clickhouse_url: proxy.url.clone(),
        ..Default::default()
    };
    let ingest = Ingest::start_with(database, options).await;
    (proxy, ingest)
}

async fn assert_no_duplicates(database: &str) {
    let answer = clickhouse(&format!(
        "SELECT count() = uniqExact(request_id) FROM {database}.access_log"
    ))
    .await;
    assert_eq!(answer.trim(), "1", "some request id was stored twice");
}

/// ClickHouse stops answering mid-stream and comes back: batches go to the
/// spool, are replayed, and every record is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_mid_stream_loses_nothing() {
    let database = fresh_database("test_serve_outage").await;
    let (proxy, ingest) = ingest_behind_proxy(&database).await;

    send_tcp(ingest.syslog, lines(800, 0..500).as_bytes()).await;
    wait_for_rows(&database, 500, Duration::from_secs(30)).await;

    proxy.set_mode(ProxyMode::Refuse);
    send_tcp(ingest.syslog, lines(800, 500..1500).as_bytes()).await;
    send_tcp(ingest.syslog, lines(801, 0..700).as_bytes()).await;
    wait_for_metric(&ingest, "ingest_rows_spooled_total", 1700.0).await;
    assert!(ingest.metric("ingest_spool_files").await >= 1.0);
    assert_eq!(count_rows(&database).await, 500);

    proxy.set_mode(ProxyMode::Forward);
    wait_for_rows(&database, 2200, Duration::from_secs(60)).await;
    wait_for_metric(&ingest, "ingest_rows_inserted_total", 2200.0).await;
    assert_eq!(ingest.metric("ingest_spool_files").await, 0.0);
    assert_no_duplicates(&database).await;
}

/// ClickHouse stores a batch but its answer is lost: the retry finds the
/// rows already there and does not store them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_insert_answer_does_not_store_twice() {
    let database = fresh_database("test_serve_lost_answer").await;
    let (proxy, ingest) = ingest_behind_proxy(&database).await;
    // Create the schema through a healthy link first.
    send_tcp(ingest.syslog, lines(810, 0..10).as_bytes()).await;
    wait_for_rows(&database, 10, Duration::from_secs(30)).await;

    proxy.set_mode(ProxyMode::LoseAnswers);
    send_tcp(ingest.syslog, lines(810, 10..1010).as_bytes()).await;
    wait_for_metric(&ingest, "ingest_insert_errors_total{stage=\"insert\"}", 1.0).await;
    proxy.set_mode(ProxyMode::Forward);

    wait_for_rows(&database, 1010, Duration::from_secs(60)).await;
    wait_for_metric(&ingest, "ingest_rows_deduplicated_total", 1000.0).await;
    assert_eq!(
        ingest.metric("ingest_rows_deduplicated_total").await,
        1000.0
    );
    assert_eq!(count_rows(&database).await, 1010);
    assert_no_duplicates(&database).await;
}

/// Batches large enough to be streamed to ClickHouse while they fill (more
/// than a 1 MiB segment): a link cut in the middle of a streamed insert,
/// and an answer lost at the end of another, still store each row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_inserts_cut_or_unanswered_store_each_row_once() {
    let database = fresh_database("test_serve_streamed").await;
    let (proxy, ingest) = ingest_behind_proxy(&database).await;
    send_tcp(ingest.syslog, lines(840, 0..10).as_bytes()).await;
    wait_for_rows(&database, 10, Duration::from_secs(30)).await;

    // About 5 MB of rows over three sites; at 20 KB/s the streamed insert
    // is still going when the link is cut.
    proxy.set_rate(20_000);
    let batch: String = (841..844).map(|site| lines(site, 0..10_000)).collect();
    send_tcp(ingest.syslog, batch.as_bytes()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_rows(&database).await, 10);
    proxy.set_mode(ProxyMode::Refuse);
    wait_for_metric(&ingest, "ingest_insert_errors_total{stage=\"insert\"}", 1.0).await;
    proxy.set_rate(0);
    proxy.set_mode(ProxyMode::Forward);
    wait_for_rows(&database, 30_010, Duration::from_secs(60)).await;

    // The next streamed insert is stored, but its answer never arrives.
    proxy.set_mode(ProxyMode::LoseAnswers);
    let errors = ingest
        .metric("ingest_insert_errors_total{stage=\"insert\"}")
        .await;
    let batch: String = (844..847).map(|site| lines(site, 0..10_000)).collect();
    send_tcp(ingest.syslog, batch.as_bytes()).await;
    wait_for_metric(
        &ingest,
        "ingest_insert_errors_total{stage=\"insert\"}",
        errors + 1.0,
    )
    .await;
    proxy.set_mode(ProxyMode::Forward);
    wait_for_rows(&database, 60_010, Duration::from_secs(60)).await;
    wait_for_metric(&ingest, "ingest_rows_deduplicated_total", 1.0).await;
    // Every row was acknowledged once: by an insert, or found stored by
    // the retry after the lost answer.
    for _ in 0..100 {
        let inserted = ingest.metric("ingest_rows_inserted_total").await;
        let found = ingest.metric("ingest_rows_deduplicated_total").await;
        if inserted + found == 60_010.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inserted = ingest.metric("ingest_rows_inserted_total").await;
    let found = ingest.metric("ingest_rows_deduplicated_total").await;
    assert_eq!(inserted + found, 60_010.0);
    assert_eq!(count_rows(&database).await, 60_010);
    assert_no_duplicates(&database).await;
}

/// A lost answer for a batch of 2,000 sites: the read-back asks about the
/// sites in groups (one statement for all would pass ClickHouse's size
/// limit at a few thousand sites) and every row is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_for_thousands_of_sites_is_read_back_in_groups() {
    let database = fresh_database("test_serve_many_sites").await;
    let (proxy, ingest) = ingest_behind_proxy(&database).await;
    send_tcp(ingest.syslog, lines(850, 0..10).as_bytes()).await;
    wait_for_rows(&database, 10, Duration::from_secs(30)).await;

    proxy.set_mode(ProxyMode::LoseAnswers);
    let batch: String = (10_000..12_000).map(|site| lines(site, 0..3)).collect();
    send_tcp(ingest.syslog, batch.as_bytes()).await;
    wait_for_metric(&ingest, "ingest_insert_errors_total{stage=\"insert\"}", 1.0).await;
    proxy.set_mode(ProxyMode::Forward);
    wait_for_metric(&ingest, "ingest_rows_deduplicated_total", 1.0).await;
    wait_for_rows(&database, 6_010, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count_rows(&database).await, 6_010);
    assert_no_duplicates(&database).await;
}

/// SIGTERM while ClickHouse is away and the spool is full: the service
/// holds the batch that did not fit, replays the spool once ClickHouse
/// answers again, stores the rest and exits 0, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_spool_finishes_once_clickhouse_is_back() {
    let database = fresh_database("test_serve_full_spool_sigterm").await;
    let proxy = ChProxy::start().await;
    let options = IngestOptions {
        clickhouse_url: proxy.url.clone(),
        args: vec!["--spool-max-bytes".into(), "300000".into()],
        ..Default::default()
    };
    let mut ingest = Ingest::start_with(&database, options).await;
    send_tcp(ingest.syslog, lines(860, 0..10).as_bytes()).await;
    wait_for_rows(&database, 10, Duration::from_secs(30)).await;

    proxy.set_mode(ProxyMode::Refuse);
    send_tcp(ingest.syslog, lines(860, 10..1010).as_bytes()).await;
    wait_for_metric(&ingest, "ingest_rows_spooled_total", 1000.0).await;
    send_tcp(ingest.syslog, lines(860, 1010..5010).as_bytes()).await;
    wait_for_metric(&ingest, "ingest_spool_full_total", 1.0).await;

    ingest.signal_term();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ingest.running(), "exited with a batch it could not store");
    proxy.set_mode(ProxyMode::Forward);
    let status = tokio::task::block_in_place(|| ingest.wait());
    assert!(status.success(), "{status:?}; log:\n{}", ingest.log());
    assert_eq!(count_rows(&database).await, 5010);
    assert_no_duplicates(&database).await;
}

/// SIGTERM while a sender is mid-stream: the service drains what was sent,
/// stores every accepted record and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_stores_every_accepted_record() {
    use tokio::io::AsyncWriteExt;

    let database = fresh_database("test_serve_sigterm").await;
    let mut ingest = Ingest::start(&database).await;
    let mut stream = tokio::net::TcpStream::connect(ingest.syslog).await.unwrap();
    let first = lines(820, 0..10_000);
    let rest = lines(820, 10_000..20_000);
    stream.write_all(first.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        // The rest goes out while the service shuts down; part of it may be
        // refused once the connection closes, which is fine: only accepted
        // records are promised.
        let _ = stream.write_all(rest.as_bytes()).await;
    });
    wait_for_metric(&ingest, "ingest_records_accepted_total", 1.0).await;

    let status = tokio::task::spawn_blocking(move || {
        let status = ingest.terminate();
        (status, ingest)
    })
    .await
    .unwrap();
    let (status, ingest) = status;
    let _ = sender.await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        ingest.log()
    );

    let log = ingest.log();
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped") && l.contains("records_accepted"));
    let accepted: u64 = stopped
        .and_then(|l| l.split("records_accepted=").nth(1))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no final count in the log:\n{log}"));
    assert!(
        accepted >= 10_000,
        "only {accepted} records accepted before the drain ended"
    );
    assert_eq!(count_rows(&database).await, accepted);
    assert_no_duplicates(&database).await;
}

/// What `kill -9` cannot take: batches already in the spool. They are
/// replayed by the next process, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_survive_kill_9() {
    let database = fresh_database("test_serve_kill9").await;
    let proxy = ChProxy::start().await;
    let spool = tempfile::tempdir().unwrap();
    let options = IngestOptions {
        clickhouse_url: proxy.url.clone(),
        spool: Some(spool.path()),
        ..Default::default()
    };
    let mut first = Ingest::start_with(&database, options).await;
    send_tcp(first.syslog, lines(830, 0..5).as_bytes()).await;
    wait_for_rows(&database, 5, Duration::from_secs(30)).await;

    proxy.set_mode(ProxyMode::Refuse);
    send_tcp(first.syslog, lines(830, 5..2005).as_bytes()).await;
    wait_for_metric(&first, "ingest_rows_spooled_total", 2000.0).await;
    first.kill_hard();

    proxy.set_mode(ProxyMode::Forward);
    let options = IngestOptions {
        clickhouse_url: proxy.url.clone(),
        spool: Some(spool.path()),
        ..Default::default()
    };
    let second = Ingest::start_with(&database, options).await;
    wait_for_rows(&database, 2005, Duration::from_secs(60)).await;
    wait_for_metric(&second, "ingest_rows_inserted_total", 2000.0).await;
    assert_no_duplicates(&database).await;
}
