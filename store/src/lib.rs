//! The stored form of an access: the `access_log` table that `ingest` writes
//! and `query` reads, and a ClickHouse client set up for the server it meets.
//!
//! DESIGN.md fixes the column names and types; this crate is the one place in
//! code that spells them. ClickHouse 18.16 (Debian's package, used for
//! development and CI) and current releases (production) differ in ways that
//! matter here, so [`Store::connect`] reads `version()` first and adapts:
//!
//! - `LowCardinality` needs `allow_experimental_low_cardinality_type=1` before
//!   19.0, and current releases reject that setting as unknown;
//! - the crate's schema validation (`RowBinaryWithNamesAndTypes`) needs a
//!   server that knows that format, so it is turned off everywhere and the row
//!   order below is the contract instead.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

/// Name of the access table inside the configured database.
pub const ACCESS_TABLE: &str = "access_log";

/// Newest schema version this build knows how to create. Bump it with every
/// entry added to [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = 1;

/// One stored access, in the column order of the table.
///
/// Field order is the wire order of RowBinary: keep it identical to
/// [`ACCESS_LOG_COLUMNS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct AccessRow {
    pub site_id: u64,
    /// Seconds since the Unix epoch, UTC.
    pub time: u32,
    pub request_id: String,
    pub status: u16,
    pub status_class: String,
    pub bytes_sent: u64,
    pub cache_status: String,
    pub edge_location: String,
    pub host: String,
    pub path: String,
    pub referrer_host: String,
    pub country: String,
    pub browser: String,
    pub os: String,
    pub device: String,
    pub file_type: String,
    pub is_bot: u8,
    pub visitor: u64,
}

impl AccessRow {
    /// Borrows every field, for encoding.
    pub fn as_ref(&self) -> AccessRowRef<'_> {
        AccessRowRef {
            site_id: self.site_id,
            time: self.time,
            request_id: &self.request_id,
            status: self.status,
            status_class: &self.status_class,
            bytes_sent: self.bytes_sent,
            cache_status: &self.cache_status,
            edge_location: &self.edge_location,
            host: &self.host,
            path: &self.path,
            referrer_host: &self.referrer_host,
            country: &self.country,
            browser: &self.browser,
            os: &self.os,
            device: &self.device,
            file_type: &self.file_type,
            is_bot: self.is_bot,
            visitor: self.visitor,
        }
    }

    /// Reads one row in RowBinary from the front of `input`, advancing it.
    /// Returns `None` when the input ends early or a string is not UTF-8.
    pub fn decode_row_binary(input: &mut &[u8]) -> Option<Self> {
        AccessRowRef::decode_row_binary(input).map(|row| row.to_owned_row())
    }
}

/// A stored access whose text borrows from elsewhere: what the ingest hot
/// path builds from a parsed frame, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRowRef<'a> {
    pub site_id: u64,
    pub time: u32,
    pub request_id: &'a str,
    pub status: u16,
    pub status_class: &'a str,
    pub bytes_sent: u64,
    pub cache_status: &'a str,
    pub edge_location: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub referrer_host: &'a str,
    pub country: &'a str,
    pub browser: &'a str,
    pub os: &'a str,
    pub device: &'a str,
    pub file_type: &'a str,
    pub is_bot: u8,
    pub visitor: u64,
}

impl<'a> AccessRowRef<'a> {
    /// Reads one row in RowBinary from the front of `input`, advancing it,
    /// its text borrowed from `input`. Returns `None` when the input ends
    /// early or a string is not UTF-8.
    pub fn decode_row_binary(input: &mut &'a [u8]) -> Option<Self> {
        let mut r = RowReader(input);
        Some(Self {
            site_id: r.u64()?,
            time: r.u32()?,
            request_id: r.string()?,
            status: r.u16()?,
            status_class: r.string()?,
            bytes_sent: r.u64()?,
            cache_status: r.string()?,
            edge_location: r.string()?,
            host: r.string()?,
            path: r.string()?,
            referrer_host: r.string()?,
            country: r.string()?,
            browser: r.string()?,
            os: r.string()?,
            device: r.string()?,
            file_type: r.string()?,
            is_bot: r.u8()?,
            visitor: r.u64()?,
        })
    }

