//! `ecstatic-loadgen`: sends a bunny.net-style log stream to `ecstatic-ingest`.
//!
//! Sources: a file sent as it is (`--file`), a real Apache/nginx combined log
//! rewritten into bunny lines (`--apache`), or a generated stream
//! (`--generate`). Sinks: TCP over N connections, UDP (one datagram per
//! message), or a file or stdout (`--output`). At the end it prints what it
//! sent: one line of JSON on stdout (on stderr when stdout carries the
//! stream) and a line for people on stderr.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{ArgGroup, Parser, ValueEnum};
use ecstatic_benches::apache::{self, Rewriter};
use ecstatic_benches::render::{self, BodyFormat, Framing};
use ecstatic_benches::{Generator, GeneratorConfig};

/// Sends a bunny.net-style syslog stream to ecstatic-ingest.
#[derive(Debug, Parser)]
#[command(name = "ecstatic-loadgen", version)]
#[command(group(ArgGroup::new("source").required(true).args(["file", "apache", "generate"])))]
struct Args {
    /// Send this file's frames as they are (LF lines or octet-counted frames,
    /// told apart per frame), e.g. a bunny `.syslog` sample.
    #[arg(long, env = "ECSTATIC_FILE")]
    file: Option<PathBuf>,
    /// Rewrite this Apache/nginx combined-format log (`.gz` ok) into bunny
    /// lines and send them; lines that do not parse are counted as rejected.
    #[arg(long, env = "ECSTATIC_APACHE")]
    apache: Option<PathBuf>,
    /// Send a generated stream: endless unless `--count` or `--duration-secs`.
    #[arg(long, env = "ECSTATIC_GENERATE")]
    generate: bool,
    /// Stop after this many messages in all (file sources cycle until then).
    #[arg(long, env = "ECSTATIC_COUNT")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, env = "ECSTATIC_DURATION_SECS")]
    duration_secs: Option<f64>,
    /// Address of the syslog listener.
    #[arg(long, env = "ECSTATIC_TARGET", default_value = "127.0.0.1:5140")]
    target: SocketAddr,
    /// Send over UDP, one datagram per message, instead of TCP.
    #[arg(long, env = "ECSTATIC_UDP")]
    udp: bool,
    /// TCP framing [default: lf; for `--file`, the file's own framing].
    #[arg(long, env = "ECSTATIC_FRAMING", value_enum)]
    framing: Option<FramingArg>,
    /// Body format of rewritten and generated messages.
    #[arg(long, env = "ECSTATIC_FORMAT", value_enum, default_value = "pipe")]
    format: FormatArg,
    /// Messages per second in all, spread over the connections; flat out
    /// when absent.
    #[arg(long, env = "ECSTATIC_RATE")]
    rate: Option<f64>,
    /// Parallel TCP connections (or UDP sockets); each sends its share.
    #[arg(long, env = "ECSTATIC_CONNECTIONS", default_value_t = 1)]
    connections: u32,
    /// Number of sites (pull zones) the accesses are spread over.
    #[arg(long, env = "ECSTATIC_SITES", default_value_t = 20)]
    sites: u32,
    /// Pull-zone id of the first site.
    #[arg(long, env = "ECSTATIC_ZONE_BASE", default_value_t = 1000)]
    zone_base: u64,
    /// Seed of the generated stream; connection i uses `seed + i`.
    #[arg(long, env = "ECSTATIC_SEED", default_value_t = 0)]
    seed: u64,
    /// Log time of the first generated access (RFC 3339) [default: now].
    #[arg(long, env = "ECSTATIC_START")]
    start: Option<jiff::Timestamp>,
    /// Write the stream to this file (`-` for stdout) instead of a socket.
    #[arg(long, env = "ECSTATIC_OUTPUT")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FramingArg {
    Lf,
    Octet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Pipe,
    Json,
}

/// Why the load generator could not run.
#[derive(Debug, thiserror::Error)]
enum LoadgenError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open output `{path}`")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to `{target}`; is ecstatic-ingest listening there?")]
    Connect {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("`--{0}` must be positive")]
    NotPositive(&'static str),
    #[error("`{0}` holds no messages")]
    Empty(PathBuf),
}

/// Where a message's bytes go.
enum Sink {
    Tcp(TcpStream),
    Udp(UdpSocket),
    Writer(Box<dyn Write + Send>),
}

