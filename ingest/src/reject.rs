//! Why a frame was not turned into a record.
//!
//! Every frame that does not become a record carries one [`Reason`] from a
//! small fixed set; [`Reason::as_str`] is the `reason` label of the rejection
//! counter, so the set must stay small and its names stable.

use std::borrow::Cow;
use std::fmt;

/// The fixed set of rejection reasons; the metric label is [`Reason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The frame was longer than the decoder's maximum and was discarded.
    FrameTooLarge,
    /// The stream ended inside an octet-counted frame: fewer bytes arrived
    /// than its length announced.
    TruncatedFrame,
    /// The frame starts with `<` but is neither RFC 5424 nor RFC 3164.
    BadSyslogHeader,
    /// The message is not a bunny.net access line (another program's syslog
    /// traffic, or a pipe line without the fields of the format).
    NotAccessLog,
    /// The body starts with `{` but is not one valid JSON object of the
    /// expected types (truncated, a string where a number belongs, …).
    MalformedJson,
    /// A required field is absent (JSON) or empty.
    MissingField,
    /// A number is not a decimal integer in range (overflow, sign, status
    /// outside `100..=999`).
    BadNumber,
    /// The access time is before 2000-01-01 or does not fit ClickHouse's
    /// `DateTime` (after 2106-02-07).
    BadTimestamp,
    /// The pull-zone id is 0, which names no site.
    ZeroSite,
    /// The remote address is neither empty, `-`, IPv4 nor IPv6.
    BadAddress,
}

impl Reason {
    /// Every reason, in label order: lets metrics pre-register each label.
    pub const ALL: &'static [Reason] = &[
        Reason::FrameTooLarge,
        Reason::TruncatedFrame,
        Reason::BadSyslogHeader,
        Reason::NotAccessLog,
        Reason::MalformedJson,
        Reason::MissingField,
        Reason::BadNumber,
        Reason::BadTimestamp,
        Reason::ZeroSite,
        Reason::BadAddress,
    ];

    /// The snake_case metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FrameTooLarge => "frame_too_large",
            Reason::TruncatedFrame => "truncated_frame",
            Reason::BadSyslogHeader => "bad_syslog_header",
            Reason::NotAccessLog => "not_access_log",
            Reason::MalformedJson => "malformed_json",
            Reason::MissingField => "missing_field",
            Reason::BadNumber => "bad_number",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::ZeroSite => "zero_site",
            Reason::BadAddress => "bad_address",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Reason::FrameTooLarge => "frame longer than the maximum frame size",
            Reason::TruncatedFrame => "the stream ended inside a frame",
            Reason::BadSyslogHeader => "unrecognised syslog header",
            Reason::NotAccessLog => "not a bunny.net access log line",
            Reason::MalformedJson => "malformed json body",
            Reason::MissingField => "missing required field",
            Reason::BadNumber => "number out of range",
            Reason::BadTimestamp => "access time out of range",
            Reason::ZeroSite => "pull-zone id is 0",
            Reason::BadAddress => "invalid remote address",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame that did not become a record: the reason, the field at fault when
/// there is one, and a short detail for the log line.
///
/// Built only on the rare path; the detail may allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    /// The field at fault, named as in the pipe format's documentation and
    /// the `parse` command's output (`bytes_sent`, `timestamp_ms`, …).
    pub field: Option<&'static str>,
    detail: Option<Cow<'static, str>>,
}

impl Rejection {
    /// A rejection with no field and no detail.
    pub fn new(reason: Reason) -> Self {
        Rejection {
            reason,
            field: None,
            detail: None,
        }
    }

    /// A rejection naming the field at fault.
    pub fn field(reason: Reason, field: &'static str) -> Self {
        Rejection {
            reason,
            field: Some(field),
            detail: None,
        }
    }

    /// Adds a short explanation (no input bytes beyond a short excerpt).
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The explanation given with [`Rejection::with_detail`], if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.describe())?;
        if let Some(field) = self.field {
            write!(f, " in `{field}`")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let label = reason.as_str();
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
            assert!(seen.insert(label), "duplicate label {label}");
        }
    }

    #[test]
    fn display_names_the_field() {
        let rejection = Rejection::field(Reason::BadNumber, "bytes_sent")
            .with_detail("`-1` is not an unsigned integer");
        assert_eq!(
            rejection.to_string(),
            "number out of range in `bytes_sent`: `-1` is not an unsigned integer"
        );
    }
}
