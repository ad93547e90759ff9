//! `crmsync serve`: every handler on one port (ingestion, the dashboard API and page, HubSpot webhooks), the sync
//! schedule, the fast path (ingestions and API writes kick an in-process drainer), the reconciliation schedule, a daily prune, and the retry-queue poller, all on one connection pool. With
//! `--simulator` it starts the built-in HubSpot simulator, sets it up, syncs to it, and has it deliver its signed
//! webhooks back to this server. Without `--simulator` it needs HUBSPOT_ACCESS_TOKEN and refuses to start without it:
//! a deployment that forgot the token would otherwise mark rows synced with ids that exist nowhere.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use crmsync_app::Config;
use crmsync_app::kick::{DrainKicker, LocalKicks};
use crmsync_db::kick::PgDrainKicks;
use crmsync_http::ingest::{IngestState, router};
use crmsync_http::webhook::{ApplyMode, WEBHOOK_PATH};
use crmsync_hubspot_sim::{HubSpotSim, RunningSim, WebhookTarget};
use crmsync_inbound::{ReconcileRequest, Reconciler};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, from_config};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;

/// How often `serve` prunes old operational rows, the local stand-in for the daily EventBridge schedule.
const PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long one prune may run before it stops starting batches (the next day's goes on).
const PRUNE_BUDGET: Duration = Duration::from_secs(15 * 60);

pub async fn serve(mut config: Config, bind: SocketAddr, use_simulator: bool) -> anyhow::Result<ExitCode> {
    // Metrics go to stdout as EMF lines, as in Lambda: serve's stdout carries no result.
    crmsync_app::metrics::configure(crmsync_app::metrics::Sink::Stdout, "crmsync-serve");
    let Some(api_token) = config.api.api_token.clone() else {
        bail!("API_TOKEN must be set: every API route requires it as a bearer token");
    };
    check_hubspot_target(config.hubspot_access_token.is_some(), use_simulator)?;
    let simulator = if use_simulator {
        Some(start_simulator(&mut config).await?)
    } else {
        None
    };
    // One pool per process, shared by every part.
    let pool = config.connect_pool(crmsync_db::Timeouts::SERVE)?;
    let webhook_state = crmsync_http::webhook::from_config(&config, pool.clone(), ApplyMode::Background).await?;
    // One applier per process: the webhook route and the drain share its one-pass-at-a-time lock.
    let sync = Arc::new(
        from_config(&config, pool.clone())
            .await?
            .with_inbox(webhook_state.applier().clone()),
    );
    // The built-in simulator starts empty every time: set it up and record its pipeline ids.
    if simulator.is_some() {
        crmsync_app::hubspot_setup::hubspot_setup(sync.store(), sync.hubspot()).await?;
    }
    // The fast path: ingestion and API writes kick this process's own drainer (SYNC_FAST_PATH, on by default).
    let local_kicks = config
        .sync
        .fast_path
        .then(|| LocalKicks::new(config.sync.kick_debounce, PgDrainKicks::outbound(pool.clone())));
    let kicker = local_kicks.clone().map_or(DrainKicker::Off, DrainKicker::InProcess);
    let background = [
        Some(spawn_schedule(Arc::clone(&sync), config.sync.interval)),
        local_kicks.map(|kicks| spawn_fast_path(Arc::clone(&sync), kicks, config.sync.interval)),
        config
            .sync
            .reconcile_interval
            .zip(sync.inbox().cloned())
            .map(|(interval, applier)| spawn_reconcile(Reconciler::new(applier), interval)),
        config
            .sync
            .owners_interval
            .zip(sync.inbox().cloned())
            .map(|(interval, applier)| spawn_owners_refresh(applier, interval)),
        Some(spawn_prune(pool.clone(), config.retention)),
        sync.retry_queue()
            .is_some()
            .then(|| spawn_retry_poller(Arc::clone(&sync), config.sync.interval)),
    ];

    let app = router(IngestState::new(pool.clone(), api_token).with_kicker(kicker.clone()))
        .merge(crmsync_http::api::router(
            crmsync_http::api::ApiState::new(pool, &config.api).with_kicker(kicker),
        ))
        .merge(crmsync_http::webhook::router(webhook_state));
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("could not bind {bind}"))?;
    if let (Some(sim), Some(secret)) = (&simulator, &config.webhook.client_secret) {
        let url = format!("http://{}{WEBHOOK_PATH}", listener.local_addr()?);
        tracing::info!(%url, "the simulator delivers its webhooks here");
        sim.set_webhook_target(Some(WebhookTarget {
            url,
            client_secret: secret.expose_secret().to_owned(),
            send_v1: false,
        }));
    }
    tracing::info!(address = %listener.local_addr()?, interval_seconds = config.sync.interval.as_secs(), "crmsync serve listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    background.into_iter().flatten().for_each(|task| task.abort());
    drop(simulator);
    Ok(ExitCode::SUCCESS)
}

/// HubSpot or the simulator, never the simulator by accident: without `--simulator` the token must be set.
fn check_hubspot_target(has_token: bool, use_simulator: bool) -> anyhow::Result<()> {
    match (has_token, use_simulator) {
        (false, false) => bail!(
            "HUBSPOT_ACCESS_TOKEN is not set: set it to the private app's access token, or pass --simulator to sync \
             to the built-in HubSpot simulator"
        ),
        (true, true) => {
            tracing::warn!("--simulator given: HUBSPOT_ACCESS_TOKEN is ignored, nothing is sent to HubSpot");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Starts the built-in simulator and points the configuration at it. The simulator signs its webhooks with our
/// client secret (made up when none is set) and marks API writes with its app id, so echoes are recognised.
async fn start_simulator(config: &mut Config) -> anyhow::Result<RunningSim> {
    let sim_config = crmsync_hubspot_sim::SimConfig::from_env()?;
    let webhook = &mut config.webhook;
    if webhook.client_secret.is_none() {
        webhook.client_secret = Some(format!("sim-secret-{}", uuid::Uuid::new_v4().simple()).into());
    }
    webhook.app_id.get_or_insert_with(|| sim_config.app_id.to_string());
    let sim = HubSpotSim::start(sim_config, "127.0.0.1:0".parse()?).await?;
    tracing::info!(base_url = %sim.base_url(), "--simulator: using the built-in HubSpot simulator");
    config.hubspot_base_url = sim.base_url();
    config.hubspot_access_token = Some(sim.access_token().to_owned().into());
    Ok(sim)
}

/// Drains the queue every `interval`, the local stand-in for the EventBridge schedule.
fn spawn_schedule(sync: Arc<OutboundSync<SqsRetryQueue>>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            if let Err(error) = sync.drain("serve", interval).await {
                tracing::error!(%error, "scheduled sync failed");
            }
        }
    })
}

/// The fast path's drainer: waits for a kick's request to come due (the debounce window after the first kick of a
/// burst), takes it, and drains what is due; kicks during a drain request the next one. The schedule still runs beside it.
fn spawn_fast_path(sync: Arc<OutboundSync<SqsRetryQueue>>, kicks: LocalKicks, budget: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            kicks.next_drain().await;
            if let Err(error) = sync.drain_requested(budget).await {
                tracing::error!(%error, "fast-path sync failed; the schedule syncs the rows");
            }
        }
    })
}

