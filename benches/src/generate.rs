//! A deterministic, endless stream of realistic CDN accesses.
//!
//! What depends on what, so that several generators (one per loadgen
//! connection, each with its own seed) describe the same world:
//!
//! - a site's host name and its catalogue of paths depend on the pull-zone id
//!   alone;
//! - a visitor's address, agent and country depend on the visitor number
//!   alone;
//! - the seed drives which site, path and visitor each access picks, its
//!   timing, status and cache status, and the request ids.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::access::{Access, RequestId};
use crate::agents::AgentPool;
use crate::render::{self, BodyFormat, Framing};

/// How a [`Generator`]'s world looks.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed of every random choice; the same seed gives the same stream.
    pub seed: u64,
    /// Number of sites; their popularity falls off as 1/rank (Zipf, s = 1).
    pub sites: u32,
    /// Pull-zone id of the most popular site; the others follow it.
    pub zone_base: u64,
    /// Time of the first access, milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Simulated traffic: accesses per second of log time (the timestamps
    /// advance by this, however fast the stream is produced).
    pub accesses_per_sec: f64,
    /// Share of accesses made by crawlers and HTTP libraries, 0 to 1.
    pub crawler_share: f64,
    /// Share of visitors with an IPv6 address, 0 to 1.
    pub ipv6_share: f64,
    /// Number of distinct human visitors (address + agent pairs).
    pub visitors: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            sites: 20,
            zone_base: 1000,
            // 2024-12-04T13:00:00Z, near the bunny samples' time.
            start_ms: 1_733_317_200_000,
            accesses_per_sec: 1000.0,
            crawler_share: 0.04,
            ipv6_share: 0.15,
            visitors: 50_000,
        }
    }
}

/// Distinct paths per site: enough for a realistic long tail.
const PATH_RANKS: usize = 5000;

/// Zipf exponent of path popularity: a home page and a few assets take much
/// of the traffic, as on real sites.
const PATH_ZIPF_S: f64 = 1.1;

/// What kind of resource a path names; drives sizes, statuses and queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Page,
    Image,
    Script,
    Style,
    Font,
    Document,
    Archive,
    Media,
    Feed,
    Data,
    Probe,
}

/// Generates accesses; see the module docs for what the seed decides.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    rng: SmallRng,
    agents: &'static AgentPool,
    hosts: Vec<String>,
    site_index: WeightedIndex<f64>,
    path_index: WeightedIndex<f64>,
    /// Log time of the latest access, ms (fractional: gaps are sub-ms).
    clock_ms: f64,
    /// Accesses generated so far; the low half of the request id.
    count: u64,
    /// High half of every request id: distinct seeds give distinct halves.
    id_high: u64,
    path: String,
    referer: String,
    /// Visitors met so far, by number: deriving one costs a seeded RNG and a
    /// weighted draw, far more than the lookup.
    visitors: Vec<Option<Client>>,
}

impl Generator {
    /// A generator over the embedded Intoli agents.
    ///
    /// # Panics
    /// When `config.sites` or `config.visitors` is zero.
    pub fn new(config: GeneratorConfig) -> Generator {
        assert!(
            config.sites > 0 && config.visitors > 0,
            "sites and visitors must be positive"
        );
        let site_weights = (0..config.sites).map(|rank| 1.0 / f64::from(rank + 1));
        let path_weights = (0..PATH_RANKS).map(|rank| 1.0 / ((rank + 1) as f64).powf(PATH_ZIPF_S));
        let hosts = (0..u64::from(config.sites))
            .map(|rank| site_host(config.zone_base + rank))
            .collect();
        Generator {
            rng: SmallRng::seed_from_u64(config.seed),
            agents: AgentPool::intoli(),
            hosts,
            site_index: WeightedIndex::new(site_weights).expect("site weights are positive"),
            path_index: WeightedIndex::new(path_weights).expect("path weights are positive"),
            clock_ms: config.start_ms as f64,
            count: 0,
            id_high: mix64(config.seed),
            path: String::with_capacity(128),
            referer: String::with_capacity(128),
            visitors: vec![None; config.visitors as usize],
            config,
        }
    }

    /// Accesses generated so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The host names of the sites, most popular first; the pull-zone id of
    /// `hosts()[i]` is `zone_base + i`.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The next access. Its text borrows from the generator.
    pub fn next_access(&mut self) -> Access<'_> {
        let rng = &mut self.rng;
        let site = self.site_index.sample(rng);
        let zone = self.config.zone_base + site as u64;
        let gap_ms = -(1.0 - rng.random::<f64>()).ln() * 1000.0 / self.config.accesses_per_sec;
        self.clock_ms += gap_ms;
        // Edges batch their lines, so log times run up to 2 s out of order.
        let timestamp_ms = self.clock_ms as i64 - rng.random_range(0..2000);

