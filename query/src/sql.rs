//! SQL for each question. Text is assembled only from the fixed fragments
//! below, chosen by `match` on the parsed enums; every value from a request
//! travels as a `?` binding, which the `clickhouse` crate escapes.
//!
//! Written for both ClickHouse 18.16 and current releases: no `WITH FILL`, no
//! `toStartOfWeek`, no `{name:Type}` parameters, no `Bool`.

use clickhouse::Client;
use clickhouse::query::Query;

use crate::buckets::Offsets;
use crate::params::{Bots, Common, Dimension, Interval, Metric, PathFilter};

/// A page view: a non-bot request for a page answered 2xx or 304.
pub const PAGEVIEW: &str =
    "(is_bot = 0 AND file_type = 'page' AND ((status >= 200 AND status < 300) OR status = 304))";

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Text(String),
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Value>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: Value) -> &mut Self {
        self.text.push('?');
        self.binds.push(value);
        self
    }

    /// The query, with every value bound.
    pub fn to_query(&self, client: &Client) -> Query {
        let mut query = client.query(&self.text);
        for value in &self.binds {
            query = match value {
                Value::Int(v) => query.bind(*v),
                Value::UInt(v) => query.bind(*v),
                Value::Text(v) => query.bind(v.as_str()),
            };
        }
        query
    }

    /// The text with values inlined by the crate's escaping, for logs of SQL
    /// shapes and for checks against other servers.
    pub fn to_inline(&self) -> String {
        self.to_query(&Client::default()).sql_display().to_string()
    }
}

/// Totals of the range and of the previous range of equal length, one row
/// per range (`current` = 1 for the asked range). The bots filter is applied
/// inside each aggregate so that `bot_share` can look at every request.
pub fn summary(table: &str, site: u64, common: &Common) -> Sql {
    let mut sql = Sql::default();
    let keep = bots_condition(common.filters.bots);
    let from = common.range.from.as_second();
    let previous = from - (common.range.to.as_second() - from);
    sql.push("SELECT toUInt8(time >= toDateTime(")
        .bind(Value::Int(from))
        .push(")) AS current, ");
    sql.push(&format!(
        "countIf({keep}) AS requests, \
         countIf({keep} AND {PAGEVIEW}) AS pageviews, \
         uniqExactIf(visitor, {keep}) AS visitors, \
         sumIf(bytes_sent, {keep}) AS bandwidth, \
         countIf({keep} AND cache_status = 'HIT') AS cache_hits, \
         countIf({keep} AND status >= 400 AND status < 500) AS status_4xx, \
         countIf({keep} AND status >= 500 AND status < 600) AS status_5xx, \
         countIf(is_bot = 1) AS bots, \
         count() AS all_requests FROM {table}"
    ));
    where_clause(&mut sql, site, previous, common, false);
    sql.push(" GROUP BY current");
    sql
}

/// One row `(bucket key, value)` per bucket that has rows; keys as
/// [`crate::buckets::key_of`] describes.
pub fn timeseries(
    table: &str,
    site: u64,
    common: &Common,
    metric: Metric,
    interval: Interval,
    offsets: &Offsets,
) -> Sql {
    let mut sql = Sql::default();
    sql.push("SELECT toInt64(");
    bucket_key(&mut sql, interval, offsets);
    sql.push(&format!(
        ") AS bucket, {} AS value FROM {table}",
        aggregate(metric)
    ));
    where_clause(&mut sql, site, common.range.from.as_second(), common, true);
    metric_condition(&mut sql, metric);
    sql.push(" GROUP BY bucket");
    sql
}

/// One page of `(key, value)` rows, largest value first, ties by key.
pub fn breakdown_rows(
    table: &str,
    site: u64,
    common: &Common,
    dimension: Dimension,
    metric: Metric,
    page: (u64, u64),
) -> Sql {
    let mut sql = Sql::default();
    let key = dimension_expr(dimension);
    sql.push(&format!(
        "SELECT {key} AS key, {} AS value FROM {table}",
        aggregate(metric)
    ));
    where_clause(&mut sql, site, common.range.from.as_second(), common, true);
    metric_condition(&mut sql, metric);
    sql.push(" GROUP BY key ORDER BY value DESC, key ASC LIMIT ");
    sql.bind(Value::UInt(page.1))
        .push(", ")
        .bind(Value::UInt(page.0));
    sql
}

/// How many distinct keys the breakdown has in all.
pub fn breakdown_total(
    table: &str,
    site: u64,
    common: &Common,
    dimension: Dimension,
    metric: Metric,
) -> Sql {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT uniqExact({}) FROM {table}",
        dimension_expr(dimension)
    ));
    where_clause(&mut sql, site, common.range.from.as_second(), common, true);
    metric_condition(&mut sql, metric);
    sql
}