/// Reconciles with HubSpot every `interval` (first after one interval), the local stand-in for the hourly
/// EventBridge Scheduler schedule.
fn spawn_reconcile(reconciler: Reconciler, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            ticks.tick().await;
            let request = ReconcileRequest {
                deadline: Some(std::time::Instant::now() + interval),
                started_by: "serve".into(),
                ..ReconcileRequest::default()
            };
            if let Err(error) = reconciler.run(&request, |_| {}).await {
                tracing::error!(%error, "scheduled reconciliation failed");
            }
        }
    })
}

/// Refreshes the cache of HubSpot's owners at start and then every `interval` (see `crmsync owners refresh`).
fn spawn_owners_refresh(applier: crmsync_inbound::Applier, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            if let Err(error) = crmsync_inbound::refresh_owners(applier.pool(), applier.hubspot()).await {
                tracing::warn!(%error, "refreshing HubSpot's owners failed; the next refresh tries again");
            }
        }
    })
}

/// Prunes old operational rows at start and then daily (see `crmsync prune`).
fn spawn_prune(pool: crmsync_db::Pool, retention: crmsync_app::config::RetentionConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            ticks.tick().await;
            if let Err(error) = crmsync_app::prune::prune(&pool, &retention, PRUNE_BUDGET).await {
                tracing::error!(%error, "scheduled prune failed");
            }
        }
    })
}

/// Long-polls the retry queue, the local stand-in for the Lambda's SQS event source.
fn spawn_retry_poller(sync: Arc<OutboundSync<SqsRetryQueue>>, drain_budget: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = sync.poll_retry_queue_once(Duration::from_secs(20), drain_budget).await {
                tracing::warn!(%error, "retry queue poll failed");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    })
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}