/// Counters shared by all connections.
#[derive(Default)]
struct Stats {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

/// Messages read from a file or rewritten from a log, kept in memory and
/// dealt out to the connections.
struct Frames {
    bytes: Vec<u8>,
    /// Per message: the frame as it was (with its LF or length prefix), and
    /// the message inside it.
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    rejected: u64,
}

/// What one connection sends.
enum Source {
    Generated {
        generator: Box<Generator>,
        format: BodyFormat,
    },
    Frames {
        frames: Arc<Frames>,
        next: usize,
        stride: usize,
        cycle: bool,
    },
}

/// How a connection frames what it sends.
#[derive(Clone, Copy)]
enum Wire {
    /// One datagram per message, no framing.
    Datagram,
    /// Frames as they were in the file.
    AsIs,
    Framed(Framing),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(error) => {
            let mut message = format!("ecstatic-loadgen: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs the load; `Ok(false)` when some messages could not be sent.
fn run(args: &Args) -> Result<bool, LoadgenError> {
    if args.connections == 0 {
        return Err(LoadgenError::NotPositive("connections"));
    }
    if args.sites == 0 {
        return Err(LoadgenError::NotPositive("sites"));
    }
    if args.rate.is_some_and(|rate| rate.is_nan() || rate <= 0.0) {
        return Err(LoadgenError::NotPositive("rate"));
    }
    let to_stdout = args
        .output
        .as_deref()
        .is_some_and(|path| path.as_os_str() == "-");
    let connections = if args.output.is_some() {
        1
    } else {
        args.connections
    };
    let frames = load_frames(args)?;
    let sinks = open_sinks(args, connections)?;

    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = args
        .duration_secs
        .map(|secs| started + Duration::from_secs_f64(secs));
    let mut workers = Vec::new();
    for (index, sink) in sinks.into_iter().enumerate() {
        let worker = Worker {
            source: source_for(args, frames.as_ref(), index, connections),
            sink,
            wire: wire_for(args),
            limit: share(args.count, index, connections),
            bucket: args
                .rate
                .map(|rate| TokenBucket::new(rate / f64::from(connections))),
            deadline,
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
            target: args.target,
        };
        workers.push(std::thread::spawn(move || worker.run()));
    }
    wait_or_interrupt(workers, &stop);

    let rejected = frames.as_ref().map_or(0, |frames| frames.rejected);
    report(&stats, started.elapsed(), rejected, to_stdout);
    Ok(stats.errors.load(Ordering::Relaxed) == 0)
}

/// Joins the workers; on Ctrl-C or SIGTERM asks them to stop first, so that
/// the summary still prints.
fn wait_or_interrupt(workers: Vec<std::thread::JoinHandle<()>>, stop: &AtomicBool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        for worker in workers {
            // A worker that panicked has already printed why.
            let _ = worker.join();
        }
        let _ = done_tx.send(());
    });
    runtime.block_on(async {
        tokio::select! {
            _ = &mut done_rx => {}
            _ = tokio::signal::ctrl_c() => {
                stop.store(true, Ordering::Relaxed);
                let _ = done_rx.await;
            }
        }
    });
}

fn report(stats: &Stats, elapsed: Duration, rejected: u64, to_stdout: bool) {
    let messages = stats.messages.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    let errors = stats.errors.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let summary = serde_json::json!({
        "messages": messages,
        "bytes": bytes,
        "elapsed_secs": (secs * 1000.0).round() / 1000.0,
        "messages_per_sec": (messages as f64 / secs).round(),
        "bytes_per_sec": (bytes as f64 / secs).round(),
        "errors": errors,
        "rejected": rejected,
    });
    if to_stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    eprintln!(
        "sent {messages} messages ({:.1} MB) in {secs:.2} s: {:.0} messages/s, {:.1} MB/s; \
         {errors} errors, {rejected} rejected input lines",
        bytes as f64 / 1e6,
        messages as f64 / secs,
        bytes as f64 / 1e6 / secs,
    );
}

/// This connection's share of `total`: the first `total % n` get one more.
fn share(total: Option<u64>, index: usize, connections: u32) -> Option<u64> {
    let total = total?;
    let n = u64::from(connections);
    Some(total / n + u64::from((index as u64) < total % n))
}

fn format_of(args: &Args) -> BodyFormat {
    match args.format {
        FormatArg::Pipe => BodyFormat::Pipe,
        FormatArg::Json => BodyFormat::Json,
    }
}

fn wire_for(args: &Args) -> Wire {
    match (args.udp && args.output.is_none(), args.framing) {
        (true, _) => Wire::Datagram,
        (false, Some(FramingArg::Lf)) => Wire::Framed(Framing::Lf),
        (false, Some(FramingArg::Octet)) => Wire::Framed(Framing::Octet),
        (false, None) if args.file.is_some() => Wire::AsIs,
        (false, None) => Wire::Framed(Framing::Lf),
    }
}

fn source_for(args: &Args, frames: Option<&Arc<Frames>>, index: usize, connections: u32) -> Source {
    if let Some(frames) = frames {
        return Source::Frames {
            frames: Arc::clone(frames),
            next: index,
            stride: connections as usize,
            cycle: args.count.is_some() || args.duration_secs.is_some(),
        };
    }
    let start = args.start.unwrap_or_else(jiff::Timestamp::now);
    let per_connection_rate = args.rate.unwrap_or(1000.0) / f64::from(connections);
    let config = GeneratorConfig {
        seed: args.seed.wrapping_add(index as u64),
        sites: args.sites,
        zone_base: args.zone_base,
        start_ms: start.as_millisecond(),
        accesses_per_sec: per_connection_rate,
        ..GeneratorConfig::default()
    };
    Source::Generated {
        generator: Box::new(Generator::new(config)),
        format: format_of(args),
    }
}

/// Reads `--file` or rewrites `--apache` into memory; `None` for `--generate`.
fn load_frames(args: &Args) -> Result<Option<Arc<Frames>>, LoadgenError> {
    let frames = if let Some(path) = &args.file {
        let bytes = std::fs::read(path).map_err(|source| LoadgenError::Read {
            path: path.clone(),
            source,
        })?;
        split_file(bytes)
    } else if let Some(path) = &args.apache {
        let text = apache::read_log(path).map_err(|source| LoadgenError::Read {
            path: path.clone(),
            source,
        })?;
        rewrite_log(&text, args)
    } else {
        return Ok(None);
    };
    if frames.spans.is_empty() {
        let path = args
            .file
            .clone()
            .or_else(|| args.apache.clone())
            .unwrap_or_default();
        return Err(LoadgenError::Empty(path));
    }
    Ok(Some(Arc::new(frames)))
}

/// Splits a file into frames, telling octet counting (`digits SP`) and LF
/// lines apart per frame, as ingest does. Empty lines are skipped; a CR
/// before an LF is not part of the message.
fn split_file(bytes: Vec<u8>) -> Frames {
    let mut spans = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if let Some((len, digits)) = octet_count(&bytes[at..]) {
            let message = at + digits + 1..(at + digits + 1 + len).min(bytes.len());
            spans.push((at..message.end, message.clone()));
            at = message.end;
            continue;
        }
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let mut message_end = end;
        if message_end > at && bytes[message_end - 1] == b'\r' {
            message_end -= 1;
        }
        if message_end > at {
            spans.push((at..(end + 1).min(bytes.len()), at..message_end));
        }
        at = end + 1;
    }
    Frames {
        bytes,
        spans,
        rejected: 0,
    }
}

/// The length and digit count of an RFC 6587 octet count at the start of
/// `bytes`, if there is one.
fn octet_count(bytes: &[u8]) -> Option<(usize, usize)> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || bytes.get(digits) != Some(&b' ') {
        return None;
    }
    let text = std::str::from_utf8(&bytes[..digits]).expect("ASCII digits");
    Some((text.parse().expect("at most 9 digits"), digits))
}

