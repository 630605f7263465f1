//! Property tests: the decoder agrees with the reference splitter on any
//! bytes and any reads; nothing panics on any input; generated records
//! rendered in either body format, behind any header, in either framing,
//! parse back to themselves.

mod common;

use std::borrow::Cow;
use std::net::IpAddr;

use common::{decode_reads, reference_frames};
use ecstatic_ingest::record::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use ecstatic_ingest::syslog::{Header, split_frame};
use ecstatic_ingest::{BodyFormat, Frame, RawAccess, parse_message};
use proptest::prelude::*;
use serde_json::json;

/// Bytes weighted toward what matters to framing and headers.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"0123456789 \n\r\0<>|{}-".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoder_agrees_with_reference(
        input in stream_bytes(),
        max in 0usize..40,
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut reads = Vec::new();
        let mut from = 0;
        for at in points {
            reads.push(&input[from..at]);
            from = at;
        }
        reads.push(&input[from..]);
        let (frames, err) = decode_reads(&reads, max);
        let (reference, truncated) = reference_frames(&input, max);
        let expected: Vec<Frame> = reference.into_iter().map(|r| r.frame).collect();
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(err.is_some(), truncated);
    }

    #[test]
    fn parsers_never_panic(input in stream_bytes(), format in 0u8..3) {
        let format = [BodyFormat::Auto, BodyFormat::Pipe, BodyFormat::Json][usize::from(format)];
        let _ = parse_message(&input, format);
        let mut frame = b"<134>1 - h a - - - \xEF\xBB\xBF".to_vec();
        frame.extend_from_slice(&input);
        let _ = parse_message(&frame, format);
    }

    #[test]
    fn structured_data_with_any_escaped_values_is_skipped_exactly(
        values in prop::collection::vec("[ -~]{0,12}", 0..4),
        elements in 1usize..3,
        body in "[A-Z]{1,5}\\|[ -~]{0,20}",
    ) {
        let params: String = values
            .iter()
            .enumerate()
            .map(|(n, v)| format!(" p{n}=\"{}\"", escape_sd(v)))
            .collect();
        let sd = format!("[id@32473{params}]").repeat(elements);
        let frame = format!("<165>1 2025-12-04T10:40:00.1Z host app 12 ID47 {sd} {body}");
        let (header, got) = split_frame(frame.as_bytes())
            .map_err(|err| TestCaseError::fail(format!("{err}: {frame}")))?;
        prop_assert_eq!(header, Header::Rfc5424);
        prop_assert_eq!(got, body.as_bytes());
    }

    #[test]
    fn records_round_trip(
        record in raw_access(),
        json_body in any::<bool>(),
        header in 0u8..3,
        octet_framing in any::<bool>(),
    ) {
        let body = if json_body { render_json(&record) } else { render_pipe(&record) };
        let message = match header {
            0 => format!("<134>1 2024-12-04T13:14:15.000Z edge-0 bunnycdn - - - \u{feff}{body}"),
            1 => format!("<165>Dec  4 10:40:00 edge evntslog: {body}"),
            _ => body,
        };
        let stream = if octet_framing {
            format!("{} {message}", message.len())
        } else {
            format!("{message}\n")
        };
        let frames = common::decode_all(stream.as_bytes(), 1 << 20);
        prop_assert_eq!(frames.len(), 1);
        let Frame::Message(frame) = &frames[0] else {
            return Err(TestCaseError::fail("oversize"));
        };
        let parsed = parse_message(frame, BodyFormat::Auto)
            .map_err(|err| TestCaseError::fail(format!("{err} in {message:?}")))?;
        prop_assert_eq!(parsed, record);
    }
}

/// Records within each format's documented limits: edge codes of the edge
/// shape, URLs without an edge-shaped `|CODE|`, referers without `|`, and
/// no leading or trailing whitespace where the format trims it.
fn raw_access() -> impl Strategy<Value = RawAccess<'static>> {
    let text = |re: &'static str| re.prop_map(Cow::Owned);
    (
        (
            prop::sample::select(vec!["", "HIT", "MISS"]),
            100u16..=999,
            MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS,
            any::<u64>(),
            1u64..,
            prop::option::of(any::<IpAddr>()),
        ),
        (
            prop_oneof![
                Just(String::new()),
                "https?://[a-z.]{1,12}/[a-z/?=&\\[\\]]{0,12}"
            ],
            prop::sample::select(vec!["https", "http"]),
            "[a-z0-9.-]{1,20}",
            "(/[a-z/?=&|%._~{}\\[\\] é]{0,30})?",
            "[A-Z0-9]{1,8}",
            "[ -~éÜ😀]{0,40}".prop_filter("`-` means empty", |ua| ua != "-"),
            text("[0-9a-f]{0,32}"),
            prop_oneof![Just(String::new()), "[A-Z]{2}"],
        ),
    )
        .prop_map(|(numbers, texts)| {
            let (cache, status, timestamp_ms, bytes_sent, pull_zone_id, remote_ip) = numbers;
            let (referer, scheme, host, path, edge, agent, request_id, country) = texts;
            RawAccess {
                cache_status: Cow::Borrowed(cache),
                status,
                timestamp_ms,
                bytes_sent,
                pull_zone_id,
                remote_ip,
                referer: Cow::Owned(referer),
                scheme: Cow::Borrowed(scheme),
                host: Cow::Owned(host),
                path_and_query: Cow::Owned(path),
                edge_location: Cow::Owned(edge),
                user_agent: Cow::Owned(agent),
                request_id,
                country: Cow::Owned(country),
            }
        })
}

/// RFC 5424 PARAM-VALUE escaping: `\\`, `\"` and `\]`.
fn escape_sd(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn render_pipe(r: &RawAccess<'_>) -> String {
    let ip = r
        .remote_ip
        .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        dash(&r.cache_status),
        r.status,
        r.timestamp_ms,
        r.bytes_sent,
        r.pull_zone_id,
        ip,
        dash(&r.referer),
        r.url(),
        dash(&r.edge_location),
        dash(&r.user_agent),
        dash(&r.request_id),
        dash(&r.country),
    )
}

fn render_json(r: &RawAccess<'_>) -> String {
    let mut body = json!({
        "PullZoneId": r.pull_zone_id,
        "Timestamp": r.timestamp_ms,
        "Status": r.status,
        "BytesSent": r.bytes_sent,
        "BodyBytesSent": r.bytes_sent / 2,
        "Scheme": r.scheme,
        "Host": r.host,
        "PathAndQuery": r.path_and_query,
        "UserAgent": r.user_agent,
        "Referer": r.referer,
        "RemoteIp": r.remote_ip.map(|ip| ip.to_string()),
        "Country": r.country,
        "ServerZone": r.edge_location,
        "RequestId": r.request_id,
        "IsValid": true,
        "GzipRatio": 0.5,
    });
    if !r.cache_status.is_empty() {
        body["Cached"] = json!(r.cache_status == "HIT");
    }
    body.to_string()
}
