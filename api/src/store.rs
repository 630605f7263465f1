//! The database: one code path for SQLite and PostgreSQL through `sqlx::Any`.
//!
//! Portable SQL only: `$n` placeholders (SQLite reads them too), `RETURNING`,
//! integers as BIGINT (flags are 0/1, since booleans decode differently per
//! backend through `Any`) and times as RFC 3339 text.

use sqlx::any::AnyPoolOptions;
// `AssertSqlSafe` wraps only SQL assembled from the constants in this file.
use sqlx::{AnyPool, AssertSqlSafe, FromRow};

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with `sqlite:` or `postgres:`")]
    UnknownScheme,
    #[error("opening the database failed")]
    Connect(#[source] sqlx::Error),
    #[error("applying the database migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    #[error("the value is already taken")]
    Duplicate,
    #[error("no account has the email `{0}`")]
    NoSuchAccount(String),
}

/// An account row.
#[derive(Debug, Clone, FromRow)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub readonly: i64,
    pub created_at: String,
}

/// A site row.
#[derive(Debug, Clone, FromRow)]
pub struct Site {
    pub id: i64,
    pub owner_id: i64,
    pub nickname: String,
    pub branch: String,
    pub publish_dir: String,
    pub url: String,
    pub storage_zone_id: Option<i64>,
    pub storage_zone_name: Option<String>,
    pub created_at: String,
}

/// A deploy token row, without its hash.
#[derive(Debug, Clone, FromRow)]
pub struct DeployToken {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A deploy record.
#[derive(Debug, Clone, FromRow)]
pub struct Deploy {
    pub id: i64,
    pub site_id: i64,
    pub commit_sha: String,
    pub files_uploaded: i64,
    pub files_deleted: i64,
    pub files_kept: i64,
    pub bytes_uploaded: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub message: String,
    pub cache_purged: i64,
    pub created_at: String,
}

/// Values of a new site.
#[derive(Debug)]
pub struct NewSite<'a> {
    pub id: i64,
    pub owner_id: i64,
    pub nickname: &'a str,
    pub url: &'a str,
    pub storage_zone_id: Option<i64>,
    pub storage_zone_name: Option<&'a str>,
}

/// Hostname states: `active` went through every CDN step; `partial` is
/// left at the CDN because a rollback failed, and waits for a DELETE.
pub const HOSTNAME_ACTIVE: &str = "active";
pub const HOSTNAME_PARTIAL: &str = "partial";

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

const SITE_COLUMNS: &str = "id, owner_id, nickname, branch, publish_dir, url, \
    storage_zone_id, storage_zone_name, created_at";
const DEPLOY_COLUMNS: &str = "id, site_id, commit_sha, files_uploaded, files_deleted, \
    files_kept, bytes_uploaded, duration_ms, outcome, message, cache_purged, created_at";

