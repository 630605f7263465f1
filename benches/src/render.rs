//! Writing accesses the way bunny.net sends them: body, syslog header, frame.

use std::io::Write;

use crate::access::Access;

/// The body format of a pull zone's log forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFormat {
    /// 12 `|`-separated fields, `-` for empty.
    Pipe,
    /// One JSON object with bunny.net's field names.
    Json,
}

/// How messages are delimited on a TCP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Each message ends with a line feed (RFC 6587 non-transparent framing).
    Lf,
    /// Each message is preceded by its length in bytes and a space (RFC 6587
    /// octet counting).
    Octet,
}

/// The UTF-8 byte order mark bunny.net puts before the body (RFC 5424 `BOM`).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Syslog priority 134: facility local0 (16 × 8) + severity informational (6).
const HEADER_PREFIX: &[u8] = b"<134>1 ";

/// Writes the pipe-format body: `cache|status|ts|bytes|zone|ip|referer|url|
/// edge|agent|request-id|country`, with `-` for each empty field.
pub fn write_pipe_body(access: &Access<'_>, out: &mut Vec<u8>) {
    let a = access;
    write!(
        out,
        "{}|{}|{}|{}|{}|{}|",
        or_dash(a.cache_status),
        a.status,
        a.timestamp_ms,
        a.bytes_sent,
        a.pull_zone_id,
        a.remote_ip,
    )
    .expect("writing to a Vec cannot fail");
    out.extend_from_slice(or_dash(a.referer).as_bytes());
    out.push(b'|');
    write_url(a, out);
    out.push(b'|');
    for field in [a.edge_location, a.user_agent] {
        out.extend_from_slice(or_dash(field).as_bytes());
        out.push(b'|');
    }
    out.extend_from_slice(&a.request_id.to_hex());
    out.push(b'|');
    out.extend_from_slice(or_dash(a.country).as_bytes());
}

/// The full URL of the pipe format: `scheme://host/path?query`.
pub fn write_url(access: &Access<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(access.scheme.as_bytes());
    out.extend_from_slice(b"://");
    out.extend_from_slice(access.host.as_bytes());
    out.extend_from_slice(access.path_and_query.as_bytes());
}

fn or_dash(field: &str) -> &str {
    if field.is_empty() { "-" } else { field }
}

/// Writes the JSON-format body, fields in the order bunny.net sends them.
///
/// With `escape_solidus`, every `/` inside a string is written `\/` (valid
/// JSON that some encoders produce), which forces a parser down its escape
/// path: benches use it to measure that path.
pub fn write_json_body(access: &Access<'_>, escape_solidus: bool, out: &mut Vec<u8>) {
    let a = access;
    let text = |out: &mut Vec<u8>, key: &str, value: &str| {
        out.extend_from_slice(key.as_bytes());
        write_json_string(value, escape_solidus, out);
    };
    write!(
        out,
        "{{\"ServerId\":{},\"IsValid\":true,\"PullZoneId\":{}",
        a.server_id, a.pull_zone_id
    )
    .expect("writing to a Vec cannot fail");
    write!(out, ",\"IsSSL\":{}", a.scheme == "https").expect("writing to a Vec cannot fail");
    text(out, ",\"Host\":", a.host);
    text(out, ",\"Protocol\":", a.protocol);
    text(out, ",\"Scheme\":", a.scheme);
    text(out, ",\"UserAgent\":", a.user_agent);
    out.extend_from_slice(b",\"RequestId\":\"");
    out.extend_from_slice(&a.request_id.to_hex());
    out.push(b'"');
    text(out, ",\"HeaderRange\":", a.header_range);
    text(out, ",\"Country\":", a.country);
    text(out, ",\"PathAndQuery\":", a.path_and_query);
    text(out, ",\"ServerZone\":", a.edge_location);
    write!(
        out,
        ",\"Status\":{},\"BytesSent\":{},\"BodyBytesSent\":{},\"Timestamp\":{},\
         \"GzipRatio\":{:.1},\"Cached\":{}",
        a.status,
        a.bytes_sent,
        a.body_bytes_sent,
        a.timestamp_ms,
        gzip_ratio(a),
        a.cached(),
    )
    .expect("writing to a Vec cannot fail");
    let ip = a.remote_ip;
    write!(out, ",\"RemoteIp\":\"{ip}\"").expect("writing to a Vec cannot fail");
    text(out, ",\"Referer\":", a.referer);
    out.push(b'}');
}

