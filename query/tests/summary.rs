//! Summaries and CSV answers against the real ClickHouse, checked against
//! plain Rust over the seeded rows.

mod common;

use common::*;
use ecstatic_store::AccessRow;
use serde_json::Value;

const FROM: &str = "2024-03-01T00:00:00Z";
const TO: &str = "2024-04-01T00:00:00Z";
/// `FROM` minus the length of the range (31 days).
const PREVIOUS_FROM: &str = "2024-01-30T00:00:00Z";

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The totals the README defines, over rows matching `other` (every filter
/// but `bots`) and `bots`.
fn totals(rows: &[&AccessRow], bots: &str) -> Value {
    let kept: Vec<&AccessRow> = rows
        .iter()
        .copied()
        .filter(|r| match bots {
            "exclude" => r.is_bot == 0,
            "only" => r.is_bot == 1,
            _ => true,
        })
        .collect();
    let count = |f: fn(&AccessRow) -> bool| kept.iter().filter(|r| f(r)).count();
    serde_json::json!({
        "requests": kept.len(),
        "pageviews": measure("pageviews", kept.iter().copied()),
        "visitors": measure("visitors", kept.iter().copied()),
        "bandwidth": measure("bandwidth", kept.iter().copied()),
        "cache_hit_ratio": ratio(count(|r| r.cache_status == "HIT"), kept.len()),
        "share_4xx": ratio(count(|r| (400..500).contains(&r.status)), kept.len()),
        "share_5xx": ratio(count(|r| (500..600).contains(&r.status)), kept.len()),
        "bot_share": ratio(rows.iter().filter(|r| r.is_bot == 1).count(), rows.len()),
    })
}

fn assert_close(actual: &Value, expected: &Value, context: &str) {
    let (a, e) = (actual.as_object().unwrap(), expected.as_object().unwrap());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        e.keys().collect::<Vec<_>>(),
        "{context}"
    );
    for (name, want) in e {
        let got = &a[name];
        if want.is_u64() {
            assert_eq!(got, want, "{name} of {context}");
        } else {
            let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
            assert!((g - w).abs() < 1e-9, "{name} of {context}: {g} != {w}");
        }
    }
}

#[tokio::test]
async fn totals_of_this_and_the_previous_range_with_every_filter() {
    let db = "query_summary_totals_every_filter";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;

    type Other = fn(&AccessRow) -> bool;
    let others: [(&[(&str, &str)], Other); 5] = [
        (&[], |_| true),
        (&[("path", "/blog/*")], |r| r.path.starts_with("/blog/")),
        (&[("path", "/")], |r| r.path == "/"),
        (&[("country", "IN"), ("file_type", "page")], |r| {
            r.country == "IN" && r.file_type == "page"
        }),
        (&[("status_class", "5xx")], |r| r.status_class == "5xx"),
    ];
    let in_range = |from: &str, to: &str, other: Other| -> Vec<&AccessRow> {
        let (from, to) = (at(from), at(to));
        rows.iter()
            .filter(|r| r.site_id == SITE && (from..to).contains(&i64::from(r.time)) && other(r))
            .collect()
    };

    for (query, other) in others {
        for bots in ["exclude", "include", "only"] {
            let mut q = vec![("from", FROM), ("to", TO), ("bots", bots)];
            q.extend(query.iter().copied());
            let answer = server.json(&format!("/v1/sites/{SITE}/summary"), &q).await;

            let context = format!("bots={bots} {query:?}");
            let current = totals(&in_range(FROM, TO, other), bots);
            let previous = totals(&in_range(PREVIOUS_FROM, FROM, other), bots);
            assert!(current["requests"].as_u64() > Some(0), "{context}: no data");
            assert_close(&answer["current"], &current, &format!("current, {context}"));
            assert_close(
                &answer["previous"],
                &previous,
                &format!("previous, {context}"),
            );
        }
    }
}

#[tokio::test]
async fn a_site_without_data_gets_zeros() {
    let db = "query_summary_site_without_data";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;

    let answer = server
        .json(&format!("/v1/sites/{EMPTY_SITE}/summary"), &[])
        .await;
    let zeros = serde_json::json!({
        "requests": 0, "pageviews": 0, "visitors": 0, "bandwidth": 0,
        "cache_hit_ratio": 0.0, "share_4xx": 0.0, "share_5xx": 0.0, "bot_share": 0.0,
    });
    assert_eq!(
        answer,
        serde_json::json!({ "current": zeros, "previous": zeros })
    );
}

#[tokio::test]
async fn csv_when_asked_for() {
    let db = "query_summary_csv_when_asked";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;
    let csv = |path: String, query: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let response = server
                .http
                .get(server.url(&path))
                .query(&query)
                .bearer_auth(token(&[SITE]))
                .header("accept", "text/csv")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(kind.starts_with("text/csv"), "{kind}");
            let total = response
                .headers()
                .get("x-total-count")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.text().await.unwrap(), total)
        }
    };
    let range = vec![("from", FROM), ("to", TO)];

    let summary_path = format!("/v1/sites/{SITE}/summary");
    let json = server.json(&summary_path, &range).await;
    let (text, _) = csv(summary_path, range.clone()).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        "period,requests,pageviews,visitors,bandwidth,cache_hit_ratio,share_4xx,share_5xx,bot_share"
    );
    let current: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(current[0], "current");
    assert_eq!(current[1], json["current"]["requests"].to_string());
    assert_eq!(current[4], json["current"]["bandwidth"].to_string());
    let ratio: f64 = current[5].parse().unwrap();
    assert!((ratio - json["current"]["cache_hit_ratio"].as_f64().unwrap()).abs() < 1e-12);
    assert!(lines[2].starts_with("previous,"));

    let series_path = format!("/v1/sites/{SITE}/timeseries");
    let mut q = range.clone();
    q.push(("metric", "pageviews"));
    let json = server.json(&series_path, &q).await;
    let (text, _) = csv(series_path, q).await;
    let mut want = String::from("time,value\n");
    for p in json["points"].as_array().unwrap() {
        want.push_str(&format!("{},{}\n", p["time"].as_str().unwrap(), p["value"]));
    }
    assert_eq!(text, want);

    // Keys with a comma or a quote come back quoted as RFC 4180 says.
    let breakdown_path = format!("/v1/sites/{SITE}/breakdown");
    let mut q = range.clone();
    q.extend([
        ("dimension", "path"),
        ("metric", "requests"),
        ("limit", "100"),
    ]);
    let json = server.json(&breakdown_path, &q).await;
    let (text, total) = csv(breakdown_path, q).await;
    assert_eq!(total.as_deref(), Some(json["total"].to_string().as_str()));
    let mut want = String::from("key,value\n");
    for (key, value) in answer_rows(&json) {
        let key = if key.contains(',') {
            format!("\"{key}\"")
        } else {
            key
        };
        want.push_str(&format!("{key},{value}\n"));
    }
    assert!(want.contains("\"/blog/a,b\","), "{want}");
    assert_eq!(text, want);
}