        let crawler = rng.random_bool(self.config.crawler_share);
        let client = if crawler {
            let crawler = self.agents.crawler(rng);
            Client {
                ip: IpAddr::V4(crawler.address()),
                user_agent: crawler.user_agent,
                country: "US",
            }
        } else {
            let visitor = rng.random_range(0..self.config.visitors);
            let (agents, ipv6_share) = (self.agents, self.config.ipv6_share);
            *self.visitors[visitor as usize]
                .get_or_insert_with(|| visitor_client(agents, visitor, ipv6_share))
        };

        // Crawlers walk the whole catalogue; people follow popularity.
        let rank = if crawler {
            rng.random_range(0..PATH_RANKS)
        } else {
            self.path_index.sample(rng)
        };
        let path_hash = mix64(zone.wrapping_mul(1_000_003) ^ rank as u64);
        self.path.clear();
        let kind = write_path(rank, path_hash, &mut self.path);
        write_query(kind, rng, &mut self.path);

        let status = pick_status(kind, rng);
        let cache_status = pick_cache_status(status, rng);
        let body_bytes_sent = body_bytes(kind, status, path_hash, rng);
        let bytes_sent = body_bytes_sent + rng.random_range(180..480);
        let host = &self.hosts[site];
        self.referer.clear();
        write_referer(kind, crawler, host, rng, &mut self.referer);

        let (edge_location, server_id) = pick_edge(client.country, rng);
        self.count += 1;
        Access {
            cache_status,
            status,
            timestamp_ms,
            bytes_sent,
            body_bytes_sent,
            pull_zone_id: zone,
            remote_ip: client.ip,
            referer: &self.referer,
            scheme: if rng.random_bool(0.97) {
                "https"
            } else {
                "http"
            },
            host,
            path_and_query: &self.path,
            protocol: pick(rng, &[("HTTP/2", 70), ("HTTP/1.1", 20), ("HTTP/3", 10)]),
            edge_location,
            server_id,
            user_agent: client.user_agent,
            request_id: request_id(self.id_high, self.count),
            country: client.country,
            header_range: if status == 206 { "bytes=0-" } else { "" },
        }
    }

    /// Appends the next access to `out` as a framed syslog message.
    pub fn write_frame(&mut self, format: BodyFormat, framing: Framing, out: &mut Vec<u8>) {
        self.write_frame_escaped(format, framing, false, out);
    }

    /// Like [`Generator::write_frame`]; with `escape_solidus` the JSON body
    /// writes every `/` as `\/`.
    pub fn write_frame_escaped(
        &mut self,
        format: BodyFormat,
        framing: Framing,
        escape_solidus: bool,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let delay_ms = self.rng.random_range(20..1500);
        let access = self.next_access();
        render::write_message(&access, format, escape_solidus, delay_ms, out);
        render::frame_in_place(out, start, framing);
    }

    /// Appends the next access as a bare message (syslog header and body,
    /// no framing), as one UDP datagram carries it.
    pub fn write_message(&mut self, format: BodyFormat, out: &mut Vec<u8>) {
        let delay_ms = self.rng.random_range(20..1500);
        let access = self.next_access();
        render::write_message(&access, format, false, delay_ms, out);
    }
}

/// A stream of framed messages of at least `min_bytes`, and how many
/// messages it holds. Benches parse it.
pub fn stream(
    config: GeneratorConfig,
    format: BodyFormat,
    framing: Framing,
    escape_solidus: bool,
    min_bytes: usize,
) -> (Vec<u8>, u64) {
    let mut generator = Generator::new(config);
    let mut out = Vec::with_capacity(min_bytes + 4096);
    while out.len() < min_bytes {
        generator.write_frame_escaped(format, framing, escape_solidus, &mut out);
    }
    (out, generator.count())
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub(crate) ip: IpAddr,
    pub(crate) user_agent: &'static str,
    pub(crate) country: &'static str,
}