/// bunny.net reports a compression ratio only for compressible bodies; the
/// generator's text assets go out compressed about 3 : 1.
fn gzip_ratio(access: &Access<'_>) -> f64 {
    let path = access.path_and_query;
    let text = [".html", ".css", ".js", ".json", ".svg", ".xml"]
        .iter()
        .any(|ext| path.split('?').next().unwrap_or("").ends_with(ext));
    if text && access.status == 200 {
        3.0
    } else {
        0.0
    }
}

/// Writes `value` as a JSON string. Hand-written rather than through
/// `serde_json` because it also offers the optional `\/` escape.
pub fn write_json_string(value: &str, escape_solidus: bool, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'/' if escape_solidus => b"\\/",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 => {
                out.extend_from_slice(&bytes[start..i]);
                write!(out, "\\u{byte:04x}").expect("writing to a Vec cannot fail");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes the RFC 5424 header bunny.net sends, `<134>1 TIMESTAMP HOST bunnycdn
/// - - - `, followed by the UTF-8 BOM that announces the body.
pub fn write_syslog_header(sent_ms: i64, hostname: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(HEADER_PREFIX);
    write_rfc3339_ms(sent_ms, out);
    out.push(b' ');
    out.extend_from_slice(hostname.as_bytes());
    out.extend_from_slice(b" bunnycdn - - - ");
    out.extend_from_slice(BOM);
}

/// Writes a complete syslog message (header, BOM, body) for one access. The
/// header's host is the edge server's name, and its time is when the edge
/// forwarded the line: `forward_delay_ms` after the access.
pub fn write_message(
    access: &Access<'_>,
    format: BodyFormat,
    escape_solidus: bool,
    forward_delay_ms: i64,
    out: &mut Vec<u8>,
) {
    let mut host = [0u8; 32];
    let host = edge_hostname(access.server_id, &mut host);
    write_syslog_header(access.timestamp_ms + forward_delay_ms, host, out);
    match format {
        BodyFormat::Pipe => write_pipe_body(access, out),
        BodyFormat::Json => write_json_body(access, escape_solidus, out),
    }
}

fn edge_hostname(server_id: u32, buf: &mut [u8; 32]) -> &str {
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    write!(cursor, "edge-{server_id}.b-cdn.net").expect("32 bytes hold any edge hostname");
    let len = usize::try_from(cursor.position()).expect("position is at most 32");
    std::str::from_utf8(&buf[..len]).expect("the hostname is ASCII")
}

/// Appends `message` to `out`, framed.
pub fn write_frame(message: &[u8], framing: Framing, out: &mut Vec<u8>) {
    match framing {
        Framing::Lf => {
            out.extend_from_slice(message);
            out.push(b'\n');
        }
        Framing::Octet => {
            write!(out, "{} ", message.len()).expect("writing to a Vec cannot fail");
            out.extend_from_slice(message);
        }
    }
}

/// Frames the message that `out[start..]` holds, in place: appends the LF, or
/// moves the message right to put its length and a space before it.
pub fn frame_in_place(out: &mut Vec<u8>, start: usize, framing: Framing) {
    match framing {
        Framing::Lf => out.push(b'\n'),
        Framing::Octet => {
            let len = out.len() - start;
            let mut prefix = [0u8; 24];
            let mut cursor = std::io::Cursor::new(&mut prefix[..]);
            write!(cursor, "{len} ").expect("24 bytes hold any length");
            let prefix_len = usize::try_from(cursor.position()).expect("at most 24");
            out.extend_from_slice(&prefix[..prefix_len]);
            out.copy_within(start..start + len, start + prefix_len);
            out[start..start + prefix_len].copy_from_slice(&prefix[..prefix_len]);
        }
    }
}

/// Writes `ms` (milliseconds since the epoch, UTC) as RFC 3339 with three
/// fraction digits, `2024-12-04T13:14:15.123Z`. By hand rather than through
/// `jiff` so that the generator's hot loop neither allocates nor formats
/// through `fmt`; a test checks it against `jiff`.
pub fn write_rfc3339_ms(ms: i64, out: &mut Vec<u8>) {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);

    let (secs, millis) = (ms_of_day / 1000, ms_of_day % 1000);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
    )
    .expect("writing to a Vec cannot fail");
}

