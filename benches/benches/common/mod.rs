//! What the parse and enrich benches share: generated messages, already
//! cut into frames, and the ingest side's name for a body format.

use bytes::{Bytes, BytesMut};
use ecstatic_benches::generate::stream;
use ecstatic_benches::{BodyFormat, Framing, GeneratorConfig};
use ecstatic_ingest::{Frame, SyslogDecoder};
use tokio_util::codec::Decoder;

/// About `bytes` of generated messages in `format` (seed 2, 200 sites),
/// decoded into frames.
pub fn messages(format: BodyFormat, bytes: usize) -> Vec<Bytes> {
    let config = GeneratorConfig {
        seed: 2,
        sites: 200,
        ..GeneratorConfig::default()
    };
    let (stream, _) = stream(config, format, Framing::Lf, false, bytes);
    let mut buf = BytesMut::from(&stream[..]);
    let mut decoder = SyslogDecoder::default();
    let mut messages = Vec::new();
    while let Some(frame) = decoder.decode_eof(&mut buf).expect("well framed") {
        if let Frame::Message(message) = frame {
            messages.push(message);
        }
    }
    messages
}

/// The ingest library's name for a generator's body format.
pub fn ingest_format(format: BodyFormat) -> ecstatic_ingest::BodyFormat {
    match format {
        BodyFormat::Pipe => ecstatic_ingest::BodyFormat::Pipe,
        BodyFormat::Json => ecstatic_ingest::BodyFormat::Json,
    }
}