impl Store {
    /// Connects and applies the migrations of the URL's backend.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        if !postgres && !url.starts_with("sqlite:") {
            return Err(StoreError::UnknownScheme);
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(StoreError::Connect)?;
        if postgres {
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        } else {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn create_account(
        &self,
        email: &str,
        password_hash: &str,
        now: &str,
    ) -> Result<i64, StoreError> {
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO accounts (email, password_hash, readonly, created_at) \
             VALUES ($1, $2, 0, $3) RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(duplicate)?;
        Ok(id.0)
    }

    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, email, password_hash, readonly, created_at FROM accounts \
             WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, email, password_hash, readonly, created_at FROM accounts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn set_readonly(&self, email: &str, readonly: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET readonly = $1 WHERE email = $2")
            .bind(i64::from(readonly))
            .bind(email)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchAccount(email.to_owned()));
        }
        Ok(())
    }

    /// Takes the next local site id; never hands out the same one twice.
    pub async fn next_site_number(&self) -> Result<i64, StoreError> {
        let next: (i64,) = sqlx::query_as(
            "UPDATE counters SET next_value = next_value + 1 WHERE name = 'site' \
             RETURNING next_value - 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next.0)
    }

    pub async fn insert_site(&self, site: &NewSite<'_>, now: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sites (id, owner_id, nickname, branch, publish_dir, url, \
             storage_zone_id, storage_zone_name, created_at) \
             VALUES ($1, $2, $3, 'main', '', $4, $5, $6, $7)",
        )
        .bind(site.id)
        .bind(site.owner_id)
        .bind(site.nickname)
        .bind(site.url)
        .bind(site.storage_zone_id)
        .bind(site.storage_zone_name)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(duplicate)?;
        Ok(())
    }

    pub async fn site(&self, id: i64) -> Result<Option<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn sites_of(&self, owner_id: i64) -> Result<Vec<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE owner_id = $1 ORDER BY id");
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn site_ids_of(&self, owner_id: i64) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM sites WHERE owner_id = $1 ORDER BY id")
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn update_site(
        &self,
        id: i64,
        nickname: &str,
        branch: &str,
        publish_dir: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sites SET nickname = $1, branch = $2, publish_dir = $3 WHERE id = $4")
            .bind(nickname)
            .bind(branch)
            .bind(publish_dir)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a site and everything that hangs off it, in one transaction.
    pub async fn delete_site(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["hostnames", "deploy_tokens", "deploys"] {
            let sql = format!("DELETE FROM {table} WHERE site_id = $1");
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Hostnames of a site with their state, in name order.
    pub async fn hostnames(&self, site_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT hostname, state FROM hostnames WHERE site_id = $1 ORDER BY hostname",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The site a hostname belongs to, if any.
    pub async fn hostname_owner(&self, hostname: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT site_id FROM hostnames WHERE hostname = $1")
                .bind(hostname)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn insert_hostname(
        &self,
        site_id: i64,
        hostname: &str,
        state: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hostnames (hostname, site_id, state, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hostname)
        .bind(site_id)
        .bind(state)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(duplicate)?;
        Ok(())
    }

    pub async fn delete_hostname(&self, site_id: i64, hostname: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM hostnames WHERE site_id = $1 AND hostname = $2")
            .bind(site_id)
            .bind(hostname)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_token(
        &self,
        site_id: i64,
        name: &str,
        token_sha256: &str,
        now: &str,
    ) -> Result<i64, StoreError> {
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO deploy_tokens (site_id, name, token_sha256, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(site_id)
        .bind(name)
        .bind(token_sha256)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id.0)
    }

    pub async fn tokens(&self, site_id: i64) -> Result<Vec<DeployToken>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, site_id, name, created_at, last_used_at FROM deploy_tokens \
             WHERE site_id = $1 ORDER BY id",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn token(&self, id: i64) -> Result<Option<DeployToken>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, site_id, name, created_at, last_used_at FROM deploy_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Finds a token by the SHA-256 of its secret and notes its use.
    pub async fn use_token(
        &self,
        token_sha256: &str,
        now: &str,
    ) -> Result<Option<DeployToken>, StoreError> {
        let token: Option<DeployToken> = sqlx::query_as(
            "SELECT id, site_id, name, created_at, last_used_at FROM deploy_tokens \
             WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(token) = &token {
            sqlx::query("UPDATE deploy_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(token)
    }

    /// Deletes a token of a site; false when there was none.
    pub async fn delete_token(&self, site_id: i64, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM deploy_tokens WHERE site_id = $1 AND id = $2")
            .bind(site_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn insert_deploy(&self, d: &Deploy) -> Result<i64, StoreError> {
        let id: (i64,) = sqlx::query_as(
            "INSERT INTO deploys (site_id, commit_sha, files_uploaded, files_deleted, \
             files_kept, bytes_uploaded, duration_ms, outcome, message, cache_purged, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(d.site_id)
        .bind(&d.commit_sha)
        .bind(d.files_uploaded)
        .bind(d.files_deleted)
        .bind(d.files_kept)
        .bind(d.bytes_uploaded)
        .bind(d.duration_ms)
        .bind(&d.outcome)
        .bind(&d.message)
        .bind(d.cache_purged)
        .bind(&d.created_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id.0)
    }

    /// Deploys of a site, newest first.
    pub async fn deploys(&self, site_id: i64, limit: i64) -> Result<Vec<Deploy>, StoreError> {
        let sql = format!(
            "SELECT {DEPLOY_COLUMNS} FROM deploys WHERE site_id = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(site_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Maps a unique-constraint violation to `Duplicate`.
fn duplicate(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
        _ => StoreError::Query(error),
    }
}
