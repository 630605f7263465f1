//! `ecstatic-query`: serves the analytics API (see `query/README.md`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::Parser;
use ecstatic_auth::{JWT_SECRET_ENV, JwtKey};
use ecstatic_query::{AppState, Settings, router};
use ecstatic_store::Store;
use prometheus::Registry;

/// Analytics API over the access log in ClickHouse.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to serve the API, `/metrics` and the probes on.
    #[arg(long, env = "ECSTATIC_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,

    /// ClickHouse HTTP interface.
    #[arg(
        long,
        env = "ECSTATIC_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    clickhouse_url: String,

    /// Database holding `access_log`.
    #[arg(long, env = "ECSTATIC_DATABASE", default_value = "ecstatic")]
    database: String,

    /// Origin allowed to call the API from a browser (CORS), such as
    /// `https://dash.example.com`. None by default.
    #[arg(long, env = "ECSTATIC_CORS_ORIGIN")]
    cors_origin: Option<String>,

    /// Longest a request may take before it is answered 503, in seconds.
    #[arg(long, env = "ECSTATIC_REQUEST_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_secs: u64,

    /// Longest range a request may ask for, in days.
    #[arg(long, env = "ECSTATIC_MAX_RANGE_DAYS", default_value_t = 730,
          value_parser = clap::value_parser!(u32).range(1..=3660))]
    max_range_days: u32,

    /// Serve every site to anyone, without tokens. For development only.
    #[arg(long, env = "ECSTATIC_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,

    /// Print the schema DDL and every SQL shape this service sends, one
    /// statement per line, and exit (for `query/tests/sql_current.py`).
    #[arg(long, hide = true)]
    print_sql_shapes: bool,
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(
        "`{JWT_SECRET_ENV}` is not set: set it to the key `ecstatic-api` signs with \
             (or pass `--insecure-no-auth` for development)"
    )]
    NoSecret,
    #[error("`{JWT_SECRET_ENV}` is not usable")]
    BadSecret(#[from] ecstatic_auth::AuthError),
    #[error("`--cors-origin` is not a valid header value")]
    BadOrigin,
    #[error("cannot prepare the ClickHouse database")]
    Store(#[from] ecstatic_store::StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot register metrics")]
    Metrics(#[from] prometheus::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    ecstatic_ops::init_tracing();
    let cli = Cli::parse();
    if cli.print_sql_shapes {
        print_sql_shapes(&cli.database);
        return ExitCode::SUCCESS;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %ErrorChain(&error), "ecstatic-query stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    let settings = settings(&cli)?;

    let store = Store::connect(&cli.clickhouse_url, &cli.database).await?;
    store.migrate().await?;
    let registry = Registry::new();
    let state = AppState::new(&store, &settings, &registry)?;
    let app = router(state, &settings, store, registry);

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cli.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(%addr, database = %cli.database, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(ecstatic_ops::shutdown_signal())
        .await
        .map_err(StartError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

fn settings(cli: &Cli) -> Result<Settings, StartError> {
    // The key comes from the environment only: a flag's value would show in
    // `ps` and in shell history.
    let jwt = match std::env::var_os(JWT_SECRET_ENV) {
        Some(secret) => Some(JwtKey::new(secret.as_encoded_bytes())?),
        None if cli.insecure_no_auth => None,
        None => return Err(StartError::NoSecret),
    };
    let jwt = if cli.insecure_no_auth {
        tracing::warn!(
            "AUTHENTICATION IS OFF (`--insecure-no-auth`): anyone who reaches this port \
             can read every site's analytics; never run this way outside development"
        );
        None
    } else {
        jwt
    };
    let cors_origin = cli
        .cors_origin
        .as_deref()
        .map(|o| HeaderValue::from_str(o).map_err(|_| StartError::BadOrigin))
        .transpose()?;
    Ok(Settings {
        jwt,
        cors_origin,
        request_timeout: Duration::from_secs(cli.request_timeout_secs),
        max_range_days: cli.max_range_days,
    })
}

fn print_sql_shapes(database: &str) {
    for migration in ecstatic_store::MIGRATIONS {
        for statement in (migration.statements)() {
            println!("{}", statement.replace("{db}", &format!("`{database}`")));
        }
    }
    let table = format!("`{database}`.`{}`", ecstatic_store::ACCESS_TABLE);
    for sql in ecstatic_query::sql::every_shape(&table) {
        println!("{sql}");
    }
}

/// Prints an error and its causes on one line.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
