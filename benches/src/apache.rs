//! Rewrites real Apache/nginx combined-format access logs into bunny.net
//! accesses.
//!
//! From each line come the client, the time, the request target and
//! protocol, the status, the size (`-` is 0), the referer and the user agent.
//! The rewriter assigns the rest: the site (by client address, so that one
//! visitor stays on one site), cache status, edge location, country and a
//! unique request id.

use std::borrow::Cow;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::access::Access;
use crate::generate::{COUNTRIES, mix64, pick, pick_edge, request_id, site_host};

/// One line of NCSA combined format, borrowed from the line:
/// `host ident user [time] "request" status bytes "referer" "user-agent"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CombinedLine<'a> {
    /// Client address or host name, as logged.
    pub client: &'a str,
    /// Request time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Request method, such as `GET`.
    pub method: &'a str,
    /// Request target as sent (path and query), possibly with spaces.
    pub target: &'a str,
    /// Protocol, such as `HTTP/1.1`; empty for HTTP/0.9-style requests.
    pub protocol: &'a str,
    /// Response status.
    pub status: u16,
    /// Response size in bytes; `-` in the log is 0.
    pub bytes: u64,
    /// Referer with escapes removed; empty for `-`.
    pub referer: Cow<'a, str>,
    /// User agent with escapes removed; empty for `-`.
    pub user_agent: Cow<'a, str>,
}

/// Why a combined-format line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CombinedError {
    #[error("line ends before the `{0}` field")]
    Missing(&'static str),
    #[error("`{0}` field has no closing quote")]
    Unterminated(&'static str),
    #[error("time `{0}` is not `dd/Mon/yyyy:HH:MM:SS +zzzz`")]
    Time(String),
    #[error("request `{0}` is not `METHOD TARGET [PROTOCOL]`")]
    Request(String),
    #[error("status `{0}` is not a number from 100 to 999")]
    Status(String),
    #[error("size `{0}` is neither a number nor `-`")]
    Bytes(String),
}

impl CombinedError {
    /// A short, fixed label for counting rejections by reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CombinedError::Missing(_) => "missing_field",
            CombinedError::Unterminated(_) => "unterminated_quote",
            CombinedError::Time(_) => "time",
            CombinedError::Request(_) => "request",
            CombinedError::Status(_) => "status",
            CombinedError::Bytes(_) => "bytes",
        }
    }
}

/// Parses one combined-format line (without its line end). Fields after the
/// user agent, as some nginx formats add, are ignored.
pub fn parse_combined(line: &str) -> Result<CombinedLine<'_>, CombinedError> {
    let (client, rest) = word(line, "host")?;
    let (_ident, rest) = word(rest, "ident")?;
    let (_user, rest) = word(rest, "user")?;
    let (time, rest) = bracketed(rest)?;
    let (request, rest) = quoted_raw(rest, "request")?;
    let (status, rest) = word(rest, "status")?;
    let (bytes, rest) = word(rest, "bytes")?;
    let (referer, rest) = quoted(rest, "referer")?;
    let (user_agent, _rest) = quoted(rest, "user-agent")?;

    let (method, target, protocol) = split_request(request)?;
    Ok(CombinedLine {
        client,
        timestamp_ms: parse_time(time)?,
        method,
        target,
        protocol,
        status: parse_status(status)?,
        bytes: parse_bytes(bytes)?,
        referer: dash_empty(referer),
        user_agent: dash_empty(user_agent),
    })
}

/// The next space-delimited word and the rest after its space.
fn word<'a>(input: &'a str, field: &'static str) -> Result<(&'a str, &'a str), CombinedError> {
    let input = input.trim_start_matches(' ');
    if input.is_empty() {
        return Err(CombinedError::Missing(field));
    }
    Ok(input.split_once(' ').unwrap_or((input, "")))
}

fn bracketed(input: &str) -> Result<(&str, &str), CombinedError> {
    let input = input.trim_start_matches(' ');
    let inner = input
        .strip_prefix('[')
        .ok_or(CombinedError::Missing("time"))?;
    let (time, rest) = inner
        .split_once(']')
        .ok_or(CombinedError::Unterminated("time"))?;
    Ok((time, rest))
}

/// A `"…"` field with Apache's `\"` and `\\` escapes removed (other
/// backslash sequences, such as `\x0b`, are kept as written).
fn quoted<'a>(
    input: &'a str,
    field: &'static str,
) -> Result<(Cow<'a, str>, &'a str), CombinedError> {
    let (raw, rest) = quoted_raw(input, field)?;
    if !raw.contains('\\') {
        return Ok((Cow::Borrowed(raw), rest));
    }
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\'))) => {
                text.push(next);
                chars.next();
            }
            _ => text.push(c),
        }
    }
    Ok((Cow::Owned(text), rest))
}

