//! `crmsync`: the local and operations CLI. Every command reads its configuration from the environment
//! (see README.md); logs go to stderr, so stdout carries only a command's result.

#![recursion_limit = "256"]

mod catch_up;
mod doctor;
mod ops;
mod serve;

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crmsync_app::Config;
use crmsync_app::ingest::ingest_and_kick;
use crmsync_db::{PgMatchStore, migrate};

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
    /// Apply pending database migrations (safe to run twice, and from two places at once). The guide's existing
    /// tables (opportunities, contractors, matches, ...) are adopted first: crmsync adds only the columns and unique
    /// keys it needs, and stops before changing anything, with a report and the SQL that fixes it, when the data or
    /// a column's type stands in the way.
    Migrate {
        /// Print what migrate would do (the adoption statements, the pending migrations, any problems) and change
        /// nothing; exits 1 when there are problems.
        #[arg(long)]
        plan: bool,
    },
    /// Ingest matches from a JSON file, or from stdin with `-`; prints the report as JSON and exits 1 if any match
    /// was rejected.
    Ingest {
        /// A file holding {"matches": [...]}, a bare array, or one match; `-` reads stdin.
        file: PathBuf,
    },
    /// Drain due sync_queue rows to HubSpot until the queue is empty or the time budget is spent.
    Sync {
        /// Stop starting new rounds after this many seconds.
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
        /// Report what would be created or updated, per entity type, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Queue counts by status and entity type, failed and dead items, items waiting for another record (a deal for
    /// its company), the DLQ depth, the webhook inbox's pending, retry and dead counts, and the last runs.
    Status {
        /// How many failed/dead items and runs to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Inspect or re-queue dead items.
    Dlq {
        #[command(subcommand)]
        action: ops::DlqAction,
    },
    /// Catch up with HubSpot: read what changed there since the watermark (or `--since`), what was archived and
    /// merged, and apply it through the webhook applier, as the lost webhooks would have. Safe to run twice; prints
    /// the run's counts and exits 1 if events died.
    Reconcile {
        /// Read this last stretch instead of the changes since the watermark (90s, 15m, 2h, 1d, 1h30m); the
        /// watermark moves only when the window reaches back to it.
        #[arg(long)]
        since: Option<String>,
        /// Stop starting pages after this many seconds; the next run carries on from the watermark.
        #[arg(long)]
        max_seconds: Option<u64>,
    },
    /// Import the portal's deals of our pipeline with their companies and contacts, matching local rows by
    /// crmsync_id, UEI, domain and email, creating the rest. Resumes from its checkpoint; running it again creates
    /// nothing new. Prints the counts and exits 1 if a record could not be brought in.
    ImportHubspot {
        /// Ignore the checkpoint of an unfinished import and start from the first deal.
        #[arg(long)]
        restart: bool,
        /// Deals per page (one transaction and one checkpoint each), 1 to 100.
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
    /// HubSpot's owners (the users records are assigned to), cached for owner names on the dashboard and in the API.
    Owners {
        #[command(subcommand)]
        action: catch_up::OwnersAction,
    },
    /// Create (or find) the HubSpot property group, properties and deal pipeline the sync needs, and record the
    /// pipeline and stage ids. Running it twice changes nothing.
    HubspotSetup,
    /// Run the HubSpot simulator (configured by HUBSPOT_SIM_* variables; token `sim-token` by default).
    HubspotSim {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: SocketAddr,
    },
    /// Create the SQS retry queue and its DLQ (with the redrive policy) in a local SQS such as moto; prints their URLs.
    QueueSetup {
        /// The retry queue's name; the DLQ is `<name>-dlq`.
        #[arg(long, default_value = "crmsync-retry")]
        name: String,
        /// Receives before SQS moves a message to the DLQ (template.yaml's RetryMaxReceiveCount: at least 5).
        #[arg(long, default_value_t = 5)]
        max_receive_count: u32,
        /// Seconds a received message stays invisible (≥ 6× the function timeout in AWS).
        #[arg(long, default_value_t = 30)]
        visibility_timeout: u64,
    },
    /// Run the HTTP server (GET /healthz, POST /ingest/matches, the dashboard at / and /api/*), the sync schedule,
    /// the fast path (a drain within SYNC_KICK_DEBOUNCE_MS of an ingestion or API write), the hourly reconciliation
    /// (RECONCILE_INTERVAL_SECONDS), a daily prune and the retry-queue poller. Needs HUBSPOT_ACCESS_TOKEN, unless
    /// --simulator is given.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Sync to the built-in HubSpot simulator (set up at start, empty every time) instead of HubSpot. Without
        /// it, serve refuses to start when HUBSPOT_ACCESS_TOKEN is not set.
        #[arg(long)]
        simulator: bool,
    },
    /// Delete operational rows older than their retention (PRUNE_* settings), in bounded batches: the echo ledger,
    /// settled webhook inbox events (at least 7 days, so re-deliveries are still recognised), completed sync_queue
    /// rows, finished sync runs and old sync conflicts. Prints the rows deleted per table as JSON.
    Prune {
        /// Start no batch after this many seconds (the next prune goes on).
        #[arg(long, default_value_t = 3_600)]
        max_seconds: u64,
    },
    /// Check the deployment: the configuration is complete; the database answers (TLS, pooler, schema version);
    /// the HubSpot token is valid with every scope crmsync needs; hubspot-setup has run (properties, pipeline); the
    /// SQS queues answer. Prints one table and exits 1 when any check fails; each check times out after 10 s.
    Doctor,
    /// Print the effective field policies (the defaults, with CRMSYNC_FIELD_POLICY's overrides): which side wins
    /// each synced property, for records made here and for records created in HubSpot. Needs no database.
    Policy {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
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
    if let Command::HubspotSim { bind } = cli.command {
        let config = crmsync_hubspot_sim::SimConfig::from_env()?;
        tracing::info!(%bind, "HubSpot simulator listening");
        crmsync_hubspot_sim::serve(config, bind).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::QueueSetup {
        name,
        max_receive_count,
        visibility_timeout,
    } = cli.command
    {
        let client = crmsync_queue::SqsRetryQueue::client_from_env().await;
        let queue = crmsync_queue::SqsRetryQueue::ensure_queues(
            client,
            &name,
            max_receive_count,
            std::time::Duration::from_secs(visibility_timeout),
        )
        .await?;
        println!(
            "{}",
            serde_json::json!({ "RETRY_QUEUE_URL": queue.queue_url(), "RETRY_DLQ_URL": queue.dlq_url() })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Policy { json } = cli.command {
        let policies = crmsync_app::config::field_policies_from_env()?;
        print!("{}", ops::policy_table(&policies, json)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Doctor = cli.command {
        return Ok(doctor::doctor().await);
    }
    let config = Config::from_env()?;
    match cli.command {
        Command::Migrate { plan: true } => {
            let client = migrate::connect(&config.migration_database()?).await?;
            let plan = migrate::plan(&client).await.context("could not plan the migration")?;
            println!("crmsync migrate --plan: nothing was changed.\n\n{plan}");
            Ok(if plan.adoption.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate { plan: false } => {
            let mut client = migrate::connect(&config.migration_database()?).await?;
            let report = migrate::migrate(&mut client).await.context("migration failed")?;
            tracing::info!(
                adopted = report.adopted.len(),
                applied = ?report.applied,
                already_applied = report.already_applied.len(),
                "migrations done"
            );
            println!(
                "{}",
                serde_json::json!({
                    "adopted": report.adopted,
                    "applied": report.applied,
                    "already_applied": report.already_applied,
                })
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
            // With RETRY_QUEUE_URL set, the kick is a drain request on the retry queue: `crmsync serve`'s poller or
            // the outbound-sync function drains.
            let pool = config.connect_pool(crmsync_db::Timeouts::CLI)?;
            let kicker = config.drain_kicker(&pool).await;
            let report = ingest_and_kick(&PgMatchStore::new(pool), &kicker, &event, "cli").await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sync { max_seconds, dry_run } => ops::sync(&config, max_seconds, dry_run).await,
        Command::Status { limit } => ops::status(&config, limit).await,
        Command::Dlq { action } => ops::dlq(&config, action).await,
        Command::HubspotSetup => ops::hubspot_setup(&config).await,
        Command::Reconcile { since, max_seconds } => catch_up::reconcile(&config, since.as_deref(), max_seconds).await,
        Command::ImportHubspot { restart, page_size } => catch_up::import_hubspot(&config, restart, page_size).await,
        Command::Owners { action } => catch_up::owners(&config, action).await,
        Command::Serve { bind, simulator } => serve::serve(config, bind, simulator).await,
        Command::Prune { max_seconds } => {
            let pool = config.connect_pool(crmsync_db::Timeouts::CLI)?;
            let budget = std::time::Duration::from_secs(max_seconds);
            let report = crmsync_app::prune::prune(&pool, &config.retention, budget).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::HubspotSim { .. } | Command::QueueSetup { .. } | Command::Policy { .. } | Command::Doctor => {
            unreachable!("handled above")
        }
    }
}
