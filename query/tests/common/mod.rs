//! Shared by the integration tests: a database of the test's own, seeded
//! rows, the real `ecstatic-query` binary on a free port, tokens, and plain
//! Rust reference answers computed from the seeded rows.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ecstatic_auth::{Claims, JwtKey, now_secs};
use ecstatic_store::{AccessRow, Store};

pub const SECRET: &str = "test secret for ecstatic-query, 32+ bytes long";

/// The site the seeded rows mostly belong to.
pub const SITE: u64 = 101;
/// A second site with a few rows, to prove one site never leaks into another.
pub const OTHER_SITE: u64 = 102;
/// A site the token names but that has no rows.
pub const EMPTY_SITE: u64 = 103;

pub fn clickhouse_url() -> String {
    std::env::var("ECSTATIC_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned())
}

/// Drops and recreates `database`, creates the schema and inserts `rows`.
pub async fn seed(database: &str, rows: &[AccessRow]) {
    let url = clickhouse_url();
    let store = Store::connect(&url, database).await.unwrap_or_else(|e| {
        panic!("ClickHouse at {url} does not answer ({e}); start it: scripts/clickhouse.sh start")
    });
    // The store's client is bound to `database`, which may not exist yet.
    let drop = format!("DROP DATABASE IF EXISTS `{database}`");
    store
        .client()
        .clone()
        .with_database("default")
        .query(&drop)
        .execute()
        .await
        .unwrap();
    store.migrate().await.expect("creating the schema");
    let mut insert = store
        .client()
        .insert::<AccessRow>("access_log")
        .await
        .unwrap();
    for row in rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
}

/// A running `ecstatic-query`, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts the binary on `database` with the test key and `extra` flags,
    /// and waits until `/readyz` answers 200.
    pub async fn start(database: &str, extra: &[&str]) -> Self {
        Self::start_on(&clickhouse_url(), database, extra).await
    }

    /// [`Server::start`] with ClickHouse at `clickhouse`.
    pub async fn start_on(clickhouse: &str, database: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ecstatic-query"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--clickhouse-url", clickhouse, "--database", database])
            .args(extra)
            .env("ECSTATIC_JWT_SECRET", SECRET)
            .env("ECSTATIC_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting ecstatic-query");
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ecstatic-query exited before it was ready: {status}");
            }
            let ready = self.http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ecstatic-query not ready after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ecstatic-query still runs 10 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with a token naming the three test sites.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .query(query)
            .bearer_auth(token(&[SITE, OTHER_SITE, EMPTY_SITE]))
            .send()
            .await
            .unwrap()
    }

    /// GET expecting 200 and JSON.
    pub async fn json(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let response = self.get(path, query).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{path} {query:?}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn token(sites: &[u64]) -> String {
    let key = JwtKey::new(SECRET.as_bytes()).unwrap();
    key.sign(&Claims {
        sub: "1".into(),
        exp: now_secs() + 600,
        sites: sites.to_vec(),
        readonly: true,
    })
}

/// Deterministic pseudo-random numbers (splitmix64): the dataset must be the
/// same on every run, and this needs no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Epoch seconds of an RFC 3339 instant.
pub fn at(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// One row at `time`, its other columns drawn from small pools so that
/// every dimension has several values and several rows per value.
pub fn row(rng: &mut Rng, site_id: u64, time: i64) -> AccessRow {
    const PATHS: &[&str] = &[
        "/",
        "/",
        "/blog/",
        "/blog/it's",
        "/blog/a,b",
        "/about",
        "/img/logo.png",
        "/app.js",
        "/style.css",
        "/feed.xml",
    ];
    let path = rng.pick(PATHS);
    let file_type = match path {
        "/img/logo.png" => "image",
        "/app.js" => "script",
        "/style.css" => "style",
        "/feed.xml" => "feed",
        _ => "page",
    };
    let status = [200, 200, 200, 200, 304, 404, 500, 301, 206][rng.below(9) as usize];
    let device = rng.pick(&["desktop", "desktop", "mobile", "tablet", "bot"]);
    AccessRow {
        site_id,
        time: time as u32,
        request_id: format!("{:016x}", rng.next()),
        status,
        status_class: format!("{}xx", status / 100),
        bytes_sent: rng.below(100_000),
        cache_status: rng.pick(&["HIT", "HIT", "MISS", "EXPIRED"]).to_owned(),
        edge_location: rng.pick(&["DE", "FR", "NY", "SG"]).to_owned(),
        host: "example.com".to_owned(),
        path: path.to_owned(),
        referrer_host: rng
            .pick(&["", "", "google.com", "news.ycombinator.com"])
            .to_owned(),
        country: rng.pick(&["DE", "US", "IN", "FR", ""]).to_owned(),
        browser: rng
            .pick(&["Chrome", "Firefox", "Safari", "Other"])
            .to_owned(),
        os: rng
            .pick(&["Windows", "Mac OS X", "Android", "iOS", "Linux"])
            .to_owned(),
        device: device.to_owned(),
        file_type: file_type.to_owned(),
        is_bot: u8::from(device == "bot"),
        visitor: rng.below(150),
    }
}

/// Rows of [`SITE`]: dense around each 2024 DST change of Berlin and New
/// York, thin over the rest of 2024, plus a few of [`OTHER_SITE`].
pub fn dataset() -> Vec<AccessRow> {
    let mut rng = Rng::new(4);
    let mut rows = Vec::new();
    let dense = [
        "2024-03-10T07:00:00Z", // New York springs forward
        "2024-03-31T01:00:00Z", // Berlin springs forward
        "2024-10-27T01:00:00Z", // Berlin falls back
        "2024-11-03T06:00:00Z", // New York falls back
    ];
    for change in dense {
        let center = at(change);
        for _ in 0..600 {
            let t = center - 3 * 86_400 + rng.below(6 * 86_400) as i64;
            rows.push(row(&mut rng, SITE, t));
        }
        // Rows exactly on the change and one second before it.
        rows.push(row(&mut rng, SITE, center));
        rows.push(row(&mut rng, SITE, center - 1));
    }
    let (start, end) = (at("2024-01-01T00:00:00Z"), at("2025-01-01T00:00:00Z"));
    for _ in 0..1_500 {
        let t = start + rng.below((end - start) as u64) as i64;
        rows.push(row(&mut rng, SITE, t));
    }
    for _ in 0..200 {
        let t = start + rng.below((end - start) as u64) as i64;
        rows.push(row(&mut rng, OTHER_SITE, t));
    }
    rows
}

/// A filter as the API takes it, and the same as a Rust predicate.
pub struct Filter {
    pub query: Vec<(&'static str, &'static str)>,
    pub keep: fn(&AccessRow) -> bool,
}

/// The default filter (`bots=exclude`) and one case of each filter.
pub fn filters() -> Vec<Filter> {
    fn f(query: &[(&'static str, &'static str)], keep: fn(&AccessRow) -> bool) -> Filter {
        Filter {
            query: query.to_vec(),
            keep,
        }
    }
    vec![
        f(&[], |r| r.is_bot == 0),
        f(&[("bots", "include")], |_| true),
        f(&[("bots", "only")], |r| r.is_bot == 1),
        f(&[("path", "/blog/it's")], |r| {
            r.is_bot == 0 && r.path == "/blog/it's"
        }),
        f(&[("path", "/blog/*")], |r| {
            r.is_bot == 0 && r.path.starts_with("/blog/")
        }),
        f(&[("country", "DE")], |r| r.is_bot == 0 && r.country == "DE"),
        f(&[("status_class", "4xx")], |r| {
            r.is_bot == 0 && r.status_class == "4xx"
        }),
        f(&[("file_type", "image")], |r| {
            r.is_bot == 0 && r.file_type == "image"
        }),
        f(
            &[
                ("bots", "include"),
                ("file_type", "page"),
                ("country", "US"),
            ],
            |r| r.file_type == "page" && r.country == "US",
        ),
    ]
}

pub const METRICS: [&str; 4] = ["requests", "pageviews", "visitors", "bandwidth"];

pub const DIMENSIONS: [&str; 11] = [
    "path",
    "referrer_host",
    "country",
    "browser",
    "os",
    "device",
    "file_type",
    "status",
    "status_class",
    "cache_status",
    "edge_location",
];

/// A page view as the README defines it, written out independently.
pub fn is_pageview(r: &AccessRow) -> bool {
    r.is_bot == 0 && r.file_type == "page" && (matches!(r.status, 200..=299) || r.status == 304)
}

/// `metric` over `rows`.
pub fn measure<'a>(metric: &str, rows: impl IntoIterator<Item = &'a AccessRow>) -> u64 {
    let rows: Vec<&AccessRow> = rows.into_iter().collect();
    match metric {
        "requests" => rows.len() as u64,
        "pageviews" => rows.iter().filter(|r| is_pageview(r)).count() as u64,
        "visitors" => rows.iter().map(|r| r.visitor).collect::<HashSet<_>>().len() as u64,
        "bandwidth" => rows.iter().map(|r| r.bytes_sent).sum(),
        other => panic!("unknown metric {other}"),
    }
}

/// The column a dimension reads, as text.
pub fn dimension_value(r: &AccessRow, dimension: &str) -> String {
    match dimension {
        "path" => r.path.clone(),
        "referrer_host" => r.referrer_host.clone(),
        "country" => r.country.clone(),
        "browser" => r.browser.clone(),
        "os" => r.os.clone(),
        "device" => r.device.clone(),
        "file_type" => r.file_type.clone(),
        "status" => r.status.to_string(),
        "status_class" => r.status_class.clone(),
        "cache_status" => r.cache_status.clone(),
        "edge_location" => r.edge_location.clone(),
        other => panic!("unknown dimension {other}"),
    }
}

/// The expected breakdown: keys with their metric over the rows that count
/// for it (page views only, for `pageviews`), largest first, ties by key.
pub fn expected_breakdown(
    rows: &[&AccessRow],
    dimension: &str,
    metric: &str,
) -> Vec<(String, u64)> {
    let mut groups: BTreeMap<String, Vec<&AccessRow>> = BTreeMap::new();
    for r in rows
        .iter()
        .copied()
        .filter(|r| metric != "pageviews" || is_pageview(r))
    {
        groups
            .entry(dimension_value(r, dimension))
            .or_default()
            .push(r);
    }
    let mut out: Vec<(String, u64)> = groups
        .into_iter()
        .map(|(k, rs)| (k, measure(metric, rs)))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The `rows` of a breakdown answer as pairs.
pub fn answer_rows(answer: &serde_json::Value) -> Vec<(String, u64)> {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["value"].as_u64().unwrap(),
            )
        })
        .collect()
}