/// A `"…"` field as written, escapes included, and the rest after it. The
/// request keeps its escapes: the path is logged as the client sent it.
fn quoted_raw<'a>(
    input: &'a str,
    field: &'static str,
) -> Result<(&'a str, &'a str), CombinedError> {
    let input = input.trim_start_matches(' ');
    let inner = input
        .strip_prefix('"')
        .ok_or(CombinedError::Missing(field))?;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Skip the escaped byte, which may be a quote.
            b'\\' => i += 1,
            b'"' => return Ok((&inner[..i], &inner[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    Err(CombinedError::Unterminated(field))
}

fn split_request(request: &str) -> Result<(&str, &str, &str), CombinedError> {
    let invalid = || CombinedError::Request(request.to_owned());
    let (method, rest) = request.split_once(' ').ok_or_else(invalid)?;
    match rest.rsplit_once(' ') {
        Some((target, protocol)) if protocol.starts_with("HTTP/") => Ok((method, target, protocol)),
        _ if !rest.is_empty() => Ok((method, rest, "")),
        _ => Err(invalid()),
    }
}

fn parse_time(time: &str) -> Result<i64, CombinedError> {
    jiff::fmt::strtime::parse("%d/%b/%Y:%H:%M:%S %z", time)
        .and_then(|parsed| parsed.to_timestamp())
        .map(|timestamp| timestamp.as_millisecond())
        .map_err(|_| CombinedError::Time(time.to_owned()))
}

fn parse_status(status: &str) -> Result<u16, CombinedError> {
    match status.parse::<u16>() {
        Ok(code @ 100..=999) => Ok(code),
        _ => Err(CombinedError::Status(status.to_owned())),
    }
}

fn parse_bytes(bytes: &str) -> Result<u64, CombinedError> {
    if bytes == "-" {
        return Ok(0);
    }
    bytes
        .parse()
        .map_err(|_| CombinedError::Bytes(bytes.to_owned()))
}

fn dash_empty(field: Cow<'_, str>) -> Cow<'_, str> {
    if field == "-" {
        Cow::Borrowed("")
    } else {
        field
    }
}

/// Turns combined-format lines into bunny.net accesses.
#[derive(Debug)]
pub struct Rewriter {
    zone_base: u64,
    hosts: Vec<String>,
    rng: SmallRng,
    id_high: u64,
    rewritten: u64,
    rejected: u64,
    path: String,
    referer: String,
    user_agent: String,
}

impl Rewriter {
    /// A rewriter that spreads clients over `sites` pull zones numbered from
    /// `zone_base`; `seed` drives the cache statuses and edges it assigns.
    ///
    /// # Panics
    /// When `sites` is zero.
    pub fn new(sites: u32, zone_base: u64, seed: u64) -> Rewriter {
        assert!(sites > 0, "sites must be positive");
        Rewriter {
            zone_base,
            hosts: (0..u64::from(sites))
                .map(|i| site_host(zone_base + i))
                .collect(),
            rng: SmallRng::seed_from_u64(seed),
            id_high: mix64(seed ^ 0xa9ac_4e00),
            rewritten: 0,
            rejected: 0,
            path: String::new(),
            referer: String::new(),
            user_agent: String::new(),
        }
    }

    /// Lines rewritten so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Lines rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Rewrites one line; a rejected line is counted and its reason returned.
    pub fn rewrite<'a>(&'a mut self, line: &'a str) -> Result<Access<'a>, CombinedError> {
        let parsed = match parse_combined(line.trim_end_matches(['\r', '\n'])) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.rejected += 1;
                return Err(error);
            }
        };
        self.rewritten += 1;

        let client_hash = hash_str(parsed.client);
        let site = client_hash % self.hosts.len() as u64;
        let mut client_rng = SmallRng::seed_from_u64(client_hash);
        let country = pick(&mut client_rng, COUNTRIES);
        let (edge_location, server_id) = pick_edge(country, &mut client_rng);

        self.path.clear();
        if !parsed.target.starts_with('/') {
            self.path.push('/');
        }
        self.path.push_str(parsed.target);
        self.referer.clear();
        self.referer.push_str(&parsed.referer);
        self.user_agent.clear();
        self.user_agent.push_str(&parsed.user_agent);

        let hit = self.rng.random_bool(0.8);
        Ok(Access {
            cache_status: cache_status(parsed.status, hit),
            status: parsed.status,
            timestamp_ms: parsed.timestamp_ms,
            bytes_sent: parsed.bytes,
            body_bytes_sent: parsed.bytes,
            pull_zone_id: self.zone_base + site,
            remote_ip: anonymise(parsed.client, client_hash),
            referer: &self.referer,
            scheme: "https",
            host: &self.hosts[site as usize],
            path_and_query: &self.path,
            protocol: if parsed.protocol.is_empty() {
                "HTTP/1.0"
            } else {
                parsed.protocol
            },
            edge_location,
            server_id,
            user_agent: &self.user_agent,
            request_id: request_id(self.id_high, self.rewritten),
            country,
            header_range: "",
        })
    }
}

fn cache_status(status: u16, hit: bool) -> &'static str {
    match status {
        304 => "HIT",
        200..300 if hit => "HIT",
        _ => "MISS",
    }
}

/// The client as bunny.net logs it: IPv4 cut to its /24, IPv6 to its /64; a
/// host name (logged when `HostnameLookups` is on) becomes a stable private
/// address.
fn anonymise(client: &str, client_hash: u64) -> IpAddr {
    match client.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        Ok(IpAddr::V6(v6)) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(bits.into())
        }
        Err(_) => {
            let [a, b, ..] = client_hash.to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(10, a, b, 0))
        }
    }
}

