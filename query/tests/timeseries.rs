//! Timeseries against the real ClickHouse: buckets in Europe/Berlin and
//! America/New_York across their 2024 DST changes and in Asia/Kolkata, every
//! metric and filter, gaps as zeros. The reference answer walks the range in
//! small steps and labels each instant with its local bucket, by brute force,
//! independently of how the service plans buckets.

mod common;

use std::collections::BTreeMap;

use common::*;
use ecstatic_store::AccessRow;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The label (RFC 3339 start with offset) of the bucket holding `t`.
fn label(t: i64, tz: &TimeZone, interval: &str) -> String {
    let zoned = Timestamp::from_second(t).unwrap().to_zoned(tz.clone());
    let show = |ts: Timestamp| ts.display_with_offset(tz.to_offset(ts)).to_string();
    let date_start = |d: Date| show(d.to_zoned(tz.clone()).unwrap().timestamp());
    match interval {
        "hour" => {
            let offset = i64::from(zoned.offset().seconds());
            let start = (t + offset).div_euclid(3_600) * 3_600 - offset;
            show(Timestamp::from_second(start).unwrap())
        }
        "day" => date_start(zoned.date()),
        "week" => {
            let mut d = zoned.date();
            while d.weekday() != jiff::civil::Weekday::Monday {
                d = d.yesterday().unwrap();
            }
            date_start(d)
        }
        "month" => date_start(zoned.date().first_of_month()),
        other => panic!("unknown interval {other}"),
    }
}

/// Expected `(time, value)` points for `[from, to)`.
fn expected(
    rows: &[&AccessRow],
    (from, to): (i64, i64),
    tz: &TimeZone,
    interval: &str,
    metric: &str,
) -> Vec<(String, u64)> {
    // Every bucket the range touches, found by stepping 15 minutes at a time
    // (no zone offset in use is finer than that).
    let mut labels: Vec<String> = Vec::new();
    let mut t = from;
    while t < to {
        let l = label(t, tz, interval);
        if labels.last() != Some(&l) {
            labels.push(l);
        }
        t += 900;
    }
    let l = label(to - 1, tz, interval);
    if labels.last() != Some(&l) {
        labels.push(l);
    }

    let mut groups: BTreeMap<String, Vec<&AccessRow>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| (from..to).contains(&i64::from(r.time)))
    {
        groups
            .entry(label(i64::from(r.time), tz, interval))
            .or_default()
            .push(r);
    }
    let series: Vec<(String, u64)> = labels
        .into_iter()
        .map(|l| {
            let value = groups
                .get(&l)
                .map_or(0, |rs| measure(metric, rs.iter().copied()));
            (l, value)
        })
        .collect();
    let counted: usize = groups.values().map(Vec::len).sum();
    assert_eq!(
        counted,
        rows.iter()
            .filter(|r| (from..to).contains(&i64::from(r.time)))
            .count()
    );
    series
}

fn points(answer: &serde_json::Value) -> Vec<(String, u64)> {
    answer["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["time"].as_str().unwrap().to_owned(),
                p["value"].as_u64().unwrap(),
            )
        })
        .collect()
}

struct Case {
    tz: &'static str,
    interval: &'static str,
    from: &'static str,
    to: &'static str,
}

const fn case(
    tz: &'static str,
    interval: &'static str,
    from: &'static str,
    to: &'static str,
) -> Case {
    Case {
        tz,
        interval,
        from,
        to,
    }
}