    /// Appends the row in ClickHouse's RowBinary format (little-endian
    /// integers, strings as LEB128 length then bytes; `LowCardinality(String)`
    /// is written as a plain string) in the column order of the table.
    ///
    /// Written by hand rather than through the `clickhouse` crate's serde
    /// serializer so that the hot path can encode straight into a batch
    /// buffer that is later sent, or spooled to disk, as it is.
    pub fn encode_row_binary(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.site_id.to_le_bytes());
        out.extend_from_slice(&self.time.to_le_bytes());
        put_string(out, self.request_id);
        out.extend_from_slice(&self.status.to_le_bytes());
        put_string(out, self.status_class);
        out.extend_from_slice(&self.bytes_sent.to_le_bytes());
        for text in [
            self.cache_status,
            self.edge_location,
            self.host,
            self.path,
            self.referrer_host,
            self.country,
            self.browser,
            self.os,
            self.device,
            self.file_type,
        ] {
            put_string(out, text);
        }
        out.push(self.is_bot);
        out.extend_from_slice(&self.visitor.to_le_bytes());
    }

    /// Copies the row into an owned [`AccessRow`].
    pub fn to_owned_row(&self) -> AccessRow {
        AccessRow {
            site_id: self.site_id,
            time: self.time,
            request_id: self.request_id.to_owned(),
            status: self.status,
            status_class: self.status_class.to_owned(),
            bytes_sent: self.bytes_sent,
            cache_status: self.cache_status.to_owned(),
            edge_location: self.edge_location.to_owned(),
            host: self.host.to_owned(),
            path: self.path.to_owned(),
            referrer_host: self.referrer_host.to_owned(),
            country: self.country.to_owned(),
            browser: self.browser.to_owned(),
            os: self.os.to_owned(),
            device: self.device.to_owned(),
            file_type: self.file_type.to_owned(),
            is_bot: self.is_bot,
            visitor: self.visitor,
        }
    }
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(text.as_bytes());
}

/// Cursor over RowBinary input; every read checks the remaining length.
struct RowReader<'a, 'b>(&'b mut &'a [u8]);

impl<'a> RowReader<'a, '_> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        *self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a str> {
        let mut len = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            len |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let bytes = self.take(usize::try_from(len).ok()?)?;
                return std::str::from_utf8(bytes).ok();
            }
        }
        None
    }
}

/// Column definitions of `access_log`, in row order.
pub const ACCESS_LOG_COLUMNS: &[(&str, &str)] = &[
    ("site_id", "UInt64"),
    ("time", "DateTime('UTC')"),
    ("request_id", "String"),
    ("status", "UInt16"),
    ("status_class", "LowCardinality(String)"),
    ("bytes_sent", "UInt64"),
    ("cache_status", "LowCardinality(String)"),
    ("edge_location", "LowCardinality(String)"),
    ("host", "LowCardinality(String)"),
    ("path", "String"),
    ("referrer_host", "String"),
    ("country", "LowCardinality(String)"),
    ("browser", "LowCardinality(String)"),
    ("os", "LowCardinality(String)"),
    ("device", "LowCardinality(String)"),
    ("file_type", "LowCardinality(String)"),
    ("is_bot", "UInt8"),
    ("visitor", "UInt64"),
];

/// One schema step. Statements run in order; `{db}` is replaced by the
/// (already validated) database name.
pub struct Migration {
    pub version: u32,
    pub statements: fn() -> Vec<String>,
}

/// Every schema step, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    statements: v1_statements,
}];

