//! Finds the message body inside a syslog frame.
//!
//! A frame is one of:
//!
//! - RFC 5424: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID
//!   SP MSGID [SP STRUCTURED-DATA] [SP MSG]`. The timestamp may carry any
//!   number of fraction digits and any offset, or be `-`; structured data is
//!   `-` or one or more `[id param="value" …]` elements whose values may hold
//!   `\"`, `\\` and `\]`. Structured data left out entirely (seen from real
//!   relays) is tolerated: the message then starts right after MSGID.
//! - RFC 3164: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`.
//! - anything not starting with `<`: a bare body (bunny's logging API files).
//!
//! A UTF-8 BOM in front of the message is removed. The header's fields are
//! checked against the grammar and then dropped: the access time comes from
//! the body alone, so a header timestamp never decides a record's time.
//!
//! The parsers are nom `complete` parsers over a whole frame.

use nom::branch::alt;
use nom::bytes::complete::{tag, take, take_while_m_n, take_while1};
use nom::character::complete::{char, one_of};
use nom::combinator::{opt, recognize, verify};
use nom::multi::{many0_count, many1_count};
use nom::sequence::{delimited, preceded, terminated};
use nom::{IResult, Parser};

use crate::reject::{Reason, Rejection};
use crate::scan::Separators;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Which header a frame carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Rfc5424,
    Rfc3164,
    None,
}

/// Returns the frame's message body (BOM removed) and the header kind.
pub fn split_frame(frame: &[u8]) -> Result<(Header, &[u8]), Rejection> {
    if frame.first() != Some(&b'<') {
        return Ok((Header::None, strip_bom(frame)));
    }
    if let Some(body) = usual_rfc5424_body(frame) {
        return Ok((Header::Rfc5424, strip_bom(body)));
    }
    if let Ok((body, ())) = parse_rfc5424_header(frame) {
        return Ok((Header::Rfc5424, strip_bom(body)));
    }
    if let Ok((body, ())) = parse_rfc3164_header(frame) {
        return Ok((Header::Rfc3164, strip_bom(body)));
    }
    Err(Rejection::new(Reason::BadSyslogHeader).with_detail(excerpt(frame)))
}

/// Removes one leading UTF-8 BOM.
pub fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(BOM).unwrap_or(body)
}

fn excerpt(frame: &[u8]) -> String {
    let cut = &frame[..frame.len().min(40)];
    format!("starts `{}`", String::from_utf8_lossy(cut).escape_debug())
}

type Res<'a, T> = IResult<&'a [u8], T>;

/// The body behind the header nearly every sender writes, read in one
/// pass: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - `. `None` for anything
/// else (structured data, another version, a field cut short, ...), which
/// the full parser then decides; when this returns a body, the full parser
/// returns the same one (the tests check both on arbitrary input). The
/// nom parser took 8 % of parse + enrich, most of it in combinator calls.
fn usual_rfc5424_body(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    let pri = &rest[..close];
    if pri.is_empty() || !pri.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pri = pri.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let header = rest[close + 1..].strip_prefix(b"1 ")?;
    let mut spaces = Separators::new(header, b' ');
    let mut start = 0;
    for field in 0..5 {
        let end = spaces.next()?;
        let text = &header[start..end];
        let ok = if field == 0 {
            text == b"-" || is_rfc3339(text)
        } else {
            !text.is_empty() && text.iter().all(|b| (33..=126).contains(b))
        };
        if !ok {
            return None;
        }
        start = end + 1;
    }
    if pri > 191 {
        return None;
    }
    match &header[start..] {
        [b'-'] => Some(&header[header.len()..]),
        [b'-', b' ', body @ ..] => Some(body),
        _ => None,
    }
}

