//! Query parameters: every value is checked here against a closed list or a
//! strict shape before anything else sees it. Names that reach SQL come from
//! the enums below, never from the request.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::ApiError;

/// Parameters every analytics endpoint reads.
pub const COMMON: &[&str] = &[
    "from",
    "to",
    "tz",
    "bots",
    "path",
    "country",
    "status_class",
    "file_type",
];

/// Default range when `from` is not given, in seconds (7 days).
pub const DEFAULT_RANGE_SECS: i64 = 7 * 86_400;

/// Most points a timeseries may have (the cap).
pub const MAX_POINTS: usize = 2_000;

/// Largest `limit` of a breakdown page.
pub const MAX_LIMIT: u64 = 1_000;

/// Largest `offset` of a breakdown page: deeper pages cost a full sort each
/// and nobody reads them.
pub const MAX_OFFSET: u64 = 100_000;

/// Earliest accepted instant, 2000-01-01T00:00:00Z: nothing older is stored,
/// and local times stay positive in every zone.
const MIN_TIME_SECS: i64 = 946_684_800;

/// Latest instant a `DateTime` column can hold.
const MAX_TIME_SECS: i64 = u32::MAX as i64;

/// Longest accepted path filter, in bytes.
const MAX_PATH_BYTES: usize = 2_048;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Requests,
    Pageviews,
    Visitors,
    Bandwidth,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::Requests,
        Metric::Pageviews,
        Metric::Visitors,
        Metric::Bandwidth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Pageviews => "pageviews",
            Metric::Visitors => "visitors",
            Metric::Bandwidth => "bandwidth",
        }
    }
}

/// Width of a timeseries bucket, aligned in the requested time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    /// Starts on Monday.
    Week,
    Month,
}

impl Interval {
    pub const NAMES: [&'static str; 4] = ["hour", "day", "week", "month"];

    /// Shortest span of one bucket, in seconds, used to refuse ranges with
    /// too many points before planning them.
    pub fn min_secs(self) -> i64 {
        match self {
            Interval::Hour => 3_600,
            // A day can be 23 hours long across a DST change.
            Interval::Day => 23 * 3_600,
            Interval::Week => 7 * 86_400 - 3_600,
            Interval::Month => 28 * 86_400 - 3_600,
        }
    }
}

/// Which requests count, by the bot flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bots {
    Exclude,
    Include,
    Only,
}

/// A column a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Path,
    ReferrerHost,
    Country,
    Browser,
    Os,
    Device,
    FileType,
    Status,
    StatusClass,
    CacheStatus,
    EdgeLocation,
}

impl Dimension {
    pub const NAMES: [&'static str; 11] = [
        "path",
        "referrer_host",
        "country",
        "browser",
        "os",
        "device",
        "file_type",
        "status",
        "status_class",
        "cache_status",
        "edge_location",
    ];
}

/// The dimension named `text`, if it is one of [`Dimension::NAMES`].
pub fn parse_dimension(text: &str) -> Option<Dimension> {
    Some(match text {
        "path" => Dimension::Path,
        "referrer_host" => Dimension::ReferrerHost,
        "country" => Dimension::Country,
        "browser" => Dimension::Browser,
        "os" => Dimension::Os,
        "device" => Dimension::Device,
        "file_type" => Dimension::FileType,
        "status" => Dimension::Status,
        "status_class" => Dimension::StatusClass,
        "cache_status" => Dimension::CacheStatus,
        "edge_location" => Dimension::EdgeLocation,
        _ => return None,
    })
}

/// The path filter: one exact path, or every path under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathFilter {
    Exact(String),
    Prefix(String),
}

/// Filters narrowing the requests counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    pub bots: Bots,
    pub path: Option<PathFilter>,
    pub country: Option<String>,
    pub status_class: Option<String>,
    pub file_type: Option<String>,
}

/// The range `[from, to)` and the zone its buckets are read in.
#[derive(Debug, Clone)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
    pub tz: TimeZone,
}