fn hash_str(text: &str) -> u64 {
    // FNV-1a folded through mix64: stable across runs and platforms, unlike
    // std's randomly keyed hasher.
    let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    mix64(fnv)
}

/// Reads a whole log file, gunzipping it when its name ends in `.gz`.
pub fn read_log(path: &Path) -> std::io::Result<String> {
    let raw = std::fs::read(path)?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_string(&mut text)?;
        return Ok(text);
    }
    String::from_utf8(raw)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = concat!(
        r#"10.12.45.0 - - [17/May/2015:10:05:03 +0000] "#,
        r#""GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" "#,
        r#"200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "#,
        r#""Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "#,
        r#"(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#,
    );

    #[test]
    fn parses_a_combined_line() {
        let line = parse_combined(GOOD).unwrap();
        assert_eq!(line.client, "10.12.45.0");
        assert_eq!(line.timestamp_ms, 1_431_857_103_000);
        assert_eq!(line.method, "GET");
        assert_eq!(
            line.target,
            "/presentations/logstash-monitorama-2013/images/kibana-search.png"
        );
        assert_eq!(line.protocol, "HTTP/1.1");
        assert_eq!(line.status, 200);
        assert_eq!(line.bytes, 203_023);
        assert_eq!(
            line.referer,
            "http://semicomplete.com/presentations/logstash-monitorama-2013/"
        );
        assert!(line.user_agent.starts_with("Mozilla/5.0 (Macintosh;"));
    }

    #[test]
    fn time_offset_is_applied() {
        let line = GOOD.replace("17/May/2015:10:05:03 +0000", "17/May/2015:11:05:03 +0100");
        assert_eq!(
            parse_combined(&line).unwrap().timestamp_ms,
            1_431_857_103_000
        );
    }

    #[test]
    fn dashes_are_empty_and_zero() {
        let line = r#"10.40.202.0 - - [26/May/2010:02:13:20 +0100] "GET / HTTP/1.1" 304 - "-" "-""#;
        let line = parse_combined(line).unwrap();
        assert_eq!((line.bytes, &*line.referer, &*line.user_agent), (0, "", ""));
    }

    #[test]
    fn escaped_quotes_are_unescaped_in_the_agent() {
        let line = concat!(
            r#"10.127.127.0 - - [11/Dec/2011:19:05:01 +0000] "#,
            r#""GET /?file=../../proc/self/environ%00 HTTP/1.1" 200 4399 "-" "#,
            r#""<?php system(\"id\"); ?>""#,
        );
        let line = parse_combined(line).unwrap();
        assert_eq!(line.user_agent, r#"<?php system("id"); ?>"#);
        assert_eq!(line.target, "/?file=../../proc/self/environ%00");
    }

    #[test]
    fn spaces_in_the_target_stay_in_the_path() {
        let line = concat!(
            r#"10.1.2.0 - - [11/Dec/2011:19:05:01 +0000] "#,
            r#""GET /a.php?x=GALLERY _BASEDIR=1 HTTP/1.1" 404 10 "-" "x""#,
        );
        assert_eq!(
            parse_combined(line).unwrap().target,
            "/a.php?x=GALLERY _BASEDIR=1"
        );
    }

    /// `apache_access_2` line 8899: the user agent was cut off, so its quote
    /// never closes.
    #[test]
    fn truncated_agent_is_rejected() {
        let line = concat!(
            r#"10.99.252.0 - - [20/May/2015:12:05:17 +0000] "#,
            r#""GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "#,
            r#""Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html"#,
        );
        assert_eq!(
            parse_combined(line),
            Err(CombinedError::Unterminated("user-agent"))
        );
    }

    #[test]
    fn each_bad_field_has_its_reason() {
        let cases = [
            ("", "missing_field"),
            ("1.2.3.4 - -", "missing_field"),
            (
                r#"1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1 "-" "-""#,
                "time",
            ),
            (
                r#"1.2.3.4 - - [26/May/2010:02:13:20 +0100] "-" 408 0 "-" "-""#,
                "request",
            ),
            (
                r#"1.2.3.4 - - [26/May/2010:02:13:20 +0100] "GET / HTTP/1.1" 2x 1 "-" "-""#,
                "status",
            ),
            (
                r#"1.2.3.4 - - [26/May/2010:02:13:20 +0100] "GET / HTTP/1.1" 200 -1 "-" "-""#,
                "bytes",
            ),
            (
                r#"1.2.3.4 - - [26/May/2010:02:13:20 +0100] "GET / HTTP/1.1 200 1"#,
                "unterminated_quote",
            ),
        ];
        for (line, reason) in cases {
            assert_eq!(parse_combined(line).unwrap_err().reason(), reason, "{line}");
        }
    }

    #[test]
    fn rewrite_keeps_the_line_and_assigns_the_rest() {
        let mut rewriter = Rewriter::new(3, 1000, 1);
        let access = rewriter.rewrite(GOOD).unwrap();
        assert_eq!(access.status, 200);
        assert_eq!(access.bytes_sent, 203_023);
        assert_eq!(access.timestamp_ms, 1_431_857_103_000);
        assert!(access.path_and_query.ends_with("kibana-search.png"));
        assert!(access.user_agent.contains("Chrome/32.0.1700.77"));
        assert_eq!(access.remote_ip, "10.12.45.0".parse::<IpAddr>().unwrap());
        assert!((1000..1003).contains(&access.pull_zone_id));
        assert!(["HIT", "MISS"].contains(&access.cache_status));
        assert_eq!(rewriter.rewritten(), 1);
    }

    #[test]
    fn one_client_stays_on_one_site() {
        let mut rewriter = Rewriter::new(50, 1000, 1);
        let first = rewriter.rewrite(GOOD).unwrap().pull_zone_id;
        let other_time = GOOD.replace("10:05:03", "11:00:00");
        assert_eq!(rewriter.rewrite(&other_time).unwrap().pull_zone_id, first);
    }

    /// Writes a combined-format line the way Apache's `mod_log_config` does:
    /// `"` and `\` inside quoted fields escaped with a backslash.
    fn render_combined(line: &CombinedLine<'_>, time: &str) -> String {
        let quote = |text: &str| {
            let text = if text.is_empty() {
                "-".to_owned()
            } else {
                text.to_owned()
            };
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        };
        format!(
            "{} - - [{time}] \"{} {} {}\" {} {} {} {}",
            line.client,
            line.method,
            line.target,
            line.protocol,
            line.status,
            line.bytes,
            quote(&line.referer),
            quote(&line.user_agent),
        )
    }

    proptest! {
        #[test]
        fn never_panics(line in ".*") {
            let _ = parse_combined(&line);
            let _ = Rewriter::new(3, 1000, 0).rewrite(&line);
        }

        #[test]
        fn rendered_lines_parse_back(
            client in "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            method in "[A-Z]{3,7}",
            // The request keeps its escapes (see `quoted_raw`): no `"` or `\`.
            target in "/[!#-\\[\\]-~]{0,40}( [!#-\\[\\]-~]{1,10})?",
            status in 100u16..1000,
            bytes in any::<u64>(),
            referer in "[^-\\p{Cc}][^\\p{Cc}]{0,60}|",
            user_agent in "[^-\\p{Cc}][^\\p{Cc}]{0,80}|",
            seconds in 0i64..4_000_000_000,
        ) {
            let time = jiff::Timestamp::from_second(seconds).unwrap();
            let time_text = time.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string();
            let line = CombinedLine {
                client: &client,
                timestamp_ms: seconds * 1000,
                method: &method,
                target: &target,
                protocol: "HTTP/1.1",
                status,
                bytes,
                referer: Cow::Borrowed(&referer),
                user_agent: Cow::Borrowed(&user_agent),
            };
            let text = render_combined(&line, &time_text);
            prop_assert_eq!(parse_combined(&text), Ok(line));
        }
    }

    #[test]
    fn addresses_are_anonymised() {
        assert_eq!(
            anonymise("192.0.2.77", 0),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            anonymise("2001:db8:1:2:3:4:5:6", 0),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            anonymise("crawl.example.net", 0x0102 << 48),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
    }
}