fn rewrite_log(text: &str, args: &Args) -> Frames {
    let mut rewriter = Rewriter::new(args.sites, args.zone_base, args.seed);
    let format = format_of(args);
    let mut bytes = Vec::with_capacity(text.len() * 2);
    let mut spans = Vec::new();
    for line in text.lines() {
        let start = bytes.len();
        match rewriter.rewrite(line) {
            Ok(access) => render::write_message(&access, format, false, 0, &mut bytes),
            Err(error) => {
                eprintln!("ecstatic-loadgen: skipping line: {error}");
                continue;
            }
        }
        spans.push((start..bytes.len(), start..bytes.len()));
    }
    Frames {
        bytes,
        spans,
        rejected: rewriter.rejected(),
    }
}

fn open_sinks(args: &Args, connections: u32) -> Result<Vec<Sink>, LoadgenError> {
    if let Some(path) = &args.output {
        let writer: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::File::create(path).map_err(|source| LoadgenError::Output {
                path: path.clone(),
                source,
            })?;
            Box::new(file)
        };
        return Ok(vec![Sink::Writer(writer)]);
    }
    let connect_error = |source| LoadgenError::Connect {
        target: args.target,
        source,
    };
    (0..connections)
        .map(|_| {
            if args.udp {
                let local: SocketAddr = if args.target.is_ipv4() {
                    ([127, 0, 0, 1], 0).into()
                } else {
                    (std::net::Ipv6Addr::LOCALHOST, 0).into()
                };
                let socket = UdpSocket::bind(local).map_err(connect_error)?;
                socket.connect(args.target).map_err(connect_error)?;
                Ok(Sink::Udp(socket))
            } else {
                let stream = TcpStream::connect(args.target).map_err(connect_error)?;
                Ok(Sink::Tcp(stream))
            }
        })
        .collect()
}

/// A token bucket: `per_sec` tokens a second, bursts of at most 50 ms worth.
struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_sec: f64) -> TokenBucket {
        let capacity = (per_sec * 0.05).max(1.0);
        TokenBucket {
            per_sec,
            capacity,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
    }
}