/// A human visitor, the same for a given number in every generator.
pub(crate) fn visitor_client(agents: &'static AgentPool, visitor: u32, ipv6_share: f64) -> Client {
    let mut rng = SmallRng::seed_from_u64(mix64(u64::from(visitor) ^ 0x5157_4f52));
    let user_agent = agents.browser(&mut rng);
    let country = pick(&mut rng, COUNTRIES);
    let ip = if rng.random_bool(ipv6_share) {
        // Global unicast, cut to the /64 as bunny.net anonymises it.
        let prefix: [u16; 4] = [
            0x2000 | rng.random_range(0..0x1fff),
            rng.random(),
            rng.random(),
            rng.random(),
        ];
        IpAddr::V6(Ipv6Addr::new(
            prefix[0], prefix[1], prefix[2], prefix[3], 0, 0, 0, 0,
        ))
    } else {
        let first = loop {
            let octet = rng.random_range(1..224u8);
            if octet != 10 && octet != 127 {
                break octet;
            }
        };
        IpAddr::V4(Ipv4Addr::new(first, rng.random(), rng.random(), 0))
    };
    Client {
        ip,
        user_agent,
        country,
    }
}

/// Countries weighted roughly as a global audience; `""` is unknown.
pub(crate) const COUNTRIES: &[(&str, u32)] = &[
    ("US", 220),
    ("DE", 80),
    ("IN", 60),
    ("GB", 60),
    ("FR", 50),
    ("BR", 40),
    ("CA", 30),
    ("JP", 30),
    ("NL", 30),
    ("ES", 20),
    ("IT", 20),
    ("PL", 20),
    ("AU", 20),
    ("RU", 20),
    ("CN", 20),
    ("MX", 20),
    ("ID", 20),
    ("SE", 10),
    ("KR", 10),
    ("TR", 10),
    ("UA", 10),
    ("CH", 10),
    ("AT", 10),
    ("BE", 10),
    ("VN", 10),
    ("ZA", 10),
    ("NG", 10),
    ("AR", 10),
    ("", 20),
];

/// The edge location serving a country, and an edge server id.
pub(crate) fn pick_edge(country: &str, rng: &mut SmallRng) -> (&'static str, u32) {
    let edges: &[&str] = match country {
        "US" | "MX" => &["NY", "LA", "DA", "CH", "MI", "SE"],
        "CA" => &["TO", "NY"],
        "BR" | "AR" => &["BR"],
        "DE" | "AT" | "CH" | "PL" | "UA" | "RU" | "TR" => &["DE"],
        "FR" | "ES" | "IT" | "BE" => &["FR", "ES", "IT"],
        "GB" => &["UK"],
        "NL" | "SE" => &["NL", "SE"],
        "IN" => &["IN"],
        "JP" | "KR" | "CN" => &["JP", "HK", "KR"],
        "AU" => &["SY"],
        "ZA" | "NG" => &["ZA"],
        _ => &["SG", "DE", "NY"],
    };
    let edge = edges[rng.random_range(0..edges.len())];
    (edge, rng.random_range(0..64))
}

/// A site's host: a custom domain, or the pull zone's own `b-cdn.net` name.
pub(crate) fn site_host(zone: u64) -> String {
    const NAMES: &[&str] = &[
        "blog",
        "docs",
        "shop",
        "news",
        "photos",
        "portfolio",
        "wiki",
        "recipes",
        "travel",
        "music",
        "games",
        "status",
        "labs",
        "studio",
        "garden",
        "notes",
    ];
    let hash = mix64(zone);
    let name = NAMES[(hash % NAMES.len() as u64) as usize];
    match (hash >> 8) % 4 {
        0 => format!("{name}-{zone}.b-cdn.net"),
        1 => format!("www.{name}{zone}.example.org"),
        _ => format!("{name}.site{zone}.example.com"),
    }
}

const SECTIONS: &[&str] = &[
    "blog", "posts", "docs", "guides", "news", "products", "about", "en",
];
const WORDS: &[&str] = &[
    "hello-world",
    "getting-started",
    "release-notes",
    "pricing",
    "install",
    "faq",
    "contact",
    "rust-async",
    "caf%C3%A9-menu",
    "spring-sale",
    "team",
    "changelog",
    "how-we-built-it",
    "api-reference",
    "benchmarks",
    "privacy",
    "terms",
    "careers",
    "a-long-title-for-seo-purposes",
    "%E6%97%A5%E6%9C%AC",
    "summer",
    "winter",
    "2024-recap",
    "tips",
    "roadmap",
];

