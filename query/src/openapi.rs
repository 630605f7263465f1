//! `/openapi.json`, written by hand: the API is small and its words (metric
//! definitions, limits) matter more than generated schema noise.

use serde_json::{Value, json};

use crate::params::{
    Dimension, FILE_TYPES, Interval, MAX_LIMIT, MAX_OFFSET, MAX_POINTS, STATUS_CLASSES,
};

/// Every route of the service, for the test that the document covers them.
pub const ROUTES: &[&str] = &[
    "/v1/sites/{site}/summary",
    "/v1/sites/{site}/timeseries",
    "/v1/sites/{site}/breakdown",
    "/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
];

const METRICS_TEXT: &str = "`requests`: every request matching the filters. `pageviews`: \
    non-bot requests for a `page` answered 2xx or 304. `visitors`: distinct daily visitor \
    hashes (exact count). `bandwidth`: sum of bytes sent.";

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ecstatic query API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Traffic analytics of one site at a time, read from the CDN's access log. \
                 Ranges are [from, to). {METRICS_TEXT} Answers are JSON, or CSV with \
                 `Accept: text/csv`."
            ),
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            },
            "parameters": parameters(),
            "schemas": schemas(),
            "responses": responses(),
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/sites/{site}/summary": analytics_get(
                "Totals of the range and of the previous range of equal length",
                &[],
                "Summary",
                "CSV: a header line, then rows `current` and `previous`.",
            ),
            "/v1/sites/{site}/timeseries": analytics_get(
                "One point per bucket aligned in `tz`, gaps filled with zeros",
                &["metric", "interval"],
                "Timeseries",
                "CSV: `time,value` lines.",
            ),
            "/v1/sites/{site}/breakdown": analytics_get(
                "Top values of a dimension, sorted by the metric (ties by key)",
                &["dimension", "metric", "limit", "offset"],
                "Breakdown",
                "CSV: `key,value` lines; the total is in `X-Total-Count`.",
            ),
            "/openapi.json": plain_get("This document", "application/json", false),
            "/metrics": plain_get(
                "Prometheus metrics: `http_requests_total`, `http_request_duration_seconds` \
                 (by route, method, status) and `query_clickhouse_duration_seconds`",
                "text/plain",
                false,
            ),
            "/healthz": plain_get("The process runs", "text/plain", false),
            "/readyz": plain_get("ClickHouse answers (503 when it does not)", "text/plain", true),
        }
    })
}

fn analytics_get(summary: &str, extra: &[&str], schema: &str, csv: &str) -> Value {
    let common = [
        "site",
        "from",
        "to",
        "tz",
        "bots",
        "path",
        "country",
        "status_class",
    ];
    let refs: Vec<Value> = common
        .iter()
        .chain(&["file_type"])
        .chain(extra)
        .map(|name| json!({ "$ref": format!("#/components/parameters/{name}") }))
        .collect();
    json!({ "get": {
        "summary": summary,
        "parameters": refs,
        "responses": {
            "200": {
                "description": format!("The answer. {csv}"),
                "content": {
                    "application/json": {
                        "schema": { "$ref": format!("#/components/schemas/{schema}") }
                    },
                    "text/csv": { "schema": { "type": "string" } }
                }
            },
            "400": { "$ref": "#/components/responses/BadParameter" },
            "401": { "$ref": "#/components/responses/Unauthorized" },
            "403": { "$ref": "#/components/responses/Forbidden" },
            "503": { "$ref": "#/components/responses/Timeout" }
        }
    }})
}

fn plain_get(summary: &str, media: &str, may_fail: bool) -> Value {
    let mut responses = json!({
        "200": { "description": "OK", "content": { media: { "schema": { "type": "string" } } } }
    });
    if may_fail {
        responses["503"] = json!({ "description": "Not ready" });
    }
    json!({ "get": { "summary": summary, "security": [], "responses": responses } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description,
            "schema": schema })
}