/// `HEADER [SP STRUCTURED-DATA] [SP]`, leaving the MSG.
fn parse_rfc5424_header(i: &[u8]) -> Res<'_, ()> {
    let (i, _) = (
        parse_pri,
        parse_version,
        preceded(char(' '), parse_timestamp),
        preceded(char(' '), parse_header_field), // HOSTNAME
        preceded(char(' '), parse_header_field), // APP-NAME
        preceded(char(' '), parse_header_field), // PROCID
        preceded(char(' '), parse_header_field), // MSGID
    )
        .parse(i)?;
    if i.is_empty() {
        return Ok((i, ()));
    }
    let (i, _) = char(' ').parse(i)?;
    let (i, _) = opt(terminated(parse_structured_data, end_of_sd)).parse(i)?;
    Ok((i, ()))
}

/// After structured data comes SP then MSG, or the end of the frame.
fn end_of_sd(i: &[u8]) -> Res<'_, ()> {
    if i.is_empty() {
        return Ok((i, ()));
    }
    char(' ').map(|_| ()).parse(i)
}

/// `<PRI>`: 1 to 3 digits, at most 191.
fn parse_pri(i: &[u8]) -> Res<'_, u8> {
    let (i, digits) = delimited(char('<'), take_while_m_n(1, 3, is_digit), char('>')).parse(i)?;
    match digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'))
    {
        pri @ 0..=191 => Ok((i, pri as u8)),
        _ => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// VERSION: a non-zero digit and at most two more.
fn parse_version(i: &[u8]) -> Res<'_, &[u8]> {
    recognize((one_of("123456789"), take_while_m_n(0, 2, is_digit))).parse(i)
}

/// `-` or `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`, any fraction length.
///
/// The shape is checked by position in one pass ([`is_rfc3339`]) rather
/// than by one parser per digit group: the value is never used, and the
/// per-group parsers were a third of the header's cost in the parse bench.
fn parse_timestamp(i: &[u8]) -> Res<'_, &[u8]> {
    alt((tag("-"), verify(parse_token, is_rfc3339))).parse(i)
}

/// True for `YYYY-MM-DDThh:mm:ss[.digits](Z|±hh:mm)` (`T` and `Z` in
/// either case); digits are not range-checked.
fn is_rfc3339(ts: &[u8]) -> bool {
    const SHAPE: &[u8; 19] = b"0000-00-00T00:00:00";
    let Some((head, rest)) = ts.split_at_checked(SHAPE.len()) else {
        return false;
    };
    let head_ok = head.iter().zip(SHAPE).all(|(&b, &shape)| match shape {
        b'0' => b.is_ascii_digit(),
        b'T' => b == b'T' || b == b't',
        shape => b == shape,
    });
    let offset = match rest.strip_prefix(b".") {
        Some(fraction) => match fraction.iter().position(|b| !b.is_ascii_digit()) {
            Some(0) | None => return false,
            Some(digits) => &fraction[digits..],
        },
        None => rest,
    };
    head_ok
        && match offset {
            [b'Z' | b'z'] => true,
            [b'+' | b'-', h1, h2, b':', m1, m2] => {
                [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
            }
            _ => false,
        }
}

/// Exactly `n` ASCII digits.
fn digits<'a>(
    n: usize,
) -> impl Parser<&'a [u8], Output = &'a [u8], Error = nom::error::Error<&'a [u8]>> {
    take_while_m_n(n, n, is_digit)
}

/// HOSTNAME, APP-NAME, PROCID, MSGID: `-` or printable ASCII without spaces.
fn parse_header_field(i: &[u8]) -> Res<'_, &[u8]> {
    verify(parse_token, |field: &[u8]| {
        // A fold without early exit, so the check vectorises.
        field
            .iter()
            .fold(true, |ok, &b| ok & (33..=126).contains(&b))
    })
    .parse(i)
}

/// One or more bytes up to the next space (found with memchr rather than
/// byte by byte: header fields are most of a header's bytes).
fn parse_token(i: &[u8]) -> Res<'_, &[u8]> {
    match memchr::memchr(b' ', i).unwrap_or(i.len()) {
        0 => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TakeWhile1,
        ))),
        end => Ok((&i[end..], &i[..end])),
    }
}

/// `-` or one or more SD-ELEMENTs, back to back.
fn parse_structured_data(i: &[u8]) -> Res<'_, &[u8]> {
    alt((tag("-"), recognize(many1_count(parse_sd_element)))).parse(i)
}

