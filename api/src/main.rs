//! `ecstatic-api`: accounts, tokens, sites, hostnames and the CDN admin API.

mod accounts;
mod app;
mod authz;
mod cdn;
mod config;
mod error;
mod hostnames;
mod openapi;
mod ratelimit;
mod sites;
mod store;
mod validate;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ecstatic_auth::{JWT_SECRET_ENV, JwtKey};

use crate::app::{ApiMetrics, AppState, Settings};
use crate::authz::Signer;
use crate::cdn::CdnProvider;
use crate::cdn::bunny::{ApiKey, BunnyCdn, BunnySettings};
use crate::cdn::local::LocalCdn;
use crate::cdn::metered::MeteredCdn;
use crate::config::{AccountsCommand, CdnKind, Cli, Command, ServeArgs};
use crate::ratelimit::LoginLimiter;
use crate::store::Store;

/// Environment variable holding the bunny.net API key, when no key file is
/// given.
const BUNNY_KEY_ENV: &str = "ECSTATIC_BUNNY_API_KEY";

/// A reason not to start, printed as one line.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(
        "`{JWT_SECRET_ENV}` is not set: export a random secret of at least 32 bytes, \
             the same for api, query and git"
    )]
    NoJwtSecret,
    #[error("`{JWT_SECRET_ENV}`: {0}")]
    JwtSecret(ecstatic_auth::AuthError),
    #[error("`--cdn bunny` needs the API key: `--bunny-api-key-file` or `{BUNNY_KEY_ENV}`")]
    NoBunnyKey,
    #[error("reading `--bunny-api-key-file` {0}")]
    BunnyKeyFile(String, #[source] std::io::Error),
    #[error("`--cdn bunny` needs `--log-forward-host`: where bunny.net sends access logs")]
    NoLogHost,
    #[error("creating the data directory {0}")]
    DataDir(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("`{JWT_SECRET_ENV}` cannot sign tokens")]
    Signer(#[source] jsonwebtoken::errors::Error),
    #[error("registering metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ecstatic_ops::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut line = format!("ecstatic-api: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    if let Some(Command::Accounts(command)) = cli.command {
        let store = open_store(&cli.db.data_dir, &cli.db.url()).await?;
        return admin(&store, command).await;
    }

    let secret = std::env::var(JWT_SECRET_ENV).map_err(|_| StartError::NoJwtSecret)?;
    let jwt = JwtKey::new(secret.as_bytes()).map_err(StartError::JwtSecret)?;
    let cdn = make_cdn(&cli.serve, &cli.db.data_dir)?;
    let store = open_store(&cli.db.data_dir, &cli.db.url()).await?;
    let dummy_hash = accounts::hash_password(random_password())
        .await
        .map_err(|e| StartError::Serve(std::io::Error::other(e.to_string())))?;

    let args = &cli.serve;
    let registry = prometheus::Registry::new();
    let cdn = Arc::new(MeteredCdn::new(cdn, &registry)?);
    let state = AppState {
        store,
        cdn,
        jwt,
        signer: Signer::new(secret.as_bytes()).map_err(StartError::Signer)?,
        limiter: Arc::new(LoginLimiter::new(
            args.login_max_failures_per_account,
            args.login_max_failures_per_address,
            Duration::from_secs(args.login_window_secs),
        )),
        signup_limiter: Arc::new(LoginLimiter::new(
            u32::MAX,
            args.signups_per_address,
            Duration::from_secs(args.login_window_secs),
        )),
        dummy_hash,
        settings: Arc::new(Settings {
            token_ttl_secs: args.token_ttl_secs,
            client_ip_header: args.client_ip_header.clone(),
        }),
        metrics: ApiMetrics::new(&registry)?,
    };
    let app = app::router(state, registry)?;
    app::serve(args.listen, app)
        .await
        .map_err(StartError::Serve)
}

async fn admin(store: &Store, command: AccountsCommand) -> Result<(), StartError> {
    match command {
        AccountsCommand::SetReadonly { email, off } => {
            let email = email.trim().to_lowercase();
            store.set_readonly(&email, !off).await?;
            let now = if off { "writable" } else { "read-only" };
            println!("{email} is now {now}");
        }
    }
    Ok(())
}

async fn open_store(data_dir: &Path, url: &str) -> Result<Store, StartError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StartError::DataDir(data_dir.display().to_string(), e))?;
    Ok(Store::open(url).await?)
}

fn make_cdn(args: &ServeArgs, data_dir: &Path) -> Result<Arc<dyn CdnProvider>, StartError> {
    match args.cdn {
        CdnKind::Local => {
            let sites = data_dir.join("sites");
            std::fs::create_dir_all(&sites)
                .map_err(|e| StartError::DataDir(sites.display().to_string(), e))?;
            let root = std::path::absolute(&sites)
                .map_err(|e| StartError::DataDir(sites.display().to_string(), e))?;
            Ok(Arc::new(LocalCdn::new(
                root,
                args.public_url_template.clone(),
            )))
        }
        CdnKind::Bunny => {
            let settings = BunnySettings {
                api_url: args.bunny_api_url.clone(),
                storage_url: args.bunny_storage_url.clone(),
                api_key: bunny_key(args)?,
                region: args.bunny_region.clone(),
                log_host: args.log_forward_host.clone().ok_or(StartError::NoLogHost)?,
                log_port: args.log_forward_port,
                log_format: args.log_forward_format,
            };
            Ok(Arc::new(BunnyCdn::new(settings)))
        }
    }
}

fn bunny_key(args: &ServeArgs) -> Result<ApiKey, StartError> {
    let key = match &args.bunny_api_key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::BunnyKeyFile(path.display().to_string(), e))?,
        None => std::env::var(BUNNY_KEY_ENV).map_err(|_| StartError::NoBunnyKey)?,
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(StartError::NoBunnyKey);
    }
    Ok(ApiKey::new(key))
}

fn random_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
