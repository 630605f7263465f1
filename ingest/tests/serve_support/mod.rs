//! Support for the `serve_*` tests: a real `ecstatic-ingest serve` process on
//! free loopback ports, its own ClickHouse database, and a TCP proxy in front
//! of ClickHouse that a test can take down, slow down or make lose answers.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn clickhouse_url() -> String {
    std::env::var("ECSTATIC_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// Runs `sql` on the test ClickHouse and returns its text answer.
pub async fn clickhouse(sql: &str) -> String {
    let client = reqwest::Client::new();
    let response = client
        .post(clickhouse_url())
        .body(sql.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ClickHouse at {} does not answer ({e}); run `scripts/clickhouse.sh start`",
                clickhouse_url()
            )
        });
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "ClickHouse refused `{sql}`: {text}");
    text
}

/// Drops the test's database so that it starts empty; ingest creates it.
pub async fn fresh_database(name: &str) -> String {
    clickhouse(&format!("DROP DATABASE IF EXISTS {name}")).await;
    name.to_owned()
}

pub async fn count_rows(database: &str) -> u64 {
    let exists = clickhouse(&format!("EXISTS TABLE {database}.access_log")).await;
    if exists.trim() != "1" {
        return 0;
    }
    clickhouse(&format!("SELECT count() FROM {database}.access_log"))
        .await
        .trim()
        .parse()
        .unwrap()
}

/// Waits until the table holds `expected` rows, and fails if it does not
/// within `limit` or holds more.
pub async fn wait_for_rows(database: &str, expected: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let rows = count_rows(database).await;
        assert!(
            rows <= expected,
            "{rows} rows stored, more than the {expected} sent"
        );
        if rows == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {rows} of {expected} rows arrived in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `series` on `ingest`'s `/metrics` reaches `at_least`.
pub async fn wait_for_metric(ingest: &Ingest, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = ingest.metric(series).await;
        if value >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port free for both TCP and UDP on 127.0.0.1.
pub fn free_port() -> u16 {
    loop {
        let tcp = StdTcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if StdUdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running `ecstatic-ingest serve`.
pub struct Ingest {
    child: Child,
    pub syslog: SocketAddr,
    pub http: SocketAddr,
    pub database: String,
    pub spool: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

pub struct IngestOptions<'a> {
    pub clickhouse_url: String,
    pub spool: Option<&'a Path>,
    pub args: Vec<String>,
}

impl Default for IngestOptions<'_> {
    fn default() -> Self {
        Self {
            clickhouse_url: clickhouse_url(),
            spool: None,
            args: Vec::new(),
        }
    }
}

impl Ingest {
    pub async fn start(database: &str) -> Self {
        Self::start_with(database, IngestOptions::default()).await
    }

    pub async fn start_with(database: &str, options: IngestOptions<'_>) -> Self {
        let port = free_port();
        let http_port = free_port();
        let syslog: SocketAddr = ([127, 0, 0, 1], port).into();
        let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
        let dir = match options.spool {
            Some(_) => None,
            None => Some(tempfile::tempdir().unwrap()),
        };
        let spool = options.spool.map_or_else(
            || dir.as_ref().unwrap().path().join("spool"),
            Path::to_owned,
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecstatic-ingest"))
            .arg("serve")
            .args(["--tcp", &syslog.to_string(), "--udp", &syslog.to_string()])
            .args(["--http", &http.to_string()])
            .args([
                "--clickhouse-url",
                &options.clickhouse_url,
                "--database",
                database,
            ])
            .arg("--spool-dir")
            .arg(&spool)
            .args(["--batch-age-ms", "300", "--drain-ms", "2000"])
            .args(&options.args)
            .env("ECSTATIC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting ecstatic-ingest");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[ingest] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let ingest = Self {
            child,
            syslog,
            http,
            database: database.to_owned(),
            spool,
            log,
            _dir: dir,
        };
        ingest.wait_listening().await;
        ingest
    }

    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{}/healthz", self.http);
        loop {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
                && TcpStream::connect(self.syslog).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ingest did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one series, such as
    /// `ingest_records_rejected_total{reason="bad_number"}`; 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    pub fn kill_hard(&mut self) -> ExitStatus {
        self.signal("KILL");
        self.wait()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit (at most 60 s).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ingest did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory of the process so far, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Sends `bytes` over one TCP connection and closes it.
pub async fn send_tcp(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// What the ClickHouse proxy does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Pass both ways.
    Forward = 0,
    /// Close at once, as if nothing listened.
    Refuse = 1,
    /// Pass the request, then close as soon as the answer starts: ClickHouse
    /// stored the rows, but the client never learns it.
    LoseAnswers = 2,
}

/// A TCP proxy in front of ClickHouse, controlled by the test.
pub struct ChProxy {
    pub url: String,
    mode: Arc<AtomicU8>,
    /// Bytes per second passed towards ClickHouse; 0 for no limit.
    rate: Arc<AtomicU64>,
}

impl ChProxy {
    pub async fn start() -> Self {
        let upstream: SocketAddr = clickhouse_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("ECSTATIC_TEST_CLICKHOUSE_URL must be http://IP:PORT for the proxy tests");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(ProxyMode::Forward as u8));
        let rate = Arc::new(AtomicU64::new(0));
        let (m, r) = (Arc::clone(&mode), Arc::clone(&rate));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy_one(client, upstream, Arc::clone(&m), Arc::clone(&r)));
            }
        });
        Self { url, mode, rate }
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::SeqCst);
    }
}

/// Relays one client connection. The mode is read again for every piece of
/// a request, so that a pooled keep-alive connection obeys a change too.
async fn proxy_one(
    client: TcpStream,
    upstream: SocketAddr,
    mode: Arc<AtomicU8>,
    rate: Arc<AtomicU64>,
) {
    let current = |mode: &AtomicU8| mode.load(Ordering::SeqCst);
    if current(&mode) == ProxyMode::Refuse as u8 {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set by the request side when the answer to what it forwards must be
    // lost; read by the answer side.
    let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (up_mode, up_lose) = (Arc::clone(&mode), Arc::clone(&lose));
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            match current(&up_mode) {
                m if m == ProxyMode::Refuse as u8 => break,
                m if m == ProxyMode::LoseAnswers as u8 => up_lose.store(true, Ordering::SeqCst),
                _ => {}
            }
            let limit = rate.load(Ordering::SeqCst);
            if limit > 0 {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / limit as f64)).await;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if lose.load(Ordering::SeqCst) || client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// One bunny access in pipe format behind an RFC 5424 header, LF-terminated;
/// request ids are unique per `(site_id, n)`.
pub fn pipe_line(site_id: u64, n: u64) -> String {
    let ms = 1_764_844_860_000 + n;
    format!(
        "<134>1 2025-12-04T10:41:00.000Z edge-1.b-cdn.net bunnycdn - - - \u{feff}\
         HIT|200|{ms}|{bytes}|{site_id}|203.0.113.{ip}|-|https://example.b-cdn.net/p/{n}.html|\
         DE|Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36|{site_id:016x}{n:016x}|DE\n",
        bytes = 1000 + n % 500,
        ip = n % 250,
    )
}
