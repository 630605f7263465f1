//! The intake's Prometheus metrics. Names are nouns with a past-tense verb;
//! labels have a small fixed set of values. Hot loops count locally and add
//! here once per read burst or batch, never once per record.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::Reason;

/// Every metric of the `serve` command, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// TCP connections accepted.
    pub connections_accepted: IntCounter,
    /// TCP connections (or UDP datagrams) refused, by `reason`.
    pub connections_refused: IntCounterVec,
    /// TCP connections open now.
    pub connections_active: IntGauge,
    /// Syslog frames received, by `transport` (`tcp`, `udp`).
    pub frames_received: IntCounterVec,
    /// Bytes read from sockets, by `transport`.
    pub bytes_received: IntCounterVec,
    /// Records parsed and accepted for storage.
    pub records_accepted: IntCounter,
    /// Frames rejected, by `reason`.
    pub records_rejected: IntCounterVec,
    /// Rows stored in ClickHouse.
    pub rows_inserted: IntCounter,
    /// Inserts that succeeded.
    pub batches_inserted: IntCounter,
    /// Insert attempts that failed, by `stage` (`insert`, `replay`).
    pub insert_errors: IntCounterVec,
    /// Time taken by successful inserts.
    pub insert_seconds: Histogram,
    /// Rows skipped on a retry because an earlier attempt had stored them.
    pub rows_deduplicated: IntCounter,
    /// Rows written to the spool directory.
    pub rows_spooled: IntCounter,
    /// Bytes and files in the spool directory now.
    pub spool_bytes: IntGauge,
    pub spool_files: IntGauge,
    /// Times a batch could not be spooled because the spool was full.
    pub spool_full: IntCounter,
    /// Encoded bytes held in memory between sockets and ClickHouse, by
    /// `stage` (`queued`: accepted, not yet stored or spooled).
    pub queue_bytes: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let metric = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let insert_seconds = Histogram::with_opts(
            HistogramOpts::new("ingest_insert_duration_seconds", "Time taken by one insert")
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(insert_seconds.clone()))
            .expect("unique metric");
        let queue_bytes = IntGaugeVec::new(
            Opts::new(
                "ingest_queue_bytes",
                "Encoded bytes held between sockets and storage",
            ),
            &["stage"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(queue_bytes.clone()))
            .expect("unique metric");

        let metrics = Self {
            connections_accepted: counter(
                "ingest_connections_accepted_total",
                "TCP connections accepted",
            ),
            connections_refused: counter_vec(
                "ingest_connections_refused_total",
                "Connections or datagrams refused",
                "reason",
            ),
            connections_active: gauge("ingest_connections_active", "TCP connections open now"),
            frames_received: counter_vec(
                "ingest_frames_received_total",
                "Syslog frames received",
                "transport",
            ),
            bytes_received: counter_vec(
                "ingest_bytes_received_total",
                "Bytes read from sockets",
                "transport",
            ),
            records_accepted: counter(
                "ingest_records_accepted_total",
                "Records parsed and accepted for storage",
            ),
            records_rejected: counter_vec(
                "ingest_records_rejected_total",
                "Frames rejected, by reason",
                "reason",
            ),
            rows_inserted: counter("ingest_rows_inserted_total", "Rows stored in ClickHouse"),
            batches_inserted: counter("ingest_batches_inserted_total", "Inserts that succeeded"),
            insert_errors: counter_vec(
                "ingest_insert_errors_total",
                "Insert attempts that failed",
                "stage",
            ),
            insert_seconds,
            rows_deduplicated: counter(
                "ingest_rows_deduplicated_total",
                "Rows skipped on retry because an earlier attempt stored them",
            ),
            rows_spooled: counter("ingest_rows_spooled_total", "Rows written to the spool"),
            spool_bytes: gauge("ingest_spool_bytes", "Bytes in the spool directory"),
            spool_files: gauge("ingest_spool_files", "Batches in the spool directory"),
            spool_full: counter(
                "ingest_spool_full_total",
                "Batches held in memory because the spool was full",
            ),
            queue_bytes,
            registry,
        };
        // Expose every rejection reason from the start, so that dashboards
        // and alerts see zeros rather than missing series.
        for reason in Reason::ALL {
            metrics
                .records_rejected
                .with_label_values(&[reason.as_str()]);
        }
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
