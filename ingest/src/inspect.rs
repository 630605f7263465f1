//! `ecstatic-ingest parse`: runs a stream through the intake's parser and
//! prints what would be stored.
//!
//! Input is a file or stdin in any framing the intake accepts (decoded by the
//! same [`SyslogDecoder`]). Each accepted record becomes one JSON object on
//! stdout, keyed by the `access_log` column names plus the raw fields
//! (`timestamp_ms`, `pull_zone_id`, `remote_ip`, `referer`, `url`,
//! `user_agent`). Where a raw field and a column share a name (`country`,
//! `status`, …) the key holds the column value; only `country` can differ
//! from the raw text (it is normalised). `visitor` uses a random key per run,
//! so it is comparable within one run only.
//!
//! Rejections are reported on stderr, one line each for the first
//! [`SHOWN_REJECTIONS`], then counted. The run ends with a summary on stderr:
//! `accepted: N`, `rejected: M` and one `rejected.<reason>: K` line per
//! reason seen. Exit status: 0 when every frame was accepted, 1 when some
//! were rejected (or the stream ended inside a frame), 2 when the input could
//! not be read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::BytesMut;
use clap::{Args, ValueEnum};
use ecstatic_store::AccessRowRef;
use serde::Serialize;
use tokio_util::codec::Decoder;

use crate::enrich::{Enricher, EnricherConfig};
use crate::framing::{DEFAULT_MAX_FRAME_BYTES, Frame, SyslogDecoder};
use crate::record::RawAccess;
use crate::reject::{Reason, Rejection};
use crate::{BodyFormat, parse_message};

/// Rejections printed one per line before the rest are only counted.
pub const SHOWN_REJECTIONS: u64 = 20;

/// Bytes read from the input at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Arguments of `ecstatic-ingest parse`.
#[derive(Debug, Clone, Args)]
pub struct ParseArgs {
    /// Body format: `auto` detects it per message (`{` starts JSON).
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// Largest message in bytes; longer frames are skipped and counted.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// File to read; `-` or nothing reads stdin.
    pub input: Option<PathBuf>,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Auto,
    Pipe,
    Json,
}

impl From<FormatArg> for BodyFormat {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Auto => BodyFormat::Auto,
            FormatArg::Pipe => BodyFormat::Pipe,
            FormatArg::Json => BodyFormat::Json,
        }
    }
}