fn v1_statements() -> Vec<String> {
    let columns: Vec<String> = ACCESS_LOG_COLUMNS
        .iter()
        .map(|(name, ty)| format!("`{name}` {ty}"))
        .collect();
    // Partitioned by month so that retention drops whole partitions (no TTL on
    // 18.16); ordered by site then time so that one site's range is one read.
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{ACCESS_TABLE} ({}) ENGINE = MergeTree \
         PARTITION BY toYYYYMM(time) ORDER BY (site_id, time) \
         SETTINGS index_granularity = 8192",
        columns.join(", ")
    )]
}

/// Errors from talking to ClickHouse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database name `{0}` is not allowed: use letters, digits and `_`, not starting with a digit"
    )]
    BadDatabaseName(String),
    #[error("ClickHouse at {url} did not answer `SELECT version()`")]
    Unreachable {
        url: String,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error("ClickHouse returned version `{0}`, which is not `MAJOR.MINOR...`")]
    BadVersion(String),
    #[error("schema step {version} failed")]
    Migration {
        version: u32,
        #[source]
        source: clickhouse::error::Error,
    },
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// A ClickHouse server version, as `(major, minor)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// Parses the text of `SELECT version()`, such as `18.16.1` or `24.8.4.13`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(Self { major, minor })
    }

    /// Whether `LowCardinality` columns need the experimental setting (before
    /// 19.0 they did; from 19.0 on the setting is gone and refused).
    pub fn needs_low_cardinality_setting(self) -> bool {
        self.major < 19
    }

    /// Whether `toStartOfDay`, `toMonday` and `toStartOfMonth` return `Date`
    /// for date buckets (all versions here do; current releases may return
    /// `Date32` or `DateTime` for some inputs). Callers convert explicitly.
    pub fn is_legacy(self) -> bool {
        self.major < 20
    }
}

/// A ClickHouse client bound to one database, set up for its server.
#[derive(Clone)]
pub struct Store {
    /// Bound to the database: for queries and inserts.
    client: Client,
    /// Not bound to any database: for DDL, which must work before the
    /// database exists (ClickHouse refuses a request naming a missing one).
    server: Client,
    database: String,
    version: ServerVersion,
}

impl Store {
    /// Connects to `url`, reads the server version and returns a client bound
    /// to `database` with the settings that version needs. The database does
    /// not need to exist yet: see [`Store::migrate`].
    pub async fn connect(url: &str, database: &str) -> Result<Self, StoreError> {
        validate_database_name(database)?;
        // Inserts travel LZ4-compressed (callers may pre-compress with
        // `CompressedData`, which needs compression on).
        let base = Client::default()
            .with_url(url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::Lz4);
        let text: String = base
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(|source| StoreError::Unreachable {
                url: url.to_owned(),
                source,
            })?;
        let version = ServerVersion::parse(&text).ok_or(StoreError::BadVersion(text))?;
        let server = if version.needs_low_cardinality_setting() {
            base.with_setting("allow_experimental_low_cardinality_type", "1")
        } else {
            base
        };
        let client = server.clone().with_database(database);
        Ok(Self {
            client,
            server,
            database: database.to_owned(),
            version,
        })
    }

    /// The client, bound to the database, with version-specific settings.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database name (validated: safe to splice into SQL).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The server's version.
    pub fn version(&self) -> ServerVersion {
        self.version
    }

    /// `database.access_log`, quoted for SQL.
    pub fn access_table(&self) -> String {
        format!("`{}`.`{ACCESS_TABLE}`", self.database)
    }

    /// Creates the database and brings the schema up to [`SCHEMA_VERSION`],
    /// recording each step in `schema_version` so that later releases can add
    /// steps. Safe to run from several processes at once: every statement is
    /// idempotent.
    pub async fn migrate(&self) -> Result<u32, StoreError> {
        let db = &self.database;
        self.run_ddl(&format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .await?;
        self.run_ddl(&format!(
            "CREATE TABLE IF NOT EXISTS `{db}`.schema_version \
             (version UInt32, applied_at DateTime('UTC')) \
             ENGINE = MergeTree ORDER BY version"
        ))
        .await?;
        let current = self.schema_version().await?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            for statement in (migration.statements)() {
                let sql = statement.replace("{db}", &format!("`{db}`"));
                self.run_ddl(&sql).await.map_err(|e| match e {
                    StoreError::ClickHouse(source) => StoreError::Migration {
                        version: migration.version,
                        source,
                    },
                    other => other,
                })?;
            }
            self.run_ddl(&format!(
                "INSERT INTO `{db}`.schema_version VALUES ({}, now())",
                migration.version
            ))
            .await?;
            tracing::info!(version = migration.version, database = %db, "applied schema step");
        }
        Ok(SCHEMA_VERSION.max(current))
    }

