//! Flags of `ecstatic-ingest serve`. Every flag also reads `ECSTATIC_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::{BodyFormat, DEFAULT_MAX_FRAME_BYTES};

/// Syslog address for both TCP and UDP (DESIGN.md's contracts).
const DEFAULT_SYSLOG: &str = "127.0.0.1:5140";

/// Receive the CDN's log stream and store it in ClickHouse.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Syslog over TCP: address to listen on, or `off`.
    #[arg(long, env = "ECSTATIC_TCP", default_value = DEFAULT_SYSLOG, value_parser = parse_listen)]
    pub tcp: Listen,

    /// Syslog over UDP: address to listen on, or `off`.
    #[arg(long, env = "ECSTATIC_UDP", default_value = DEFAULT_SYSLOG, value_parser = parse_listen)]
    pub udp: Listen,

    /// HTTP address for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ECSTATIC_HTTP", default_value = "127.0.0.1:9100")]
    pub http: SocketAddr,

    /// ClickHouse HTTP endpoint.
    #[arg(
        long,
        env = "ECSTATIC_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,

    /// ClickHouse database; created with the `access_log` table when missing.
    #[arg(long, env = "ECSTATIC_DATABASE", default_value = "ecstatic")]
    pub database: String,

    /// Directory for files this service keeps (the spool, unless
    /// `--spool-dir` says otherwise).
    #[arg(long, env = "ECSTATIC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Where batches wait on disk while ClickHouse is unreachable.
    /// Default: `<data-dir>/spool`.
    #[arg(long, env = "ECSTATIC_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Most bytes the spool may hold. A full spool holds further batches in
    /// memory, which stops reading from sockets: nothing is dropped.
    #[arg(long, env = "ECSTATIC_SPOOL_MAX_BYTES", default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,

    /// A site's batch is full at this many rows (a full batch flushes its
    /// batcher thread: every batch the thread holds goes out as one insert)...
    #[arg(long, env = "ECSTATIC_BATCH_ROWS", default_value_t = 100_000)]
    pub batch_rows: usize,

    /// ...or this many encoded bytes...
    #[arg(long, env = "ECSTATIC_BATCH_BYTES", default_value_t = 16 << 20)]
    pub batch_bytes: usize,

    /// ...and due when its oldest row has waited this long (milliseconds,
    /// less a little jitter), or a quarter of it once the input pauses.
    #[arg(long, env = "ECSTATIC_BATCH_AGE_MS", default_value_t = 2_000)]
    pub batch_age_ms: u64,

    /// Most encoded bytes held in memory between sockets and ClickHouse.
    /// When reached, connections stop reading until inserts catch up.
    #[arg(long, env = "ECSTATIC_MAX_BUFFER_BYTES", default_value_t = 128 << 20)]
    pub max_buffer_bytes: usize,

    /// Largest syslog frame accepted; longer frames are discarded and counted.
    #[arg(long, env = "ECSTATIC_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Body format of the stream: detected per message by default.
    #[arg(long, env = "ECSTATIC_FORMAT", value_enum, default_value = "auto")]
    pub format: FormatArg,

    /// Most TCP connections open at once; more are refused and counted.
    #[arg(long, env = "ECSTATIC_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Expect a PROXY protocol (v1 or v2) header on every TCP connection, and
    /// take the sender's address from it.
    #[arg(long, env = "ECSTATIC_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,

    /// Accept syslog only from these networks (comma-separated CIDRs, e.g.
    /// bunny.net's edge ranges). Default: from anywhere.
    #[arg(long, env = "ECSTATIC_ALLOW", value_delimiter = ',')]
    pub allow: Vec<IpNet>,

    /// Threads that group records into per-site batches and insert them.
    #[arg(long, env = "ECSTATIC_BATCHERS", default_value_t = 2)]
    pub batchers: usize,

    /// Distinct user agents whose classification is cached.
    #[arg(long, env = "ECSTATIC_UA_CACHE", default_value_t = 100_000)]
    pub ua_cache: usize,

    /// Key (32 hex digits) from which the daily visitor salt is derived. Set
    /// the same key on every replica; when absent a random key is drawn at
    /// start, so a restart splits a day's visitors in two.
    #[arg(long, env = "ECSTATIC_VISITOR_KEY", hide_env_values = true)]
    pub visitor_key: Option<VisitorKey>,

    /// A TCP connection that sends nothing for this long (seconds) is
    /// closed and counted (`reason="idle"`); senders reconnect when they
    /// have logs again.
    #[arg(long, env = "ECSTATIC_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub idle_timeout_secs: u64,

    /// On shutdown, how long connections may keep delivering what their
    /// peers already sent (milliseconds).
    #[arg(long, env = "ECSTATIC_DRAIN_MS", default_value_t = 5_000)]
    pub drain_ms: u64,
}

impl ServeArgs {
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spool"))
    }

    pub fn batch_age(&self) -> Duration {
        Duration::from_millis(self.batch_age_ms.max(1))
    }
}

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text.eq_ignore_ascii_case("off") || text.is_empty() {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|addr| Listen(Some(addr)))
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:5140, nor `off`"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Auto,
    Pipe,
    Json,
}

impl From<FormatArg> for BodyFormat {
    fn from(value: FormatArg) -> Self {
        match value {
            FormatArg::Auto => BodyFormat::Auto,
            FormatArg::Pipe => BodyFormat::Pipe,
            FormatArg::Json => BodyFormat::Json,
        }
    }
}

/// The visitor key; its `Debug` never shows the value.
#[derive(Clone)]
pub struct VisitorKey(pub [u8; 16]);

impl std::fmt::Debug for VisitorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorKey(<redacted>)")
    }
}

impl std::str::FromStr for VisitorKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || "the visitor key must be 32 hexadecimal digits".to_owned();
        if text.len() != 32 || !text.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(key))
    }
}
