//! The JSON format: one object per message.
//!
//! Keys are bunny's (`PullZoneId`, `Timestamp`, …); unknown keys are
//! ignored, as are `BodyBytesSent`, `HeaderRange`, `GzipRatio` and the other
//! fields nothing stores. Required: `PullZoneId`, `Timestamp`, `Status`,
//! `BytesSent`, `Host` and `PathAndQuery`; every other field may be absent or
//! `null` and then reads as empty. `Cached` gives the cache status (`true` is
//! `HIT`, `false` is `MISS`), `ServerZone` the edge location, and `Scheme`
//! (or, without it, `IsSSL`) the URL's scheme.
//!
//! Strings borrow from the body unless they hold escapes. Numbers must be
//! unsigned integers in `u64` range; anything else (a sign, a fraction,
//! overflow) is rejected naming the key.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize as DeriveDeserialize;
use serde::de::{Deserialize, Deserializer, Visitor};
use serde_json::Number;

use crate::record::{self, RawAccess};
use crate::reject::{Reason, Rejection};

/// The keys we read; the rest are skipped by serde.
#[derive(DeriveDeserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonAccess<'a> {
    pull_zone_id: Option<Number>,
    timestamp: Option<Number>,
    status: Option<Number>,
    bytes_sent: Option<Number>,
    cached: Option<bool>,
    #[serde(rename = "IsSSL")]
    is_ssl: Option<bool>,
    #[serde(borrow)]
    scheme: Option<Text<'a>>,
    #[serde(borrow)]
    host: Option<Text<'a>>,
    #[serde(borrow)]
    path_and_query: Option<Text<'a>>,
    #[serde(borrow)]
    remote_ip: Option<Text<'a>>,
    #[serde(borrow)]
    referer: Option<Text<'a>>,
    #[serde(borrow)]
    server_zone: Option<Text<'a>>,
    #[serde(borrow)]
    user_agent: Option<Text<'a>>,
    #[serde(borrow)]
    request_id: Option<Text<'a>>,
    #[serde(borrow)]
    country: Option<Text<'a>>,
}

/// A JSON string that borrows from the input when it holds no escapes.
///
/// serde's own `Option<Cow<str>>` always copies (serde-rs/serde#1497), hence
/// this small visitor.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Parses one JSON body.
pub fn parse_json(body: &str) -> Result<RawAccess<'_>, Rejection> {
    let access: JsonAccess<'_> = serde_json::from_str(body)
        .map_err(|err| Rejection::new(Reason::MalformedJson).with_detail(err.to_string()))?;

    let host = required_text(access.host, "Host")?;
    let path_and_query = required_text(access.path_and_query, "PathAndQuery")?;
    let scheme = match (optional_text(access.scheme), access.is_ssl) {
        (scheme, _) if !scheme.is_empty() => scheme,
        (_, Some(true)) => Cow::Borrowed("https"),
        (_, Some(false)) => Cow::Borrowed("http"),
        (scheme, None) => scheme,
    };
    let cache_status = match access.cached {
        Some(true) => "HIT",
        Some(false) => "MISS",
        None => "",
    };
    let remote_ip = optional_text(access.remote_ip);

    let status = record::check_status(required_u64(access.status, "Status")?)?;
    let timestamp_ms = required_u64(access.timestamp, "Timestamp")?;
    let bytes_sent = required_u64(access.bytes_sent, "BytesSent")?;
    let pull_zone_id = required_u64(access.pull_zone_id, "PullZoneId")?;
    let remote_ip = record::parse_ip(&remote_ip)?;
    record::check_ranges(timestamp_ms, pull_zone_id)?;
    Ok(RawAccess {
        cache_status: Cow::Borrowed(cache_status),
        status,
        timestamp_ms,
        bytes_sent,
        pull_zone_id,
        remote_ip,
        referer: optional_text(access.referer),
        scheme,
        host,
        path_and_query,
        edge_location: optional_text(access.server_zone),
        user_agent: optional_text(access.user_agent),
        request_id: optional_text(access.request_id),
        country: optional_text(access.country),
    })
}

fn required_u64(value: Option<Number>, key: &'static str) -> Result<u64, Rejection> {
    let value = value.ok_or_else(|| Rejection::field(Reason::MissingField, key))?;
    value.as_u64().ok_or_else(|| {
        Rejection::field(Reason::BadNumber, key)
            .with_detail(format!("`{value}` is not an unsigned 64-bit integer"))
    })
}

fn required_text<'a>(
    value: Option<Text<'a>>,
    key: &'static str,
) -> Result<Cow<'a, str>, Rejection> {
    match value {
        Some(Text(text)) if !text.is_empty() || key == "PathAndQuery" => Ok(text),
        _ => Err(Rejection::field(Reason::MissingField, key)),
    }
}

/// Absent, `null` and `-` read as empty.
fn optional_text(value: Option<Text<'_>>) -> Cow<'_, str> {
    match value {
        Some(Text(text)) if text != "-" => text,
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"PullZoneId":390,"Timestamp":1733318055123,"Status":200,
        "BytesSent":412,"Host":"blog.example.com","PathAndQuery":"/a?b","Scheme":"https",
        "Cached":true,"RemoteIp":"203.0.113.0","ServerZone":"FR","UserAgent":"x\"y",
        "RequestId":"id","Country":"DE","Extra":{"a":["}",null]}}"#;

    #[test]
    fn borrows_unescaped_strings() {
        let r = parse_json(BODY).unwrap();
        assert!(matches!(r.host, Cow::Borrowed("blog.example.com")));
        assert!(matches!(r.user_agent, Cow::Owned(ref ua) if ua == "x\"y"));
        assert_eq!(r.url(), "https://blog.example.com/a?b");
        assert_eq!((&*r.cache_status, &*r.edge_location), ("HIT", "FR"));
    }

    #[test]
    fn missing_and_bad_numbers_name_the_key() {
        let err = parse_json(&BODY.replace(r#""Status":200,"#, "")).unwrap_err();
        assert_eq!(
            (err.reason, err.field),
            (Reason::MissingField, Some("Status"))
        );
        let err = parse_json(&BODY.replace("412", "-1")).unwrap_err();
        assert_eq!(
            (err.reason, err.field),
            (Reason::BadNumber, Some("BytesSent"))
        );
        let err = parse_json(&BODY.replace("412", "18446744073709551616")).unwrap_err();
        assert_eq!(
            (err.reason, err.field),
            (Reason::BadNumber, Some("BytesSent"))
        );
        let err = parse_json(&BODY[..BODY.len() - 10]).unwrap_err();
        assert_eq!(err.reason, Reason::MalformedJson);
    }
}
