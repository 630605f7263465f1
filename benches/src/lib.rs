//! Realistic bunny.net log streams for benchmarks, load tests and demos.
//!
//! Two ways to get accesses, one way to write them:
//!
//! - [`Generator`] draws an endless, deterministic stream (from a seed) of
//!   accesses that look like a CDN's: user agents weighted as real browsers
//!   are seen (the Intoli corpus, vendored in `testdata/agents/`) with a few
//!   per cent of crawlers, a Zipf-like skew over sites and over each site's
//!   paths, realistic extensions, statuses, cache statuses, referrers and
//!   countries, IPv4 and IPv6 clients anonymised as bunny.net does.
//! - [`apache::Rewriter`] turns real Apache or nginx combined-format lines
//!   (vendored in `testdata/access-logs/`) into the same [`Access`] shape.
//! - [`render`] writes an [`Access`] as a pipe or JSON body, wraps it in the
//!   RFC 5424 header bunny.net sends (with its UTF-8 BOM) and frames it by a
//!   line feed or by RFC 6587 octet counting.
//!
//! `ecstatic-loadgen` (in `src/bin/`) sends these streams to `ecstatic-ingest`;
//! the criterion benches in `benches/` parse them.

pub mod access;
pub mod agents;
pub mod apache;
pub mod generate;
pub mod render;

pub use access::{Access, RequestId};
pub use agents::{AgentPool, Crawler};
pub use generate::{Generator, GeneratorConfig};
pub use render::{BodyFormat, Framing};
