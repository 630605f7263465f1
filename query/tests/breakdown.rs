//! Breakdowns against the real ClickHouse, checked against answers computed
//! in plain Rust from the seeded rows.

mod common;

use common::*;
use ecstatic_store::AccessRow;

const FROM: &str = "2024-01-01T00:00:00Z";
const TO: &str = "2025-01-01T00:00:00Z";

fn site_rows(rows: &[AccessRow], keep: fn(&AccessRow) -> bool) -> Vec<&AccessRow> {
    rows.iter()
        .filter(|r| r.site_id == SITE && keep(r))
        .collect()
}

#[tokio::test]
async fn every_metric_by_every_dimension_and_filter() {
    let db = "query_breakdown_every_metric_dimension_filter";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;
    let path = format!("/v1/sites/{SITE}/breakdown");

    for filter in filters() {
        let kept = site_rows(&rows, filter.keep);
        assert!(
            !kept.is_empty(),
            "filter {:?} keeps nothing: widen the dataset",
            filter.query
        );
        for dimension in DIMENSIONS {
            for metric in METRICS {
                let mut query = vec![
                    ("from", FROM),
                    ("to", TO),
                    ("dimension", dimension),
                    ("metric", metric),
                    ("limit", "1000"),
                ];
                query.extend(filter.query.iter().copied());
                let answer = server.json(&path, &query).await;

                let expected = expected_breakdown(&kept, dimension, metric);
                let context = format!("{dimension} by {metric} with {:?}", filter.query);
                assert_eq!(answer_rows(&answer), expected, "{context}");
                assert_eq!(
                    answer["total"].as_u64(),
                    Some(expected.len() as u64),
                    "{context}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pages_join_up_to_the_whole_list() {
    let db = "query_breakdown_pages_join_up";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;
    let path = format!("/v1/sites/{SITE}/breakdown");
    let kept = site_rows(&rows, |r| r.is_bot == 0);
    let expected = expected_breakdown(&kept, "path", "visitors");
    assert!(
        expected.len() > 7,
        "the dataset needs more paths for paging"
    );

    let mut joined = Vec::new();
    for offset in (0..expected.len() + 3).step_by(3) {
        let offset = offset.to_string();
        let query = [
            ("from", FROM),
            ("to", TO),
            ("dimension", "path"),
            ("metric", "visitors"),
            ("limit", "3"),
            ("offset", offset.as_str()),
        ];
        let answer = server.json(&path, &query).await;
        assert_eq!(answer["total"].as_u64(), Some(expected.len() as u64));
        let page = answer_rows(&answer);
        assert!(page.len() <= 3);
        joined.extend(page);
    }
    assert_eq!(joined, expected);

    // The default page is the top 10.
    let query = [
        ("from", FROM),
        ("to", TO),
        ("dimension", "path"),
        ("metric", "visitors"),
    ];
    let answer = server.json(&path, &query).await;
    assert_eq!(answer_rows(&answer), expected[..expected.len().min(10)]);
}

#[tokio::test]
async fn sites_do_not_see_each_other() {
    let db = "query_breakdown_sites_apart";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;

    let other: Vec<&AccessRow> = rows
        .iter()
        .filter(|r| r.site_id == OTHER_SITE && r.is_bot == 0)
        .collect();
    let query = [
        ("from", FROM),
        ("to", TO),
        ("dimension", "country"),
        ("metric", "requests"),
    ];
    let answer = server
        .json(&format!("/v1/sites/{OTHER_SITE}/breakdown"), &query)
        .await;
    assert_eq!(
        answer_rows(&answer),
        expected_breakdown(&other, "country", "requests")
    );

    let empty = server
        .json(&format!("/v1/sites/{EMPTY_SITE}/breakdown"), &query)
        .await;
    assert_eq!(empty, serde_json::json!({ "total": 0, "rows": [] }));
}