/// Writes the path of rank `rank` of a site (`hash` is derived from the zone
/// and the rank) and says what kind of resource it is.
fn write_path(rank: usize, hash: u64, out: &mut String) -> Kind {
    let word = |shift: u32| WORDS[((hash >> shift) % WORDS.len() as u64) as usize];
    let section = SECTIONS[((hash >> 40) % SECTIONS.len() as u64) as usize];
    let short = hash >> 32 & 0xffff_ffff;
    let (w1, w2) = (word(8), word(16));
    let kind = match rank {
        0 => {
            out.push('/');
            return Kind::Page;
        }
        1 => {
            out.push_str("/favicon.ico");
            return Kind::Image;
        }
        _ => hash % 100,
    };
    let written = match kind {
        0..40 => match hash >> 24 & 3 {
            0 => write!(out, "/{section}/{w1}/"),
            1 => write!(out, "/{section}/{w1}.html"),
            2 => write!(out, "/{section}/{}/{w1}", 2015 + (hash >> 28) % 11),
            _ => write!(out, "/{w1}-{w2}"),
        },
        40..65 => {
            let ext =
                ["jpg", "png", "webp", "svg", "gif", "avif", "jpeg"][(hash >> 20) as usize % 7];
            write!(out, "/assets/img/{w1}-{}.{ext}", short % 1000)
        }
        65..75 => write!(out, "/static/js/{w2}.{short:08x}.js"),
        75..82 => write!(out, "/static/css/{w2}.{short:08x}.css"),
        82..85 => {
            let ext = ["woff2", "woff", "ttf", "otf"][(hash >> 20) as usize % 4];
            write!(
                out,
                "/fonts/inter-{}.{ext}",
                ["regular", "bold", "italic"][short as usize % 3]
            )
        }
        85..88 => write!(out, "/files/{w1}.pdf"),
        88..89 => write!(out, "/downloads/{w1}-{}.{}.zip", short % 9, short % 20),
        89..91 => write!(
            out,
            "/media/{w1}.{}",
            ["mp4", "webm", "mp3", "m4a"][short as usize % 4]
        ),
        91..93 => write!(
            out,
            "/{section}/{}",
            ["index.xml", "feed.xml", "rss", "atom.xml"][short as usize % 4]
        ),
        93..96 => write!(out, "/api/{w1}.json"),
        _ => {
            let probe = [
                "/wp-login.php",
                "/.env",
                "/sitemap.xml",
                "/robots.txt",
                "/ads.txt",
                "/.well-known/security.txt",
                "/site.webmanifest",
                "/xmlrpc.php",
            ];
            out.push_str(probe[short as usize % probe.len()]);
            Ok(())
        }
    };
    written.expect("writing to a String cannot fail");
    match kind {
        0..40 => Kind::Page,
        40..65 => Kind::Image,
        65..75 => Kind::Script,
        75..82 => Kind::Style,
        82..85 => Kind::Font,
        85..88 => Kind::Document,
        88..89 => Kind::Archive,
        89..91 => Kind::Media,
        91..93 => Kind::Feed,
        93..96 => Kind::Data,
        _ => Kind::Probe,
    }
}

/// Appends a query string to some accesses: campaign tags on pages, image
/// widths, cache-busting versions on assets.
fn write_query(kind: Kind, rng: &mut SmallRng, out: &mut String) {
    let written = match kind {
        Kind::Page if rng.random_bool(0.10) => match rng.random_range(0..5) {
            0 => write!(
                out,
                "?utm_source=newsletter&utm_medium=email&utm_campaign=w{}",
                rng.random_range(1..53)
            ),
            1 => write!(out, "?page={}", rng.random_range(2..20)),
            2 => write!(out, "?ref=producthunt"),
            3 => write!(out, "?q=rust+syslog+%22fast%22"),
            _ => write!(out, "?fbclid=IwAR{:016x}", rng.random::<u64>()),
        },
        Kind::Image if rng.random_bool(0.15) => {
            write!(
                out,
                "?w={}&q=80",
                [320, 640, 1280, 1920][rng.random_range(0..4)]
            )
        }
        Kind::Script | Kind::Style if rng.random_bool(0.3) => {
            write!(out, "?v={:06x}", rng.random_range(0..0x100_0000))
        }
        _ => Ok(()),
    };
    written.expect("writing to a String cannot fail");
}

fn pick_status(kind: Kind, rng: &mut SmallRng) -> u16 {
    let table: &[(u16, u32)] = match kind {
        Kind::Page | Kind::Feed | Kind::Data => &[
            (200, 820),
            (304, 80),
            (404, 40),
            (301, 30),
            (302, 10),
            (403, 5),
            (500, 5),
            (502, 5),
            (503, 5),
        ],
        Kind::Media => &[(200, 500), (206, 400), (304, 80), (404, 15), (416, 5)],
        Kind::Probe => &[(404, 700), (200, 200), (403, 80), (301, 20)],
        _ => &[(200, 700), (304, 260), (404, 30), (500, 5), (503, 5)],
    };
    pick(rng, table)
}