fn parameters() -> Value {
    let metric_names = ["requests", "pageviews", "visitors", "bandwidth"];
    let mut metric = query_param("metric", METRICS_TEXT, json!({ "enum": metric_names }));
    metric["required"] = json!(true);
    let mut dimension = query_param(
        "dimension",
        "Column to group by",
        json!({ "enum": Dimension::NAMES }),
    );
    dimension["required"] = json!(true);
    let time = json!({ "oneOf": [
        { "type": "string", "format": "date-time" },
        { "type": "integer", "minimum": 946_684_800, "description": "epoch seconds" }
    ]});
    json!({
        "site": { "name": "site", "in": "path", "required": true,
                  "description": "Numeric site id; must be in the token's `sites` claim",
                  "schema": { "type": "integer", "minimum": 0 } },
        "from": query_param("from", "Start, inclusive. Default: 7 days before `to`. \
            RFC 3339 or epoch seconds; the range may span at most `--max-range-days` \
            (730 by default).", time.clone()),
        "to": query_param("to", "End, exclusive. Default: now.", time),
        "tz": query_param("tz", "IANA time zone that buckets align in; default `UTC`",
            json!({ "type": "string", "example": "Europe/Berlin" })),
        "bots": query_param("bots", "Which requests count by the bot flag; default `exclude`",
            json!({ "enum": ["exclude", "include", "only"] })),
        "path": query_param("path", "Exact path, or a prefix ending in `*` (`/blog/*`); \
            URL path characters only", json!({ "type": "string", "pattern": "^/" })),
        "country": query_param("country", "Two upper-case letters",
            json!({ "type": "string", "pattern": "^[A-Z]{2}$" })),
        "status_class": query_param("status_class", "Status class",
            json!({ "enum": STATUS_CLASSES })),
        "file_type": query_param("file_type", "File type", json!({ "enum": FILE_TYPES })),
        "metric": metric,
        "interval": query_param("interval", format!("Bucket width (weeks start on Monday); \
            default `day`; at most {MAX_POINTS} points").as_str(),
            json!({ "enum": Interval::NAMES })),
        "dimension": dimension,
        "limit": query_param("limit", "Rows per page, default 10",
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT })),
        "offset": query_param("offset", "Rows to skip, default 0",
            json!({ "type": "integer", "minimum": 0, "maximum": MAX_OFFSET })),
    })
}

fn schemas() -> Value {
    let ratio = |text: &str| {
        json!({ "type": "number", "minimum": 0, "maximum": 1,
                                      "description": text })
    };
    let count = json!({ "type": "integer", "minimum": 0 });
    json!({
        "Totals": {
            "type": "object",
            "properties": {
                "requests": count, "pageviews": count, "visitors": count,
                "bandwidth": { "type": "integer", "minimum": 0, "description": "bytes sent" },
                "cache_hit_ratio": ratio("requests with cache status `HIT` / requests"),
                "share_4xx": ratio("requests answered 400-499 / requests"),
                "share_5xx": ratio("requests answered 500-599 / requests"),
                "bot_share": ratio("bot requests / all requests matching the other filters \
                    (whatever `bots` says)"),
            }
        },
        "Summary": {
            "type": "object",
            "required": ["current", "previous"],
            "properties": {
                "current": { "$ref": "#/components/schemas/Totals" },
                "previous": { "$ref": "#/components/schemas/Totals" }
            }
        },
        "Timeseries": {
            "type": "object",
            "properties": { "points": { "type": "array", "items": {
                "type": "object",
                "properties": {
                    "time": { "type": "string", "format": "date-time",
                              "description": "bucket start, RFC 3339 with the zone's offset" },
                    "value": count
                }
            }}}
        },
        "Breakdown": {
            "type": "object",
            "properties": {
                "total": { "type": "integer", "description": "distinct keys in all, for paging" },
                "rows": { "type": "array", "items": {
                    "type": "object",
                    "properties": { "key": { "type": "string" }, "value": count }
                }}
            }
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": { "type": "string" },
                "parameter": { "type": "string", "description": "the parameter at fault (400)" }
            }
        }
    })
}

fn responses() -> Value {
    let error = |text: &str| {
        json!({ "description": text, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
    };
    json!({
        "BadParameter": error("A parameter is missing, unknown or not allowed; `parameter` \
            names it"),
        "Unauthorized": error("No token, or a token that is expired or not validly signed"),
        "Forbidden": error("The token does not name this site (also for sites that do not \
            exist)"),
        "Timeout": error("The request took longer than `--request-timeout-secs`"),
    })
}
