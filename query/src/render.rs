//! Answers as JSON (the DESIGN.md shapes) or CSV when the caller sends
//! `Accept: text/csv`.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Whether the caller asked for CSV.
pub fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/csv"))
}

/// Totals of one range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub pageviews: u64,
    pub visitors: u64,
    pub bandwidth: u64,
    pub cache_hit_ratio: f64,
    pub share_4xx: f64,
    pub share_5xx: f64,
    pub bot_share: f64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub current: Totals,
    pub previous: Totals,
}

#[derive(Debug, Serialize)]
pub struct Point {
    /// RFC 3339 with the zone's offset at the bucket start.
    pub time: String,
    pub value: u64,
}

#[derive(Debug, Serialize)]
pub struct Timeseries {
    pub points: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub key: String,
    pub value: u64,
}

#[derive(Debug, Serialize)]
pub struct Breakdown {
    pub total: u64,
    pub rows: Vec<Row>,
}

impl Summary {
    pub fn respond(self, csv: bool) -> Response {
        if !csv {
            return Json(self).into_response();
        }
        let mut out = String::from(
            "period,requests,pageviews,visitors,bandwidth,cache_hit_ratio,share_4xx,\
             share_5xx,bot_share\n",
        );
        for (name, t) in [("current", self.current), ("previous", self.previous)] {
            out.push_str(&format!(
                "{name},{},{},{},{},{},{},{},{}\n",
                t.requests,
                t.pageviews,
                t.visitors,
                t.bandwidth,
                t.cache_hit_ratio,
                t.share_4xx,
                t.share_5xx,
                t.bot_share
            ));
        }
        csv_response(out, None)
    }
}

impl Timeseries {
    pub fn respond(self, csv: bool) -> Response {
        if !csv {
            return Json(self).into_response();
        }
        let mut out = String::from("time,value\n");
        for p in &self.points {
            out.push_str(&format!("{},{}\n", p.time, p.value));
        }
        csv_response(out, None)
    }
}

impl Breakdown {
    pub fn respond(self, csv: bool) -> Response {
        if !csv {
            return Json(self).into_response();
        }
        let mut out = String::from("key,value\n");
        for row in &self.rows {
            out.push_str(&format!("{},{}\n", csv_field(&row.key), row.value));
        }
        csv_response(out, Some(self.total))
    }
}

/// A CSV answer; a breakdown's total goes in `X-Total-Count`.
fn csv_response(body: String, total: Option<u64>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Some(total) = total {
        headers.insert("x-total-count", HeaderValue::from(total));
    }
    response
}

/// One RFC 4180 field. Keys are stored log text (paths, referrer hosts), so
/// a value that a spreadsheet would run as a formula gets a leading `'`.
pub fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_guarded() {
        assert_eq!(csv_field("/plain"), "/plain");
        assert_eq!(csv_field("/a,b"), "\"/a,b\"");
        assert_eq!(csv_field("/say \"hi\""), "\"/say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn accept_header_picks_csv() {
        let mut headers = HeaderMap::new();
        assert!(!wants_csv(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/CSV;q=0.9"));
        assert!(wants_csv(&headers));
    }
}
