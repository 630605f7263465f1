//! Timeseries buckets aligned in an IANA time zone.
//!
//! ClickHouse 18.16 cannot be trusted with arbitrary zones (and its zone
//! functions differ from current releases), so zone arithmetic happens here
//! with `jiff`: the range's UTC offsets go to SQL as a short list of
//! transitions, each row gets a bucket key computed from its local time, and
//! the keys are matched back to the buckets planned below. Gaps become zeros
//! here too (no `WITH FILL` on 18.16).

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::error::ApiError;
use crate::params::{Interval, MAX_POINTS, Range};

/// One planned bucket: where it starts, and the key SQL gives its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: Zoned,
    /// See [`key_of`].
    pub key: i64,
}

/// The UTC offsets in force over a range: `initial` until the first
/// transition, then each transition's offset from its instant on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets {
    pub initial_secs: i32,
    /// `(instant in epoch seconds, offset in seconds from then on)`, sorted.
    pub transitions: Vec<(i64, i32)>,
}

/// Offsets in force in `[from, to)` in `tz`.
pub fn offsets(tz: &TimeZone, from: Timestamp, to: Timestamp) -> Offsets {
    let initial_secs = tz.to_offset(from).seconds();
    let transitions = tz
        .following(from)
        .take_while(|t| t.timestamp() < to)
        .map(|t| (t.timestamp().as_second(), t.offset().seconds()))
        .collect();
    Offsets {
        initial_secs,
        transitions,
    }
}

/// Every bucket that overlaps `[from, to)`, oldest first. The first bucket
/// starts at or before `from`.
pub fn plan(range: &Range, interval: Interval) -> Result<Vec<Bucket>, ApiError> {
    let span = range.to.as_second() - range.from.as_second();
    if span / interval.min_secs() + 2 > MAX_POINTS as i64 {
        return Err(too_many(interval));
    }
    let mut buckets = Vec::new();
    let mut start = floor(range.from, &range.tz, interval)?;
    while start.timestamp() < range.to {
        let next = next_start(&start, interval)?;
        let key = key_of(&start, interval);
        buckets.push(Bucket { start, key });
        if buckets.len() > MAX_POINTS {
            return Err(too_many(interval));
        }
        start = next;
    }
    Ok(buckets)
}

/// The key the SQL of [`crate::sql`] computes for rows in the bucket that
/// starts at `start`:
///
/// - hour: the bucket's start in epoch seconds (two local hours with the
///   same clock time, as on the night DST ends, stay apart);
/// - day: days since 1970-01-01 of the local date;
/// - week: weeks since Monday 1969-12-29 of the local date;
/// - month: `YYYYMM` of the local date.
pub fn key_of(start: &Zoned, interval: Interval) -> i64 {
    let local = start.timestamp().as_second() + i64::from(start.offset().seconds());
    let day = local.div_euclid(86_400);
    match interval {
        Interval::Hour => start.timestamp().as_second(),
        Interval::Day => day,
        Interval::Week => (day + 3).div_euclid(7),
        Interval::Month => i64::from(start.year()) * 100 + i64::from(start.month()),
    }
}

fn too_many(interval: Interval) -> ApiError {
    ApiError::bad(
        "interval",
        format!(
            "the range needs more than {MAX_POINTS} {} buckets: \
             choose a longer interval or a shorter range",
            match interval {
                Interval::Hour => "hour",
                Interval::Day => "day",
                Interval::Week => "week",
                Interval::Month => "month",
            }
        ),
    )
}

/// Start of the bucket holding `ts`.
fn floor(ts: Timestamp, tz: &TimeZone, interval: Interval) -> Result<Zoned, ApiError> {
    let zoned = ts.to_zoned(tz.clone());
    let date = zoned.date();
    let start_date = match interval {
        Interval::Hour => return Ok(floor_hour(ts, tz)),
        Interval::Day => date,
        Interval::Week => date
            .checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
            .map_err(out_of_range)?,
        Interval::Month => date.first_of_month(),
    };
    start_date.to_zoned(tz.clone()).map_err(out_of_range)
}

/// Start of the local clock hour holding `ts`.
fn floor_hour(ts: Timestamp, tz: &TimeZone) -> Zoned {
    let offset = i64::from(tz.to_offset(ts).seconds());
    let local = ts.as_second() + offset;
    let start = local.div_euclid(3_600) * 3_600 - offset;
    Timestamp::from_second(start)
        .expect("within a second-range of a valid instant")
        .to_zoned(tz.clone())
}

