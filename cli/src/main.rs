//! `crmsync`: the local and operations CLI. Every command reads its configuration from the environment
//! (see README.md); logs go to stderr, so stdout carries only a command's result.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use crmsync_app::Config;
use crmsync_app::http::{AppState, router};
use crmsync_app::ingest::ingest_matches;
use crmsync_db::{PgMatchStore, connect_pool, migrate};
use secrecy::ExposeSecret;

#[derive(Debug, Parser)]
#[command(
    name = "crmsync",
    version,
    about = "Keeps a PostgreSQL CRM and HubSpot in two-way sync for a B2G pipeline."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run twice, and from two places at once).
    Migrate,
    /// Ingest matches from a JSON file, or from stdin with `-`; prints the report as JSON and exits 1 if any match
    /// was rejected.
    Ingest {
        /// A file holding {"matches": [...]}, a bare array, or one match; `-` reads stdin.
        file: PathBuf,
    },
    /// Run the HTTP server: GET /healthz and POST /ingest/matches (bearer API_TOKEN).
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    crmsync_app::telemetry::init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("crmsync: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    match cli.command {
        Command::Migrate => {
            let mut client = migrate::connect(config.database_url.expose_secret()).await?;
            let report = migrate::migrate(&mut client).await.context("migration failed")?;
            tracing::info!(applied = ?report.applied, already_applied = report.already_applied.len(), "migrations done");
            println!(
                "{}",
                serde_json::json!({ "applied": report.applied, "already_applied": report.already_applied })
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { file } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("could not read stdin")?;
                text
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("could not read {}", file.display()))?
            };
            let event: serde_json::Value = serde_json::from_str(&text).context("the input is not valid JSON")?;
            let pool = connect_pool(config.database_url.expose_secret(), config.database_pool_size)?;
            let report = ingest_matches(&PgMatchStore::new(pool), &event, "cli").await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve { bind } => {
            let Some(api_token) = config.api_token.clone() else {
                bail!("API_TOKEN must be set: every API route requires it as a bearer token");
            };
            let pool = connect_pool(config.database_url.expose_secret(), config.database_pool_size)?;
            let app = router(AppState::new(pool, api_token));
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("could not bind {bind}"))?;
            tracing::info!(address = %listener.local_addr()?, "crmsync serve listening");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}
