//! HubSpot's webhook endpoint: the `POST /webhooks/hubspot` router (verification, inbox, 2xx) and when the stored
//! events are applied (the applier itself is crmsync-inbound's).
//!
//! Wiring: `crmsync serve` merges [`router`] with [`ApplyMode::Background`]; the hubspot-webhook Lambda serves
//! it with [`ApplyMode::Inline`]; the outbound sync's drain calls `crmsync_inbound::apply_pending_inbox`.

mod receive;

use std::sync::Arc;
use std::time::Duration;

use crmsync_app::WebhookConfig;
use crmsync_db::inbox::PgInboxStore;
use crmsync_domain::sync::RetryPolicy;
use crmsync_hubspot::signature::Verifier;
use crmsync_inbound::{Applier, apply_pending_lane};
pub use receive::{MAX_WEBHOOK_BODY_BYTES, PublicUri, WEBHOOK_PATH, public_uri, router};
use tokio::sync::Notify;

use crmsync_app::AppError;

/// When stored events are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Before answering: for Lambda, which freezes the process once the response is sent. The apply is bounded by
    /// [`WebhookConfig::apply_deadline`] (HubSpot times out after 5 s): HubSpot and SQS calls stop there, and the
    /// events left wait in the inbox for the re-apply pass and the retry queue.
    Inline,
    /// In a background task woken by each stored batch (and every [`BACKGROUND_TICK`] for postponed events):
    /// for `crmsync serve`, where the answer then costs only the insert.
    Background,
}

/// Events per pass of the background applier: a pass costs a few statements per kind of read and write whatever
/// its size, so a backlog drains in large passes (the Lambda applies each delivery, 100 events at most, on its own).
const BACKGROUND_PASS_LIMIT: i64 = 5_000;

/// Passes the background applier runs at the same time, each over its own lane of the inbox (the events of one
/// record are always in the same lane): a pass is bound by its database connection, so two lanes apply a backlog
/// on two.
const BACKGROUND_LANES: i32 = 2;

/// How often the background applier looks for postponed events that became due.
pub const BACKGROUND_TICK: Duration = Duration::from_secs(30);

/// The router's shared state, built once at start-up.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    public_url: Option<String>,
    /// The scheme of the listener (`crmsync serve` speaks plain HTTP), used when no X-Forwarded-Proto header
    /// says otherwise.
    default_scheme: &'static str,
    inbox: PgInboxStore,
    applier: Applier,
    mode: ApplyMode,
    apply_deadline: Duration,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("verifier", &self.inner.verifier)
            .field("public_url", &self.inner.public_url)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// Builds the state. With [`ApplyMode::Background`] it spawns the applier task on the current runtime; the
    /// task ends when the last clone of the state is dropped.
    pub fn new(config: &WebhookConfig, applier: Applier, mode: ApplyMode) -> Self {
        let wake = Arc::new(Notify::new());
        let state = Self {
            inner: Arc::new(Inner {
                verifier: config.verifier(),
                public_url: config.public_url.clone(),
                default_scheme: "http",
                inbox: PgInboxStore::new(applier.pool().clone()),
                applier,
                mode,
                apply_deadline: config.apply_deadline,
                wake: Arc::clone(&wake),
            }),
        };
        if mode == ApplyMode::Background {
            tokio::spawn(background_applier(Arc::downgrade(&state.inner), wake));
        }
        state
    }

    pub fn applier(&self) -> &Applier {
        &self.inner.applier
    }

    fn wake_worker(&self) {
        self.inner.wake.notify_one();
    }
}

/// Builds the state from the configuration's webhook section on the process's pool: the HubSpot client (creation
/// events read records with it) and the SQS retry queue when `RETRY_QUEUE_URL` is set. Events that cannot be
/// applied yet get `SYNC_MAX_ATTEMPTS` attempts, like sync_queue rows.
///
/// The client's calls are short here: a request times out after the apply deadline at most and is retried once,
/// so a slow HubSpot costs the handler its deadline, not the client's 30 s and five retries.
pub async fn from_config(
    config: &crmsync_app::Config,
    pool: crmsync_db::Pool,
    mode: ApplyMode,
) -> Result<WebhookState, AppError> {
    let webhook = &config.webhook;
    let hubspot = crmsync_hubspot::HubSpotClient::new(webhook_hubspot_config(config.hubspot()?, webhook))?;
    let mut applier = Applier::new(pool, hubspot, webhook.app_id.clone())
        .with_portal_id(webhook.portal_id)
        .with_retry_policy(RetryPolicy {
            max_attempts: config.sync.max_attempts,
            ..RetryPolicy::default()
        })
        .with_field_policies(config.field_policies.clone());
    if let Some(queue) = config.retry_queue().await {
        applier = applier.with_retry_queue(Arc::new(queue));
    }
    if webhook.client_secret.is_none() {
        tracing::warn!("HUBSPOT_CLIENT_SECRET is not set: every webhook request will be refused (401)");
    }
    Ok(WebhookState::new(webhook, applier, mode))
}

/// The HubSpot client settings for the webhook path: bounded by the apply deadline.
fn webhook_hubspot_config(
    mut hubspot: crmsync_hubspot::HubSpotConfig,
    webhook: &WebhookConfig,
) -> crmsync_hubspot::HubSpotConfig {
    hubspot.request_timeout = hubspot.request_timeout.min(webhook.apply_deadline);
    hubspot.max_retries = hubspot.max_retries.min(1);
    hubspot.retry_max_delay = hubspot.retry_max_delay.min(webhook.apply_deadline / 4);
    hubspot.retry_min_delay = hubspot.retry_min_delay.min(hubspot.retry_max_delay);
    hubspot.max_retry_wait = hubspot.max_retry_wait.min(webhook.apply_deadline);
    hubspot
}

async fn background_applier(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(BACKGROUND_TICK) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut lanes = tokio::task::JoinSet::new();
        for lane in 0..BACKGROUND_LANES {
            lanes.spawn(apply_lane(inner.applier.clone(), lane));
        }
        drop(inner);
        lanes.join_all().await;
    }
}

/// Passes over one lane of the inbox until it has nothing due.
async fn apply_lane(applier: Applier, lane: i32) {
    loop {
        match apply_pending_lane(&applier, BACKGROUND_PASS_LIMIT, lane, BACKGROUND_LANES).await {
            Ok(report) if report.applied + report.skipped + report.waiting + report.dead == 0 => break,
            Ok(report) => tracing::debug!(lane, ?report, "webhook events applied"),
            Err(error) => {
                tracing::error!(lane, %error, "applying webhook events failed; retrying on the next wake-up");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_app::config::DEFAULT_APPLY_DEADLINE;

    #[test]
    fn the_webhook_paths_hubspot_calls_are_bounded_by_the_apply_deadline() {
        let defaults = crmsync_hubspot::HubSpotConfig::new("http://127.0.0.1:9", "token".to_owned().into());
        assert!(
            defaults.request_timeout > DEFAULT_APPLY_DEADLINE,
            "the default is the long one"
        );
        let bounded = webhook_hubspot_config(defaults, &WebhookConfig::default());
        assert_eq!(bounded.request_timeout, DEFAULT_APPLY_DEADLINE);
        assert!(bounded.max_retries <= 1);
        assert!(bounded.max_retry_wait <= DEFAULT_APPLY_DEADLINE);
        assert!(bounded.retry_min_delay <= bounded.retry_max_delay);
        bounded.validate().expect("still a valid configuration");
    }
}
