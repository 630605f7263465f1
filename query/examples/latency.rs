//! Latency of `ecstatic-query` against the same SQL sent straight to
//! ClickHouse, for the two questions of issue 4: a 30-day daily timeseries
//! and a top-10 path breakdown of one site.
//!
//! Needs a running `ecstatic-query` (with `ECSTATIC_JWT_SECRET` set here to
//! the same key) over a database with data; see BENCHMARKS.md for the load.
//!
//! ```sh
//! ECSTATIC_JWT_SECRET=... cargo run --release -p ecstatic-query --example latency -- \
//!     --database bench --site 1000 --requests 300
//! ```
//!
//! Requests go one at a time, alternating API and raw, so both see the same
//! server state; the first `--warmup` of each are not counted. The raw side
//! uses the same `clickhouse` client and the same SQL text the service
//! builds (`ecstatic_query::sql`), so the difference is what the service adds:
//! HTTP, auth, parameter checks, bucket planning and JSON.

use std::time::{Duration, Instant};

use clap::Parser;
use ecstatic_auth::{Claims, JwtKey, now_secs};
use ecstatic_query::buckets;
use ecstatic_query::params::{
    Bots, Common, Dimension, Filters, Interval, Metric, Range, parse_dimension,
};
use ecstatic_query::sql;
use ecstatic_store::Store;
use jiff::Timestamp;
use jiff::tz::TimeZone;

#[derive(Debug, Parser)]
struct Args {
    /// The running service.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    query_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    clickhouse_url: String,
    #[arg(long, default_value = "ecstatic")]
    database: String,
    /// Site to ask about.
    #[arg(long, default_value_t = 1000)]
    site: u64,
    /// Measured requests per question and side.
    #[arg(long, default_value_t = 300)]
    requests: usize,
    /// Requests per question and side run first and not counted.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// End of the 30-day range (RFC 3339). Default: just after the site's
    /// latest row.
    #[arg(long)]
    to: Option<Timestamp>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let secret = std::env::var(ecstatic_auth::JWT_SECRET_ENV)
        .map_err(|_| "set ECSTATIC_JWT_SECRET to the key the running service uses")?;
    let key = JwtKey::new(secret.as_bytes())?;
    let token = key.sign(&Claims {
        sub: "bench".into(),
        exp: now_secs() + 3_600,
        sites: vec![args.site],
        readonly: true,
    });

    let store = Store::connect(&args.clickhouse_url, &args.database).await?;
    let client = store.client().clone();
    let table = store.access_table();
    let to = match args.to {
        Some(to) => to,
        None => latest(&store, args.site).await?,
    };
    let from = to.checked_sub(jiff::SignedDuration::from_hours(30 * 24))?;
    let rows: u64 = client
        .query(&format!("SELECT count() FROM {table} WHERE site_id = ?"))
        .bind(args.site)
        .fetch_one()
        .await?;
    println!("site {} has {rows} rows; range {from} .. {to}", args.site);

    let common = Common {
        range: Range {
            from,
            to,
            tz: TimeZone::UTC,
        },
        filters: Filters {
            bots: Bots::Exclude,
            path: None,
            country: None,
            status_class: None,
            file_type: None,
        },
    };
    let offsets = buckets::offsets(&TimeZone::UTC, from, to);
    let series_sql = sql::timeseries(
        &table,
        args.site,
        &common,
        Metric::Pageviews,
        Interval::Day,
        &offsets,
    );
    let path: Dimension = parse_dimension("path").expect("a dimension");
    let rows_sql = sql::breakdown_rows(&table, args.site, &common, path, Metric::Visitors, (10, 0));
    let total_sql = sql::breakdown_total(&table, args.site, &common, path, Metric::Visitors);

    let http = reqwest::Client::new();
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let base = format!("{}/v1/sites/{}", args.query_url, args.site);
    let series_query = [
        ("from", from_s.as_str()),
        ("to", to_s.as_str()),
        ("metric", "pageviews"),
        ("interval", "day"),
    ];
    let breakdown_query = [
        ("from", from_s.as_str()),
        ("to", to_s.as_str()),
        ("metric", "visitors"),
        ("dimension", "path"),
        ("limit", "10"),
    ];

    let mut api_series = Vec::new();
    let mut raw_series = Vec::new();
    let mut api_breakdown = Vec::new();
    let mut raw_breakdown = Vec::new();
    for i in 0..args.warmup + args.requests {
        let keep = i >= args.warmup;

        let started = Instant::now();
        let answer = http
            .get(format!("{base}/timeseries"))
            .query(&series_query)
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        record(keep, &mut api_series, started, answer.len());

        let started = Instant::now();
        let points: Vec<(i64, u64)> = series_sql.to_query(&client).fetch_all().await?;
        record(keep, &mut raw_series, started, points.len());

        let started = Instant::now();
        let answer = http
            .get(format!("{base}/breakdown"))
            .query(&breakdown_query)
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        record(keep, &mut api_breakdown, started, answer.len());

        let started = Instant::now();
        let (top, total) = tokio::try_join!(
            rows_sql.to_query(&client).fetch_all::<(String, u64)>(),
            total_sql.to_query(&client).fetch_one::<u64>(),
        )?;
        record(
            keep,
            &mut raw_breakdown,
            started,
            top.len() + total as usize,
        );
    }

    println!("{:<34} {:>9} {:>9}", "question", "p50 ms", "p99 ms");
    let mut ratios = Vec::new();
    for (name, api, raw) in [
        ("30-day daily timeseries", &mut api_series, &mut raw_series),
        (
            "top-10 path breakdown",
            &mut api_breakdown,
            &mut raw_breakdown,
        ),
    ] {
        let (api50, api99) = percentiles(api);
        let (raw50, raw99) = percentiles(raw);
        println!(
            "{:<34} {:>9.2} {:>9.2}",
            format!("{name}, API"),
            api50,
            api99
        );
        println!(
            "{:<34} {:>9.2} {:>9.2}",
            format!("{name}, ClickHouse"),
            raw50,
            raw99
        );
        ratios.push((name, api50 / raw50));
    }
    for (name, ratio) in ratios {
        println!("{name}: API p50 / ClickHouse p50 = {ratio:.2} (target <= 1.5)");
    }
    Ok(())
}

/// Just after the site's latest row.
async fn latest(store: &Store, site: u64) -> Result<Timestamp, Box<dyn std::error::Error>> {
    let sql = format!(
        "SELECT toUInt32(max(time)) FROM {} WHERE site_id = ?",
        store.access_table()
    );
    let secs: u32 = store.client().query(&sql).bind(site).fetch_one().await?;
    if secs == 0 {
        return Err(format!("site {site} has no rows: load data first (BENCHMARKS.md)").into());
    }
    Ok(Timestamp::from_second(i64::from(secs) + 1)?)
}

fn record(keep: bool, samples: &mut Vec<Duration>, started: Instant, size: usize) {
    // `size` is used so that the answer cannot be optimised away.
    std::hint::black_box(size);
    if keep {
        samples.push(started.elapsed());
    }
}

/// `(p50, p99)` in milliseconds, nearest-rank.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}