/// Bytes a connection gathers before writing them (fewer when rate-limited:
/// it writes whenever it has to wait).
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// One connection: its source, sink and limits.
struct Worker {
    source: Source,
    sink: Sink,
    wire: Wire,
    limit: Option<u64>,
    bucket: Option<TokenBucket>,
    deadline: Option<Instant>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    target: SocketAddr,
}

impl Worker {
    fn run(mut self) {
        let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES + 4096);
        let mut pending = 0u64;
        let mut produced = 0u64;
        loop {
            if self.stop.load(Ordering::Relaxed)
                || self.limit.is_some_and(|limit| produced >= limit)
                || self
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline)
            {
                break;
            }
            if let Some(wait) = self.bucket.as_mut().and_then(TokenBucket::take) {
                if !self.flush(&mut buf, &mut pending) {
                    return;
                }
                std::thread::sleep(wait);
                continue;
            }
            let start = buf.len();
            if !self.source.write(self.wire, &mut buf) {
                break;
            }
            produced += 1;
            pending += 1;
            if let Sink::Udp(socket) = &self.sink {
                self.send_datagram(socket, &buf[start..]);
                buf.clear();
                pending = 0;
            } else if buf.len() >= WRITE_BATCH_BYTES && !self.flush(&mut buf, &mut pending) {
                return;
            }
        }
        self.flush(&mut buf, &mut pending);
        if let Sink::Writer(writer) = &mut self.sink {
            let _ = writer.flush();
        }
    }

    fn send_datagram(&self, socket: &UdpSocket, datagram: &[u8]) {
        match socket.send(datagram) {
            Ok(_) => self.count_sent(1, datagram.len()),
            Err(_) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes the gathered messages; on a broken connection counts them as
    /// errors and reconnects. `false` when the sink is gone for good.
    fn flush(&mut self, buf: &mut Vec<u8>, pending: &mut u64) -> bool {
        if buf.is_empty() {
            return true;
        }
        let written = match &mut self.sink {
            Sink::Tcp(stream) => stream.write_all(buf),
            Sink::Writer(writer) => writer.write_all(buf),
            Sink::Udp(_) => unreachable!("datagrams are sent one by one"),
        };
        let ok = match written {
            Ok(()) => {
                self.count_sent(*pending, buf.len());
                true
            }
            Err(error) => {
                self.stats.errors.fetch_add(*pending, Ordering::Relaxed);
                eprintln!("ecstatic-loadgen: write failed, {pending} messages lost: {error}");
                self.reconnect()
            }
        };
        buf.clear();
        *pending = 0;
        ok
    }

    fn reconnect(&mut self) -> bool {
        if !matches!(self.sink, Sink::Tcp(_)) {
            return false;
        }
        for attempt in 0..5u32 {
            std::thread::sleep(Duration::from_millis(100) * 2u32.pow(attempt));
            if let Ok(stream) = TcpStream::connect(self.target) {
                self.sink = Sink::Tcp(stream);
                return true;
            }
        }
        eprintln!(
            "ecstatic-loadgen: `{}` unreachable, connection gives up",
            self.target
        );
        false
    }

    fn count_sent(&self, messages: u64, bytes: usize) {
        self.stats.messages.fetch_add(messages, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

impl Source {
    /// Appends the next message, framed for `wire`; `false` when exhausted.
    fn write(&mut self, wire: Wire, out: &mut Vec<u8>) -> bool {
        match self {
            Source::Generated { generator, format } => {
                match wire {
                    Wire::Datagram => generator.write_message(*format, out),
                    Wire::AsIs => generator.write_frame(*format, Framing::Lf, out),
                    Wire::Framed(framing) => generator.write_frame(*format, framing, out),
                }
                true
            }
            Source::Frames {
                frames,
                next,
                stride,
                cycle,
            } => {
                if *next >= frames.spans.len() {
                    if !*cycle {
                        return false;
                    }
                    *next %= frames.spans.len();
                }
                let (frame, message) = frames.spans[*next].clone();
                *next += *stride;
                match wire {
                    Wire::Datagram => out.extend_from_slice(&frames.bytes[message]),
                    Wire::AsIs => {
                        out.extend_from_slice(&frames.bytes[frame.clone()]);
                        // A last line without its LF must not run into the next.
                        if frame.end == message.end && !is_octet_frame(&frames.bytes[frame]) {
                            out.push(b'\n');
                        }
                    }
                    Wire::Framed(framing) => {
                        render::write_frame(&frames.bytes[message], framing, out);
                    }
                }
                true
            }
        }
    }
}

fn is_octet_frame(frame: &[u8]) -> bool {
    octet_count(frame).is_some()
}