/// `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`.
fn parse_sd_element(i: &[u8]) -> Res<'_, &[u8]> {
    let param = (
        char(' '),
        parse_sd_name,
        char('='),
        char('"'),
        parse_sd_value,
        char('"'),
    );
    recognize((char('['), parse_sd_name, many0_count(param), char(']'))).parse(i)
}

/// SD-NAME: printable ASCII except `=`, SP, `]` and `"`.
fn parse_sd_name(i: &[u8]) -> Res<'_, &[u8]> {
    take_while1(|b: u8| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"')).parse(i)
}

/// PARAM-VALUE up to the closing quote; a backslash escapes the next byte
/// (`\"`, `\\`, `\]`; RFC 5424 keeps other escapes as written).
fn parse_sd_value(i: &[u8]) -> Res<'_, &[u8]> {
    let plain = take_while1(|b: u8| b != b'\\' && b != b'"');
    recognize(many0_count(alt((
        plain,
        preceded(char('\\'), take(1usize)),
    ))))
    .parse(i)
}

/// `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: `, leaving the MSG.
fn parse_rfc3164_header(i: &[u8]) -> Res<'_, ()> {
    let month = alt((
        tag("Jan"),
        tag("Feb"),
        tag("Mar"),
        tag("Apr"),
        tag("May"),
        tag("Jun"),
        tag("Jul"),
        tag("Aug"),
        tag("Sep"),
        tag("Oct"),
        tag("Nov"),
        tag("Dec"),
    ));
    let day = alt((recognize((char(' '), digits(1))), digits(2), digits(1)));
    let time = recognize((digits(2), char(':'), digits(2), char(':'), digits(2)));
    let tag_name = take_while1(|b: u8| (33..=126).contains(&b) && !matches!(b, b':' | b'['));
    let pid = delimited(
        char('['),
        take_while1(|b: u8| b != b']' && b != b' '),
        char(']'),
    );
    let (i, _) = (
        parse_pri,
        month,
        char(' '),
        day,
        char(' '),
        time,
        preceded(char(' '), parse_header_field), // HOSTNAME
        preceded(char(' '), tag_name),
        opt(pid),
        char(':'),
        opt(char(' ')),
    )
        .parse(i)?;
    Ok((i, ()))
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &str) -> (Header, &[u8]) {
        split_frame(frame.as_bytes()).unwrap()
    }

    #[test]
    fn rfc5424_with_escaped_structured_data() {
        let frame = concat!(
            r#"<165>1 2025-12-04T10:40:00.003Z h app - ID47 "#,
            r#"[a@1 x="B\]C" n="s \"q\" C:\\t"][b@2 c="d"] HIT|1"#
        );
        assert_eq!(body(frame), (Header::Rfc5424, &b"HIT|1"[..]));
    }

    #[test]
    fn rfc5424_timestamps_of_any_precision() {
        for ts in [
            "-",
            "2025-12-04T10:40:00Z",
            "2025-12-04T10:40:00.088609123Z",
            "2025-12-04T16:25:00+05:45",
            "2025-12-04T03:40:00.1234567-07:00",
        ] {
            let frame = format!("<134>1 {ts} host app - - - \u{feff}X|1");
            assert_eq!(body(&frame), (Header::Rfc5424, &b"X|1"[..]), "{ts}");
        }
    }

    #[test]
    fn timestamp_shapes() {
        for good in [
            "2025-12-04T10:40:00Z",
            "2025-12-04t10:40:00.1z",
            "2025-12-04T10:40:00+05:45",
        ] {
            assert!(is_rfc3339(good.as_bytes()), "{good}");
        }
        for bad in [
            "2025-12-04T10:40:00",
            "2025-12-04T10:40:00.Z",
            "2025-12-04 10:40:00Z",
            "2025-12-04T10:40:00+0545",
            "2025-1-04T10:40:00Z",
            "Dec  4 10:40:00",
        ] {
            assert!(!is_rfc3339(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn rfc5424_without_structured_data() {
        let frame = "<165>1 2025-12-04T10:40:00.003Z h evntslog - ID47 \u{feff}MISS|2";
        assert_eq!(body(frame), (Header::Rfc5424, &b"MISS|2"[..]));
        assert_eq!(body("<1>1 - - - - -"), (Header::Rfc5424, &b""[..]));
        assert_eq!(body("<1>1 - - - - - -"), (Header::Rfc5424, &b""[..]));
    }

    #[test]
    fn rfc3164_headers() {
        let frame = "<165>Dec  4 10:40:00 mymachine evntslog: MISS|200";
        assert_eq!(body(frame), (Header::Rfc3164, &b"MISS|200"[..]));
        let frame = "<30>Dec  4 10:40:01 pdu01 iocontrold[247]: PDU_Event";
        assert_eq!(body(frame), (Header::Rfc3164, &b"PDU_Event"[..]));
        let frame = "<4>Dec 14 10:40:02 gw01 kernel: [WAN]IN=eth0";
        assert_eq!(body(frame), (Header::Rfc3164, &b"[WAN]IN=eth0"[..]));
    }

    #[test]
    fn bare_body_keeps_everything_but_the_bom() {
        assert_eq!(body("\u{feff}{\"a\":1}"), (Header::None, &b"{\"a\":1}"[..]));
        assert_eq!(body("HIT|200"), (Header::None, &b"HIT|200"[..]));
    }

    /// The full parser's answer, without the one-pass shortcut.
    fn full_parse_body(frame: &[u8]) -> Option<&[u8]> {
        parse_rfc5424_header(frame).ok().map(|(body, ())| body)
    }

    #[test]
    fn the_usual_header_takes_the_shortcut() {
        for frame in [
            "<134>1 2025-12-04T10:40:00.003Z h app - - - \u{feff}HIT|1",
            "<0>1 - - - - - -",
            "<191>1 - a b c d - x",
        ] {
            let frame = frame.as_bytes();
            assert!(usual_rfc5424_body(frame).is_some(), "{frame:?}");
            assert_eq!(usual_rfc5424_body(frame), full_parse_body(frame));
        }
        for frame in [
            "<192>1 - - - - - -",
            "<1>2 - - - - - -",
            "<1>1 - - - - ID [a@1 b=\"c\"] x",
            "<1>1 - - - - ID x",
            "<1>1 - - - - -x",
            "<1>1 - - - -",
            "<>1 - - - - - -",
            "<0001>1 - - - - - -",
            "<1>1 2025-12-04 - - - - -",
        ] {
            assert_eq!(usual_rfc5424_body(frame.as_bytes()), None, "{frame}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_shortcut_agrees_with_the_full_parser(
            pri in "<[0-9]{0,4}>",
            version in "1|2|11| 1",
            fields in proptest::collection::vec(
                "-|2025-12-04T10:40:00(\\.[0-9]{1,3})?Z|[!-~]{1,6}|[ -~]{0,4}", 4..7),
            tail in "(- |-|\\[a@1 b=\"c\"\\] |x |)[ -~]{0,8}",
        ) {
            let frame = format!("{pri}{version} {} {tail}", fields.join(" "));
            let frame = frame.as_bytes();
            if let Some(body) = usual_rfc5424_body(frame) {
                proptest::prop_assert_eq!(Some(body), full_parse_body(frame));
            }
        }

        #[test]
        fn the_shortcut_never_disagrees_on_any_bytes(frame in proptest::collection::vec(
            proptest::prelude::any::<u8>(), 0..64)) {
            let mut frame = frame;
            frame.splice(0..0, b"<1>1 ".iter().copied());
            if let Some(body) = usual_rfc5424_body(&frame) {
                proptest::prop_assert_eq!(Some(body), full_parse_body(&frame));
            }
        }
    }

    #[test]
    fn broken_headers_are_rejected() {
        for frame in [
            "<999>1 - - - - -",
            "<1>",
            "<12>hello there",
            "<1>1 2025-13 h a - -",
        ] {
            let err = split_frame(frame.as_bytes()).unwrap_err();
            assert_eq!(err.reason, Reason::BadSyslogHeader, "{frame}");
        }
    }
}