/// Runs the command; see the module documentation for the output.
pub fn run(args: ParseArgs) -> ExitCode {
    let input: Box<dyn Read> = match args.input.as_deref() {
        None => Box::new(io::stdin().lock()),
        Some(path) if path.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(path) => match File::open(path) {
            Ok(file) => Box::new(file),
            Err(err) => {
                eprintln!("error: cannot open `{}`: {err}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let enricher = Enricher::new(EnricherConfig {
        ua_cache_capacity: 10_000,
        visitor_key: rand::random(),
    });
    let mut inspector = Inspector {
        enricher,
        format: args.format.into(),
        out: BufWriter::new(io::stdout().lock()),
        accepted: 0,
        rejected: BTreeMap::new(),
        frame_no: 0,
    };

    let outcome = inspector.read_all(input, SyslogDecoder::new(args.max_frame_bytes));
    inspector.summarise(outcome)
}

struct Inspector<W: Write> {
    enricher: Enricher,
    format: BodyFormat,
    out: W,
    accepted: u64,
    rejected: BTreeMap<Reason, u64>,
    /// Frames seen so far, counting from 1, for the rejection lines.
    frame_no: u64,
}

/// How reading ended.
enum Outcome {
    Complete,
    /// The stream ended inside a frame (the decoder's error).
    Truncated(io::Error),
    Unreadable(io::Error),
}

impl<W: Write> Inspector<W> {
    fn read_all(&mut self, mut input: impl Read, mut decoder: SyslogDecoder) -> Outcome {
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Outcome::Unreadable(err),
            };
            buf.extend_from_slice(&chunk[..n]);
            let decoded = if n == 0 {
                self.drain(&mut buf, |buf| decoder.decode_eof(buf))
            } else {
                self.drain(&mut buf, |buf| decoder.decode(buf))
            };
            if let Err(err) = decoded {
                return Outcome::Truncated(err);
            }
            if let Err(err) = self.out.flush() {
                return Outcome::Unreadable(err);
            }
            if n == 0 {
                return Outcome::Complete;
            }
        }
    }

    fn drain(
        &mut self,
        buf: &mut BytesMut,
        mut next: impl FnMut(&mut BytesMut) -> io::Result<Option<Frame>>,
    ) -> io::Result<()> {
        while let Some(frame) = next(buf)? {
            self.frame_no += 1;
            match frame {
                Frame::Message(bytes) => match parse_message(&bytes, self.format) {
                    Ok(raw) => self.accept(&raw),
                    Err(rejection) => self.reject(&rejection),
                },
                Frame::Oversize { bytes } => self.reject(
                    &Rejection::new(Reason::FrameTooLarge).with_detail(format!("{bytes} bytes")),
                ),
            }
        }
        Ok(())
    }

    fn accept(&mut self, raw: &RawAccess<'_>) {
        self.accepted += 1;
        let line = self.enricher.with_row(raw, |row| {
            serde_json::to_string(&OutputLine::new(raw, row)).unwrap_or_default()
        });
        // A closed stdout (`parse … | head`) is not worth a second error.
        let _ = writeln!(self.out, "{line}");
    }

    fn reject(&mut self, rejection: &Rejection) {
        let count = self.rejected.entry(rejection.reason).or_default();
        *count += 1;
        let total: u64 = self.rejected.values().sum();
        if total <= SHOWN_REJECTIONS {
            eprintln!(
                "frame {}: rejected ({}): {rejection}",
                self.frame_no, rejection.reason
            );
        } else if total == SHOWN_REJECTIONS + 1 {
            eprintln!("further rejections are counted, not shown");
        }
    }

    fn summarise(mut self, outcome: Outcome) -> ExitCode {
        let _ = self.out.flush();
        let rejected: u64 = self.rejected.values().sum();
        eprintln!("accepted: {}", self.accepted);
        eprintln!("rejected: {rejected}");
        for (reason, count) in &self.rejected {
            eprintln!("rejected.{reason}: {count}");
        }
        match outcome {
            Outcome::Unreadable(err) => {
                eprintln!("error: cannot read the input: {err}");
                ExitCode::from(2)
            }
            Outcome::Truncated(err) => {
                eprintln!("error: {err}");
                ExitCode::from(1)
            }
            Outcome::Complete if rejected > 0 => ExitCode::from(1),
            Outcome::Complete => ExitCode::SUCCESS,
        }
    }
}

/// One stdout line: raw fields, then the stored columns.
#[derive(Serialize)]
struct OutputLine<'a> {
    timestamp_ms: u64,
    pull_zone_id: u64,
    remote_ip: Option<IpAddr>,
    referer: &'a str,
    url: String,
    user_agent: &'a str,
    site_id: u64,
    time: u32,
    request_id: &'a str,
    status: u16,
    status_class: &'a str,
    bytes_sent: u64,
    cache_status: &'a str,
    edge_location: &'a str,
    host: &'a str,
    path: &'a str,
    referrer_host: &'a str,
    country: &'a str,
    browser: &'a str,
    os: &'a str,
    device: &'a str,
    file_type: &'a str,
    is_bot: u8,
    visitor: u64,
}

impl<'a> OutputLine<'a> {
    fn new(raw: &'a RawAccess<'_>, row: &AccessRowRef<'a>) -> Self {
        OutputLine {
            timestamp_ms: raw.timestamp_ms,
            pull_zone_id: raw.pull_zone_id,
            remote_ip: raw.remote_ip,
            referer: &raw.referer,
            url: raw.url(),
            user_agent: &raw.user_agent,
            site_id: row.site_id,
            time: row.time,
            request_id: row.request_id,
            status: row.status,
            status_class: row.status_class,
            bytes_sent: row.bytes_sent,
            cache_status: row.cache_status,
            edge_location: row.edge_location,
            host: row.host,
            path: row.path,
            referrer_host: row.referrer_host,
            country: row.country,
            browser: row.browser,
            os: row.os,
            device: row.device,
            file_type: row.file_type,
            is_bot: row.is_bot,
            visitor: row.visitor,
        }
    }
}