/// What every analytics endpoint was asked.
#[derive(Debug, Clone)]
pub struct Common {
    pub range: Range,
    pub filters: Filters,
}

pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

pub const FILE_TYPES: [&str; 12] = [
    "page", "image", "script", "style", "font", "document", "archive", "audio", "video", "feed",
    "data", "other",
];

/// The query string as name → value, each name at most once, taken out one
/// by one so that whatever is left over can be refused.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Builds from decoded pairs; a repeated name is refused.
    pub fn new(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if values.contains_key(&name) {
                return Err(ApiError::bad(clean_name(&name), "given more than once"));
            }
            values.insert(name, value);
        }
        Ok(Self { values })
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// Refuses any name not taken so far; `allowed` lists the names the
    /// endpoint knows, for the hint.
    pub fn finish(self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::bad(
                clean_name(name),
                format!("unknown parameter: allowed are {}", allowed.join(", ")),
            )),
        }
    }

    /// Reads `from`, `to`, `tz` and the filters.
    pub fn common(&mut self, now: Timestamp, max_range_days: u32) -> Result<Common, ApiError> {
        let range = self.range(now, max_range_days)?;
        let filters = Filters {
            bots: self.bots()?,
            path: self.take("path").map(|v| parse_path(&v)).transpose()?,
            country: self
                .take("country")
                .map(|v| parse_country(&v))
                .transpose()?,
            status_class: self.one_of("status_class", &STATUS_CLASSES)?,
            file_type: self.one_of("file_type", &FILE_TYPES)?,
        };
        Ok(Common { range, filters })
    }

    /// Reads `metric` (required).
    pub fn metric(&mut self) -> Result<Metric, ApiError> {
        let names = Metric::ALL.map(Metric::name);
        let text = self.required("metric", &names)?;
        Ok(Metric::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .expect("checked by one_of"))
    }

    /// Reads `interval` (default `day`).
    pub fn interval(&mut self) -> Result<Interval, ApiError> {
        Ok(
            match self.one_of("interval", &Interval::NAMES)?.as_deref() {
                Some("hour") => Interval::Hour,
                Some("week") => Interval::Week,
                Some("month") => Interval::Month,
                _ => Interval::Day,
            },
        )
    }

    /// Reads `dimension` (required).
    pub fn dimension(&mut self) -> Result<Dimension, ApiError> {
        let text = self.required("dimension", &Dimension::NAMES)?;
        Ok(parse_dimension(&text).expect("checked by one_of"))
    }

    /// Reads a count between `0` (or `1` when `min_one`) and `max`.
    pub fn count(&mut self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(text) = self.take(name) else {
            return Ok(default);
        };
        let value = parse_digits(&text, 7).ok_or_else(|| {
            ApiError::bad(name, format!("must be a whole number, {min} to {max}"))
        })?;
        if !(min..=max).contains(&value) {
            return Err(ApiError::bad(
                name,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(value)
    }

    fn range(&mut self, now: Timestamp, max_range_days: u32) -> Result<Range, ApiError> {
        let tz = self
            .take("tz")
            .map(|v| parse_tz(&v))
            .transpose()?
            .unwrap_or(TimeZone::UTC);
        let to = match self.take("to") {
            Some(text) => parse_time("to", &text)?,
            // Round up so that the current second is inside the range.
            None => Timestamp::from_second(now.as_second() + 1).expect("now is in range"),
        };
        let from = match self.take("from") {
            Some(text) => parse_time("from", &text)?,
            None => {
                Timestamp::from_second((to.as_second() - DEFAULT_RANGE_SECS).max(MIN_TIME_SECS))
                    .expect("clamped to the accepted range")
            }
        };
        if from >= to {
            return Err(ApiError::bad("from", "must be before `to`"));
        }
        let max_secs = i64::from(max_range_days) * 86_400;
        if to.as_second() - from.as_second() > max_secs {
            return Err(ApiError::bad(
                "from",
                format!("the range from `from` to `to` is longer than {max_range_days} days"),
            ));
        }
        Ok(Range { from, to, tz })
    }

    fn bots(&mut self) -> Result<Bots, ApiError> {
        Ok(
            match self
                .one_of("bots", &["exclude", "include", "only"])?
                .as_deref()
            {
                Some("include") => Bots::Include,
                Some("only") => Bots::Only,
                _ => Bots::Exclude,
            },
        )
    }

    fn required(&mut self, name: &str, allowed: &[&str]) -> Result<String, ApiError> {
        self.one_of(name, allowed)?
            .ok_or_else(|| ApiError::bad(name, format!("required: one of {}", allowed.join(", "))))
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        let Some(text) = self.take(name) else {
            return Ok(None);
        };
        if allowed.contains(&text.as_str()) {
            Ok(Some(text))
        } else {
            Err(ApiError::bad(
                name,
                format!("must be one of {}", allowed.join(", ")),
            ))
        }
    }
}

/// Parses the `{site}` path segment.
pub fn parse_site(text: &str) -> Result<u64, ApiError> {
    parse_digits(text, 20).ok_or_else(|| ApiError::bad("site", "must be a numeric site id"))
}

/// Reads up to `max_digits` ASCII digits as a number; no sign, no spaces.
fn parse_digits(text: &str, max_digits: usize) -> Option<u64> {
    let ok =
        !text.is_empty() && text.len() <= max_digits && text.bytes().all(|b| b.is_ascii_digit());
    if ok { text.parse().ok() } else { None }
}

/// RFC 3339 (`2024-03-31T00:00:00+01:00`) or seconds since the Unix epoch.
fn parse_time(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    const HINT: &str = "must be RFC 3339 (like `2024-03-31T00:00:00Z`) or epoch seconds";
    let ts = if let Some(secs) = parse_digits(text, 10) {
        Timestamp::from_second(secs as i64).ok()
    } else if text.len() <= 40 && text.contains('T') {
        text.parse::<Timestamp>().ok()
    } else {
        None
    };
    let ts = ts.ok_or_else(|| ApiError::bad(name, HINT))?;
    if !(MIN_TIME_SECS..=MAX_TIME_SECS).contains(&ts.as_second()) {
        return Err(ApiError::bad(
            name,
            "must be between 2000-01-01 and 2106-02-07",
        ));
    }
    Ok(ts)
}

/// An IANA zone name such as `Europe/Berlin`, or `UTC`.
fn parse_tz(text: &str) -> Result<TimeZone, ApiError> {
    // Checked before the lookup: the name becomes a file path under the
    // system's zoneinfo directory.
    let shape_ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && text
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with(['.', '-']));
    let tz = shape_ok.then(|| TimeZone::get(text).ok()).flatten();
    tz.ok_or_else(|| ApiError::bad("tz", "must be an IANA time zone name, like `Europe/Berlin`"))
}

/// `/exact/path` or `/prefix/*`. Only characters that may appear in a URL
/// path (RFC 3986 `pchar` and `/`) are accepted; `*` only at the end.
fn parse_path(text: &str) -> Result<PathFilter, ApiError> {
    let bad = |message: &str| ApiError::bad("path", message);
    if !text.starts_with('/') || text.len() > MAX_PATH_BYTES {
        return Err(bad("must start with `/` and be at most 2048 bytes"));
    }
    let (body, prefix) = match text.strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@%/".contains(&b);
    if !body.bytes().all(allowed) {
        return Err(bad(
            "may hold only URL path characters (percent-encode others); `*` only at the end",
        ));
    }
    let body = body.to_owned();
    Ok(if prefix {
        PathFilter::Prefix(body)
    } else {
        PathFilter::Exact(body)
    })
}

/// Two upper-case letters (ISO 3166-1 alpha-2).
fn parse_country(text: &str) -> Result<String, ApiError> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::bad(
            "country",
            "must be two upper-case letters, like `DE`",
        ))
    }
}