fn pick_cache_status(status: u16, rng: &mut SmallRng) -> &'static str {
    let table: &[(&'static str, u32)] = match status {
        200..300 => &[
            ("HIT", 780),
            ("MISS", 140),
            ("EXPIRED", 20),
            ("STALE", 10),
            ("UPDATING", 10),
            ("BYPASS", 20),
            ("REVALIDATED", 20),
        ],
        304 => &[("HIT", 700), ("REVALIDATED", 300)],
        500.. => &[("MISS", 700), ("BYPASS", 300)],
        _ => &[("HIT", 500), ("MISS", 500)],
    };
    pick(rng, table)
}

/// Body size: stable per path for full answers (log-uniform in the kind's
/// range), small for errors and revalidations.
fn body_bytes(kind: Kind, status: u16, path_hash: u64, rng: &mut SmallRng) -> u64 {
    let (low, high): (f64, f64) = match (status, kind) {
        (304, _) => return 0,
        (301 | 302, _) => return rng.random_range(150..300),
        (400.., _) => return rng.random_range(300..1500),
        (_, Kind::Page) => (2e3, 8e4),
        (_, Kind::Image) => (3e3, 6e5),
        (_, Kind::Script) => (2e3, 4e5),
        (_, Kind::Style) => (1e3, 1.2e5),
        (_, Kind::Font) => (1.5e4, 1.2e5),
        (_, Kind::Document) => (5e4, 5e6),
        (_, Kind::Archive) => (1e5, 5e7),
        (_, Kind::Media) => (2e5, 2e7),
        (_, Kind::Feed) => (5e3, 2e5),
        (_, Kind::Data) => (1e3, 5e5),
        (_, Kind::Probe) => (100.0, 5e3),
    };
    let unit = (path_hash >> 11) as f64 / (1u64 << 53) as f64;
    let size = low * (high / low).powf(unit);
    if status == 206 {
        (size / 8.0) as u64
    } else {
        size as u64
    }
}

fn write_referer(kind: Kind, crawler: bool, host: &str, rng: &mut SmallRng, out: &mut String) {
    if crawler {
        return;
    }
    // Assets are fetched from the page that links them.
    let internal_share = if kind == Kind::Page { 35 } else { 85 };
    let roll = rng.random_range(0..100);
    let written = if roll < internal_share {
        let section = SECTIONS[rng.random_range(0..SECTIONS.len())];
        write!(out, "https://{host}/{section}/")
    } else if roll < internal_share + 10 {
        write!(out, "{}", pick(rng, SEARCH_AND_SOCIAL))
    } else if roll < internal_share + 12 {
        write!(
            out,
            "https://news.ycombinator.com/item?id={}",
            rng.random_range(40_000_000..42_000_000)
        )
    } else {
        return;
    };
    written.expect("writing to a String cannot fail");
}

const SEARCH_AND_SOCIAL: &[(&str, u32)] = &[
    ("https://www.google.com/", 50),
    ("https://www.google.de/", 8),
    ("https://www.bing.com/", 8),
    ("https://duckduckgo.com/", 6),
    ("https://t.co/", 5),
    ("https://l.facebook.com/", 4),
    ("https://www.reddit.com/", 4),
    ("android-app://com.google.android.gm/", 3),
    ("android-app://com.slack/", 1),
    ("https://lobste.rs/", 1),
    ("https://yandex.ru/", 2),
];

/// Picks from a table by integer weight.
pub(crate) fn pick<T: Copy, R: Rng + ?Sized>(rng: &mut R, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|&(_, weight)| weight).sum();
    let mut roll = rng.random_range(0..total);
    for &(item, weight) in table {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the total weight")
}

/// The request id of the `count`th access of a stream keyed by `key`: the low
/// half is a bijection of `count` (so ids within a stream never repeat), the
/// high half scatters the key and the count.
pub(crate) fn request_id(key: u64, count: u64) -> RequestId {
    let low = mix64(count ^ key);
    let high = key ^ mix64(count.rotate_left(32));
    RequestId(u128::from(high) << 64 | u128::from(low))
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters its input, so
/// distinct counters give distinct, random-looking ids.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
