//! Ecstatic ingest: turns bunny.net's syslog log stream into stored rows.
//!
//! The parsing core, in the order bytes meet it:
//!
//! 1. [`framing`]: a [`tokio_util::codec::Decoder`] that cuts the TCP stream
//!    into syslog messages (octet counting or LF, per frame), without copying;
//! 2. [`syslog`]: finds the body behind an RFC 5424 or RFC 3164 header, or
//!    takes a header-less line as the body;
//! 3. [`bunny`]: parses the body (pipe or JSON format) into a [`RawAccess`]
//!    that borrows from the frame, and validates it;
//! 4. [`enrich`]: builds the stored row (`ecstatic_store::AccessRowRef`).
//!
//! A frame that does not become a record gives a [`Rejection`] whose
//! [`Reason`] is the metrics label. [`inspect`] is the `parse` command.

pub mod bunny;
pub mod enrich;
pub mod framing;
pub mod inspect;
pub mod record;
pub mod reject;
mod scan;
pub mod serve;
pub mod syslog;

pub use bunny::BodyFormat;
pub use enrich::{Enricher, EnricherConfig};
pub use framing::{DEFAULT_MAX_FRAME_BYTES, Frame, SyslogDecoder};
pub use record::RawAccess;
pub use reject::{Reason, Rejection};

/// Parses one framed message: the syslog header (RFC 5424, RFC 3164 or
/// none), then the body in `format`.
///
/// The record borrows from `frame`; nothing is copied for valid UTF-8
/// bodies without JSON escapes.
#[inline]
pub fn parse_message(frame: &[u8], format: BodyFormat) -> Result<RawAccess<'_>, Rejection> {
    let (_, body) = syslog::split_frame(frame)?;
    bunny::parse_body(body, format)
}