    /// The highest schema step recorded, 0 when none is.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let sql = format!(
            "SELECT max(version) FROM `{}`.schema_version",
            self.database
        );
        Ok(self.server.query(&sql).fetch_one::<u32>().await?)
    }

    /// Whether the server answers a trivial query now.
    pub async fn ping(&self) -> bool {
        self.client
            .query("SELECT 1")
            .fetch_one::<u8>()
            .await
            .is_ok()
    }

    async fn run_ddl(&self, sql: &str) -> Result<(), StoreError> {
        // Plain `query`: the `?` placeholders of the crate are not used here,
        // and the text is built only from validated identifiers.
        self.server.query(sql).execute().await?;
        Ok(())
    }
}

/// Accepts database names that are safe to splice into SQL unquoted or quoted.
pub fn validate_database_name(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadDatabaseName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_of_old_and_new_servers() {
        let old = ServerVersion::parse("18.16.1").unwrap();
        assert!(old.needs_low_cardinality_setting());
        let new = ServerVersion::parse("24.8.4.13").unwrap();
        assert!(!new.needs_low_cardinality_setting());
        assert_eq!(ServerVersion::parse("nonsense"), None);
    }

    #[test]
    fn database_names_are_checked() {
        assert!(validate_database_name("ecstatic").is_ok());
        assert!(validate_database_name("t_1").is_ok());
        for bad in ["", "1db", "a-b", "a`b", "a b", "x;DROP"] {
            assert!(validate_database_name(bad).is_err(), "{bad} accepted");
        }
    }

    fn sample_row() -> AccessRow {
        AccessRow {
            site_id: 390,
            time: 1_733_318_055,
            request_id: "0f6b5c3e2a914d7e8b1c2d3e4f5a6b7c".into(),
            status: 200,
            status_class: "2xx".into(),
            bytes_sent: 5_368_709_120,
            cache_status: "HIT".into(),
            edge_location: "FR".into(),
            host: "blog.example.com".into(),
            path: "/caf\u{e9}/".repeat(40),
            referrer_host: String::new(),
            country: "DE".into(),
            browser: "Chrome".into(),
            os: "Windows".into(),
            device: "desktop".into(),
            file_type: "page".into(),
            is_bot: 0,
            visitor: u64::MAX - 7,
        }
    }

    #[test]
    fn row_binary_round_trips() {
        let row = sample_row();
        let mut buf = Vec::new();
        row.as_ref().encode_row_binary(&mut buf);
        row.as_ref().encode_row_binary(&mut buf);
        let mut input = &buf[..];
        assert_eq!(
            AccessRow::decode_row_binary(&mut input).as_ref(),
            Some(&row)
        );
        assert_eq!(
            AccessRow::decode_row_binary(&mut input).as_ref(),
            Some(&row)
        );
        assert!(input.is_empty());
        assert_eq!(
            AccessRow::decode_row_binary(&mut &buf[..buf.len() - 1][..0]),
            None
        );
    }

    #[test]
    fn long_strings_use_multi_byte_lengths() {
        let mut buf = Vec::new();
        put_string(&mut buf, &"x".repeat(300));
        assert_eq!(&buf[..2], &[0xac, 0x02]);
        assert_eq!(buf.len(), 302);
    }

    #[test]
    fn columns_match_the_row() {
        let names: Vec<&str> = ACCESS_LOG_COLUMNS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, <AccessRow as clickhouse::Row>::COLUMN_NAMES);
    }
}