/// A parameter name fit to echo back: unknown names are attacker text.
fn clean_name(name: &str) -> String {
    let ok = name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        name.to_owned()
    } else {
        "(unprintable name)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &[(&str, &str)]) -> Params {
        Params::new(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn now() -> Timestamp {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    fn name_of(error: ApiError) -> String {
        match error {
            ApiError::BadParameter { name, .. } => name,
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn defaults_to_the_last_seven_days_in_utc() {
        let common = params(&[]).common(now(), 730).unwrap();
        assert_eq!(
            common.range.to.as_second() - common.range.from.as_second(),
            7 * 86_400
        );
        assert_eq!(common.range.tz, TimeZone::UTC);
        assert_eq!(common.filters.bots, Bots::Exclude);
    }

    #[test]
    fn reads_both_time_forms() {
        let p = &[("from", "1711839600"), ("to", "2024-04-01T00:00:00+02:00")];
        let range = params(p).common(now(), 730).unwrap().range;
        assert_eq!(range.from.as_second(), 1_711_839_600);
        assert_eq!(range.to.as_second(), 1_711_922_400);
    }

    #[test]
    fn refuses_bad_values_naming_the_parameter() {
        let cases: &[(&str, &str)] = &[
            ("from", "yesterday"),
            ("from", "-5"),
            ("to", "1e9"),
            ("tz", "../../etc/passwd"),
            ("tz", "Mars/Olympus"),
            ("bots", "some"),
            ("path", "no-slash"),
            ("path", "/a*b"),
            ("path", "/a b"),
            ("country", "de"),
            ("status_class", "6xx"),
            ("file_type", "exe"),
        ];
        for (name, value) in cases {
            let error = params(&[(name, value)]).common(now(), 730).unwrap_err();
            assert_eq!(name_of(error), *name, "{name}={value}");
        }
    }

    #[test]
    fn caps_the_range() {
        let p = &[
            ("from", "2020-01-01T00:00:00Z"),
            ("to", "2024-01-01T00:00:00Z"),
        ];
        assert_eq!(name_of(params(p).common(now(), 730).unwrap_err()), "from");
        let backwards = &[("from", "1711839600"), ("to", "1711839600")];
        assert_eq!(
            name_of(params(backwards).common(now(), 730).unwrap_err()),
            "from"
        );
    }

    #[test]
    fn path_filters_are_exact_or_prefix() {
        let exact = params(&[("path", "/blog/it's")])
            .common(now(), 730)
            .unwrap();
        assert_eq!(
            exact.filters.path,
            Some(PathFilter::Exact("/blog/it's".into()))
        );
        let prefix = params(&[("path", "/blog/*")]).common(now(), 730).unwrap();
        assert_eq!(
            prefix.filters.path,
            Some(PathFilter::Prefix("/blog/".into()))
        );
    }

    #[test]
    fn unknown_and_repeated_names_are_refused() {
        let mut p = params(&[("metric", "requests"), ("sort", "x")]);
        p.metric().unwrap();
        assert_eq!(name_of(p.finish(&["metric"]).unwrap_err()), "sort");
        let pairs = vec![
            ("tz".to_owned(), "UTC".to_owned()),
            ("tz".to_owned(), "UTC".to_owned()),
        ];
        assert_eq!(name_of(Params::new(pairs).unwrap_err()), "tz");
    }

    #[test]
    fn counts_are_bounded() {
        assert_eq!(params(&[]).count("limit", 10, 1, MAX_LIMIT).unwrap(), 10);
        for bad in ["0", "1001", "-1", "1 ", "9999999999"] {
            let error = params(&[("limit", bad)])
                .count("limit", 10, 1, MAX_LIMIT)
                .unwrap_err();
            assert_eq!(name_of(error), "limit", "{bad}");
        }
    }
}