const CASES: &[Case] = &[
    case(
        "Europe/Berlin",
        "hour",
        "2024-03-30T00:00:00Z",
        "2024-04-01T00:00:00Z",
    ),
    case(
        "Europe/Berlin",
        "hour",
        "2024-10-26T00:00:00Z",
        "2024-10-28T00:00:00Z",
    ),
    case(
        "Europe/Berlin",
        "day",
        "2024-03-01T00:00:00+01:00",
        "2024-11-15T00:00:00+01:00",
    ),
    case(
        "Europe/Berlin",
        "week",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "Europe/Berlin",
        "month",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "America/New_York",
        "hour",
        "2024-03-09T00:00:00Z",
        "2024-03-12T00:00:00Z",
    ),
    case(
        "America/New_York",
        "hour",
        "2024-11-01T13:17:00Z",
        "2024-11-05T00:00:00Z",
    ),
    case(
        "America/New_York",
        "day",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "America/New_York",
        "week",
        "2024-02-01T00:00:00Z",
        "2024-12-01T00:00:00Z",
    ),
    case(
        "America/New_York",
        "month",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "Asia/Kolkata",
        "hour",
        "2024-03-29T12:00:00Z",
        "2024-04-02T00:00:00Z",
    ),
    case(
        "Asia/Kolkata",
        "day",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "Asia/Kolkata",
        "week",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case(
        "Asia/Kolkata",
        "month",
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    ),
    case("UTC", "day", "2024-03-08T00:00:00Z", "2024-03-12T00:00:00Z"),
];

#[tokio::test]
async fn buckets_follow_the_zone_across_dst_for_every_metric() {
    let db = "query_timeseries_buckets_follow_the_zone";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;
    let kept: Vec<&AccessRow> = rows
        .iter()
        .filter(|r| r.site_id == SITE && r.is_bot == 0)
        .collect();

    for case in CASES {
        let tz = TimeZone::get(case.tz).unwrap();
        let range = (at(case.from), at(case.to));
        for metric in METRICS {
            let query = [
                ("from", case.from),
                ("to", case.to),
                ("tz", case.tz),
                ("interval", case.interval),
                ("metric", metric),
            ];
            let answer = server
                .json(&format!("/v1/sites/{SITE}/timeseries"), &query)
                .await;
            let want = expected(&kept, range, &tz, case.interval, metric);
            assert!(
                want.iter().any(|p| p.1 > 0),
                "no data in {}: widen the dataset",
                case.from
            );
            let context = format!(
                "{} {} from {} by {metric}",
                case.tz, case.interval, case.from
            );
            assert_eq!(points(&answer), want, "{context}");
        }
    }
}

#[tokio::test]
async fn dst_changes_show_in_the_bucket_times() {
    let db = "query_timeseries_dst_bucket_times";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;
    let path = format!("/v1/sites/{SITE}/timeseries");
    let times = |answer: &serde_json::Value| -> Vec<String> {
        points(answer).into_iter().map(|p| p.0).collect()
    };

    // Berlin, autumn: the 02:00 hour happens twice, first in summer time.
    let q = [
        ("from", "2024-10-27T00:00:00+02:00"),
        ("to", "2024-10-27T04:00:00+01:00"),
        ("tz", "Europe/Berlin"),
        ("interval", "hour"),
        ("metric", "requests"),
        ("bots", "include"),
    ];
    let autumn = times(&server.json(&path, &q).await);
    let want = [
        "2024-10-27T00:00:00+02:00",
        "2024-10-27T01:00:00+02:00",
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:00:00+01:00",
        "2024-10-27T03:00:00+01:00",
    ];
    assert_eq!(autumn, want);

    // Berlin, spring: there is no 02:00 hour.
    let q = [
        ("from", "2024-03-31T00:00:00+01:00"),
        ("to", "2024-03-31T04:00:00+02:00"),
        ("tz", "Europe/Berlin"),
        ("interval", "hour"),
        ("metric", "requests"),
    ];
    let spring = times(&server.json(&path, &q).await);
    assert_eq!(
        spring,
        [
            "2024-03-31T00:00:00+01:00",
            "2024-03-31T01:00:00+01:00",
            "2024-03-31T03:00:00+02:00"
        ]
    );

    // New York: days of 23 and 25 hours.
    for (from, to, hours) in [
        ("2024-03-10T00:00:00-05:00", "2024-03-12T00:00:00-04:00", 23),
        ("2024-11-03T00:00:00-04:00", "2024-11-05T00:00:00-05:00", 25),
    ] {
        let q = [
            ("from", from),
            ("to", to),
            ("tz", "America/New_York"),
            ("metric", "visitors"),
        ];
        let days = times(&server.json(&path, &q).await);
        assert_eq!(days.len(), 2);
        let start = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        assert_eq!(start(&days[1]) - start(&days[0]), hours * 3_600, "{days:?}");
    }

    // Kolkata: half an hour off UTC, and weeks start on Monday.
    let q = [
        ("from", "2024-07-01T00:00:00Z"),
        ("to", "2024-07-20T00:00:00Z"),
        ("tz", "Asia/Kolkata"),
        ("interval", "week"),
        ("metric", "requests"),
    ];
    let weeks = times(&server.json(&path, &q).await);
    assert_eq!(
        weeks,
        [
            "2024-07-01T00:00:00+05:30",
            "2024-07-08T00:00:00+05:30",
            "2024-07-15T00:00:00+05:30"
        ]
    );
}

#[tokio::test]
async fn every_filter_applies_to_series() {
    let db = "query_timeseries_every_filter";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let (from, to) = ("2024-10-20T00:00:00+02:00", "2024-11-10T00:00:00+01:00");

    for filter in filters() {
        let kept: Vec<&AccessRow> = rows
            .iter()
            .filter(|r| r.site_id == SITE && (filter.keep)(r))
            .collect();
        for metric in METRICS {
            let mut query = vec![("from", from), ("to", to), ("tz", "Europe/Berlin")];
            query.push(("metric", metric));
            query.extend(filter.query.iter().copied());
            let answer = server
                .json(&format!("/v1/sites/{SITE}/timeseries"), &query)
                .await;
            let want = expected(&kept, (at(from), at(to)), &tz, "day", metric);
            assert_eq!(points(&answer), want, "{metric} with {:?}", filter.query);
        }
    }
}

#[tokio::test]
async fn gaps_and_empty_sites_are_zeros_and_ranges_are_capped() {
    let db = "query_timeseries_gaps_zeros_caps";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;

    let q = [
        ("from", "2023-01-01T00:00:00Z"),
        ("to", "2023-02-01T00:00:00Z"),
        ("metric", "requests"),
    ];
    for site in [SITE, EMPTY_SITE] {
        let answer = server
            .json(&format!("/v1/sites/{site}/timeseries"), &q)
            .await;
        let p = points(&answer);
        assert_eq!(p.len(), 31);
        assert!(p.iter().all(|(_, v)| *v == 0), "{p:?}");
        assert_eq!(p[0].0, "2023-01-01T00:00:00+00:00");
    }

    let too_many = [
        ("from", "2023-01-01T00:00:00Z"),
        ("to", "2024-06-01T00:00:00Z"),
        ("interval", "hour"),
        ("metric", "requests"),
    ];
    let response = server
        .get(&format!("/v1/sites/{SITE}/timeseries"), &too_many)
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["parameter"], "interval");

    let too_long = [
        ("from", "2020-01-01T00:00:00Z"),
        ("to", "2024-06-01T00:00:00Z"),
        ("metric", "requests"),
    ];
    let response = server
        .get(&format!("/v1/sites/{SITE}/timeseries"), &too_long)
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["parameter"], "from");
    assert!(
        body["error"].as_str().unwrap().contains("730 days"),
        "{body}"
    );
}