fn aggregate(metric: Metric) -> &'static str {
    match metric {
        Metric::Requests | Metric::Pageviews => "count()",
        Metric::Visitors => "uniqExact(visitor)",
        Metric::Bandwidth => "sum(bytes_sent)",
    }
}

fn metric_condition(sql: &mut Sql, metric: Metric) {
    if metric == Metric::Pageviews {
        sql.push(" AND ").push(PAGEVIEW);
    }
}

fn dimension_expr(dimension: Dimension) -> &'static str {
    // `toString` also turns LowCardinality columns into plain strings, which
    // RowBinary then sends the same way on every server version.
    match dimension {
        Dimension::Path => "path",
        Dimension::ReferrerHost => "referrer_host",
        Dimension::Country => "toString(country)",
        Dimension::Browser => "toString(browser)",
        Dimension::Os => "toString(os)",
        Dimension::Device => "toString(device)",
        Dimension::FileType => "toString(file_type)",
        Dimension::Status => "toString(status)",
        Dimension::StatusClass => "toString(status_class)",
        Dimension::CacheStatus => "toString(cache_status)",
        Dimension::EdgeLocation => "toString(edge_location)",
    }
}

fn bots_condition(bots: Bots) -> &'static str {
    match bots {
        Bots::Exclude => "is_bot = 0",
        Bots::Include => "1 = 1",
        Bots::Only => "is_bot = 1",
    }
}

/// `WHERE` for the site, `[from, to)` and the filters (the bots filter only
/// when `with_bots`).
fn where_clause(sql: &mut Sql, site: u64, from: i64, common: &Common, with_bots: bool) {
    let filters = &common.filters;
    sql.push(" WHERE site_id = ").bind(Value::UInt(site));
    sql.push(" AND time >= toDateTime(").bind(Value::Int(from));
    sql.push(") AND time < toDateTime(")
        .bind(Value::Int(common.range.to.as_second()))
        .push(")");
    if with_bots {
        sql.push(" AND ").push(bots_condition(filters.bots));
    }
    match &filters.path {
        Some(PathFilter::Exact(path)) => {
            sql.push(" AND path = ").bind(Value::Text(path.clone()));
        }
        Some(PathFilter::Prefix(prefix)) => {
            sql.push(" AND startsWith(path, ")
                .bind(Value::Text(prefix.clone()))
                .push(")");
        }
        None => {}
    }
    let equal = [
        ("country", &filters.country),
        ("status_class", &filters.status_class),
        ("file_type", &filters.file_type),
    ];
    for (column, value) in equal {
        if let Some(value) = value {
            sql.push(&format!(" AND {column} = "))
                .bind(Value::Text(value.clone()));
        }
    }
}

/// The bucket key of a row (see [`crate::buckets::key_of`]), from its local
/// time: epoch seconds plus the offset in force at that instant.
fn bucket_key(sql: &mut Sql, interval: Interval, offsets: &Offsets) {
    let local = |sql: &mut Sql| {
        sql.push("(toInt64(toUInt32(time)) + ");
        offset_expr(sql, offsets);
        sql.push(")");
    };
    match interval {
        Interval::Hour => {
            sql.push("intDiv(");
            local(sql);
            sql.push(", 3600) * 3600 - ");
            offset_expr(sql, offsets);
        }
        Interval::Day => {
            sql.push("intDiv(");
            local(sql);
            sql.push(", 86400)");
        }
        // Day 0 (1970-01-01) was a Thursday: +3 makes weeks start on Monday.
        Interval::Week => {
            sql.push("intDiv(intDiv(");
            local(sql);
            sql.push(", 86400) + 3, 7)");
        }
        Interval::Month => {
            sql.push("toYYYYMM(toDateTime(");
            local(sql);
            sql.push("), 'UTC')");
        }
    }
}

/// The UTC offset in seconds in force at the row's `time`.
fn offset_expr(sql: &mut Sql, offsets: &Offsets) {
    if offsets.transitions.is_empty() {
        sql.push("toInt64(")
            .bind(Value::Int(offsets.initial_secs.into()))
            .push(")");
        return;
    }
    // multiIf(time < t1, o0, time < t2, o1, …, oN): a handful of branches at
    // most, since zones change offset a few times a year.
    sql.push("multiIf(");
    let mut before = offsets.initial_secs;
    for &(at, after) in &offsets.transitions {
        sql.push("toUInt32(time) < ")
            .bind(Value::Int(at))
            .push(", toInt64(");
        sql.bind(Value::Int(before.into())).push("), ");
        before = after;
    }
    sql.push("toInt64(")
        .bind(Value::Int(before.into()))
        .push("))");
}