/// Year, month and day of a count of days since 1970-01-01 in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::RequestId;
    use proptest::prelude::*;

    fn sample() -> Access<'static> {
        Access {
            cache_status: "HIT",
            status: 200,
            timestamp_ms: 1_733_318_055_123,
            bytes_sent: 412,
            body_bytes_sent: 112,
            pull_zone_id: 390,
            remote_ip: "203.0.113.0".parse().unwrap(),
            referer: "",
            scheme: "https",
            host: "blog.example.com",
            path_and_query: "/",
            protocol: "HTTP/2",
            edge_location: "FR",
            server_id: 0,
            user_agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            request_id: RequestId(0x0f6b5c3e2a914d7e8b1c2d3e4f5a6b7c),
            country: "DE",
            header_range: "",
        }
    }

    /// The first line of `../shared/data/bunny/forward-pipe.syslog`, which
    /// the sample access reproduces byte for byte.
    #[test]
    fn pipe_message_matches_bunny_sample() {
        let mut out = Vec::new();
        write_message(&sample(), BodyFormat::Pipe, false, -123, &mut out);
        let expected = "<134>1 2024-12-04T13:14:15.000Z edge-0.b-cdn.net bunnycdn - - - \u{feff}\
            HIT|200|1733318055123|412|390|203.0.113.0|-|https://blog.example.com/|FR|\
            Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
            Chrome/131.0.0.0 Safari/537.36|0f6b5c3e2a914d7e8b1c2d3e4f5a6b7c|DE";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn json_body_matches_bunny_sample() {
        let mut out = Vec::new();
        write_json_body(&sample(), false, &mut out);
        let ours: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let theirs = serde_json::json!({
            "ServerId": 0, "IsValid": true, "PullZoneId": 390, "IsSSL": true,
            "Host": "blog.example.com", "Protocol": "HTTP/2", "Scheme": "https",
            "UserAgent": sample().user_agent,
            "RequestId": "0f6b5c3e2a914d7e8b1c2d3e4f5a6b7c", "HeaderRange": "", "Country": "DE",
            "PathAndQuery": "/", "ServerZone": "FR", "Status": 200, "BytesSent": 412,
            "BodyBytesSent": 112, "Timestamp": 1_733_318_055_123u64, "GzipRatio": 0.0,
            "Cached": true, "RemoteIp": "203.0.113.0", "Referer": "",
        });
        assert_eq!(ours, theirs);
    }

    #[test]
    fn empty_fields_are_dashes() {
        let access = Access {
            cache_status: "",
            user_agent: "",
            country: "",
            ..sample()
        };
        let mut out = Vec::new();
        write_pipe_body(&access, &mut out);
        let text = String::from_utf8(out).unwrap();
        let fields: Vec<&str> = text.split('|').collect();
        assert_eq!(fields.len(), 12);
        for index in [0, 6, 9, 11] {
            assert_eq!(fields[index], "-", "field {index} of {text}");
        }
    }

    #[test]
    fn octet_frame_counts_bytes_not_chars() {
        let mut out = Vec::new();
        write_frame("é|x".as_bytes(), Framing::Octet, &mut out);
        assert_eq!(out, b"4 \xc3\xa9|x");
        out.clear();
        write_frame(b"abc", Framing::Lf, &mut out);
        assert_eq!(out, b"abc\n");
    }

    #[test]
    fn framing_in_place_equals_framing_a_copy() {
        for framing in [Framing::Lf, Framing::Octet] {
            let mut copied = b"prefix".to_vec();
            write_frame("héllo wörld".as_bytes(), framing, &mut copied);
            let mut in_place = b"prefix".to_vec();
            in_place.extend_from_slice("héllo wörld".as_bytes());
            frame_in_place(&mut in_place, 6, framing);
            assert_eq!(in_place, copied);
        }
    }

    #[test]
    fn solidus_escape_is_valid_json() {
        let mut out = Vec::new();
        write_json_string("a/b\"c\\d\u{1}e\n", true, &mut out);
        assert_eq!(out, br#""a\/b\"c\\d\u0001e\n""#);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a/b\"c\\d\u{1}e\n");
    }

    proptest! {
        #[test]
        fn rfc3339_agrees_with_jiff(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            let mut out = Vec::new();
            write_rfc3339_ms(ms, &mut out);
            let ours = String::from_utf8(out).unwrap();
            let jiff = jiff::Timestamp::from_millisecond(ms).unwrap();
            prop_assert_eq!(ours.parse::<jiff::Timestamp>().unwrap(), jiff);
            prop_assert_eq!(ours.len(), 24);
        }

        #[test]
        fn json_strings_round_trip(value in any::<String>(), solidus in any::<bool>()) {
            let mut out = Vec::new();
            write_json_string(&value, solidus, &mut out);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, value);
        }
    }
}