fn next_start(start: &Zoned, interval: Interval) -> Result<Zoned, ApiError> {
    let tz = start.time_zone();
    let date = start.date();
    let next_date = match interval {
        // Step past this hour, then realign: after a DST change the next
        // local hour may begin less than 3600 s later.
        Interval::Hour => {
            let later = start
                .timestamp()
                .checked_add(1.hour())
                .map_err(out_of_range)?;
            return Ok(floor_hour(later, tz));
        }
        Interval::Day => date.tomorrow(),
        Interval::Week => date.checked_add(7.days()),
        Interval::Month => date.checked_add(1.month()),
    };
    next_date
        .and_then(|d| d.to_zoned(tz.clone()))
        .map_err(out_of_range)
}

fn out_of_range(_: jiff::Error) -> ApiError {
    ApiError::bad(
        "to",
        "the range reaches past the dates this server can represent",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(from: &str, to: &str, tz: &str) -> Range {
        Range {
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
            tz: TimeZone::get(tz).unwrap(),
        }
    }

    fn starts(buckets: &[Bucket]) -> Vec<String> {
        buckets
            .iter()
            .map(|b| {
                b.start
                    .timestamp()
                    .display_with_offset(b.start.offset())
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn berlin_hours_across_spring_forward() {
        let r = range(
            "2024-03-31T00:00:00Z",
            "2024-03-31T03:00:00Z",
            "Europe/Berlin",
        );
        let b = plan(&r, Interval::Hour).unwrap();
        assert_eq!(
            starts(&b),
            [
                "2024-03-31T01:00:00+01:00",
                "2024-03-31T03:00:00+02:00",
                "2024-03-31T04:00:00+02:00"
            ]
        );
    }

    #[test]
    fn berlin_fall_back_has_two_two_oclock_hours() {
        let r = range(
            "2024-10-27T00:00:00Z",
            "2024-10-27T02:00:00Z",
            "Europe/Berlin",
        );
        let b = plan(&r, Interval::Hour).unwrap();
        assert_eq!(
            starts(&b),
            ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"]
        );
        assert_ne!(b[0].key, b[1].key);
    }

    #[test]
    fn new_york_days_are_23_and_25_hours_long() {
        let r = range(
            "2024-03-10T05:00:00Z",
            "2024-03-11T04:00:00Z",
            "America/New_York",
        );
        let b = plan(&r, Interval::Day).unwrap();
        assert_eq!(starts(&b), ["2024-03-10T00:00:00-05:00"]);
        let r = range(
            "2024-11-03T04:00:00Z",
            "2024-11-04T05:00:00Z",
            "America/New_York",
        );
        let b = plan(&r, Interval::Day).unwrap();
        assert_eq!(starts(&b), ["2024-11-03T00:00:00-04:00"]);
        let span = r.to.as_second() - b[0].start.timestamp().as_second();
        assert_eq!(span, 25 * 3_600);
    }

    #[test]
    fn kolkata_hours_start_at_half_past_in_utc() {
        let r = range(
            "2024-01-01T00:00:00Z",
            "2024-01-01T01:00:00Z",
            "Asia/Kolkata",
        );
        let b = plan(&r, Interval::Hour).unwrap();
        assert_eq!(
            starts(&b),
            ["2024-01-01T05:00:00+05:30", "2024-01-01T06:00:00+05:30"]
        );
        assert_eq!(b[0].key, 1_704_065_400);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let r = range(
            "2024-03-28T12:00:00Z",
            "2024-04-09T00:00:00Z",
            "Europe/Berlin",
        );
        let weeks = plan(&r, Interval::Week).unwrap();
        assert_eq!(
            starts(&weeks),
            [
                "2024-03-25T00:00:00+01:00",
                "2024-04-01T00:00:00+02:00",
                "2024-04-08T00:00:00+02:00"
            ]
        );
        let months = plan(&r, Interval::Month).unwrap();
        assert_eq!(
            starts(&months),
            ["2024-03-01T00:00:00+01:00", "2024-04-01T00:00:00+02:00"]
        );
        assert_eq!(months[1].key, 202_404);
    }

    #[test]
    fn refuses_too_many_points() {
        let r = range("2023-01-01T00:00:00Z", "2024-12-01T00:00:00Z", "UTC");
        assert!(plan(&r, Interval::Hour).is_err());
        assert_eq!(plan(&r, Interval::Day).unwrap().len(), 700);
    }

    #[test]
    fn lists_the_transitions_inside_the_range() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let o = offsets(
            &tz,
            "2024-01-01T00:00:00Z".parse().unwrap(),
            "2025-01-01T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(o.initial_secs, 3_600);
        assert_eq!(
            o.transitions,
            [(1_711_846_800, 7_200), (1_729_990_800, 3_600)]
        );
    }
}