/// Every SQL shape this service sends, with example values inlined: each
/// endpoint under each metric, dimension, interval, bots mode and filter
/// kind, with and without offset changes in the range. `ecstatic-query
/// --print-sql-shapes` prints them for `tests/sql_current.py`, which runs
/// them on a current ClickHouse.
pub fn every_shape(table: &str) -> Vec<String> {
    use crate::buckets;
    use crate::params::{Filters, Range};
    use jiff::tz::TimeZone;

    let year = |tz: &str| Range {
        from: "2024-01-01T00:00:00Z".parse().expect("valid"),
        to: "2024-12-31T00:00:00Z".parse().expect("valid"),
        tz: TimeZone::get(tz).expect("bundled or system zone"),
    };
    let filter_sets = [
        Filters {
            bots: Bots::Exclude,
            path: None,
            country: None,
            status_class: None,
            file_type: None,
        },
        Filters {
            bots: Bots::Include,
            path: Some(PathFilter::Exact("/it's".into())),
            country: Some("DE".into()),
            status_class: Some("2xx".into()),
            file_type: Some("page".into()),
        },
        Filters {
            bots: Bots::Only,
            path: Some(PathFilter::Prefix("/blog/".into())),
            country: None,
            status_class: None,
            file_type: None,
        },
    ];
    let intervals = [
        Interval::Hour,
        Interval::Day,
        Interval::Week,
        Interval::Month,
    ];
    let dimensions = Dimension::NAMES.map(|n| crate::params::parse_dimension(n).expect("listed"));

    let mut out = Vec::new();
    for filters in &filter_sets {
        for tz in ["UTC", "Europe/Berlin"] {
            let common = Common {
                range: year(tz),
                filters: filters.clone(),
            };
            out.push(summary(table, 1, &common));
            let r = &common.range;
            let offsets = buckets::offsets(&r.tz, r.from, r.to);
            for metric in Metric::ALL {
                for interval in intervals {
                    out.push(timeseries(table, 1, &common, metric, interval, &offsets));
                }
            }
        }
        let common = Common {
            range: year("UTC"),
            filters: filters.clone(),
        };
        for metric in Metric::ALL {
            for dimension in dimensions {
                out.push(breakdown_rows(
                    table,
                    1,
                    &common,
                    dimension,
                    metric,
                    (10, 20),
                ));
                out.push(breakdown_total(table, 1, &common, dimension, metric));
            }
        }
    }
    out.iter().map(Sql::to_inline).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Filters, Range};
    use jiff::tz::TimeZone;

    fn common(path: PathFilter) -> Common {
        Common {
            range: Range {
                from: "2024-03-01T00:00:00Z".parse().unwrap(),
                to: "2024-04-01T00:00:00Z".parse().unwrap(),
                tz: TimeZone::get("Europe/Berlin").unwrap(),
            },
            filters: Filters {
                bots: Bots::Exclude,
                path: Some(path),
                country: Some("DE".into()),
                status_class: None,
                file_type: None,
            },
        }
    }

    #[test]
    fn values_travel_as_bindings_not_text() {
        let hostile = "/x' OR 1=1 --";
        let sql = summary("t", 7, &common(PathFilter::Exact(hostile.into())));
        assert!(!sql.text.contains(hostile), "{}", sql.text);
        assert!(sql.binds.contains(&Value::Text(hostile.into())));
        assert_eq!(sql.text.matches('?').count(), sql.binds.len());
        // Inlined by the crate's escaping, the quote cannot end the literal.
        assert!(
            sql.to_inline().contains(r"path = '/x\' OR 1=1 --'"),
            "{}",
            sql.to_inline()
        );
    }

    #[test]
    fn offset_changes_inside_the_range_become_branches() {
        let c = common(PathFilter::Prefix("/blog/".into()));
        let r = &c.range;
        let offsets = crate::buckets::offsets(&r.tz, r.from, r.to);
        let sql = timeseries("t", 7, &c, Metric::Visitors, Interval::Hour, &offsets);
        // Berlin springs forward on 2024-03-31 at 01:00 UTC: one branch, in
        // each of the two places an hour key uses the offset.
        assert_eq!(
            sql.text.matches("toUInt32(time) < ?").count(),
            2,
            "{}",
            sql.text
        );
        let inline = sql.to_inline();
        assert!(
            inline.contains("toUInt32(time) < 1711846800, toInt64(3600)"),
            "{inline}"
        );
        assert!(inline.contains("startsWith(path, '/blog/')"), "{inline}");
    }
}
