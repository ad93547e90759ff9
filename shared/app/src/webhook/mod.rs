//! Inbound HubSpot webhooks: the `POST /webhooks/hubspot` router (verification, inbox, 2xx), the applier that
//! brings HubSpot's changes into the local CRM by field ownership, and the re-apply pass for events that had to
//! wait.
//!
//! Wiring: `crmsync serve` merges [`router`] with [`ApplyMode::Background`]; the hubspot-webhook Lambda serves
//! it with [`ApplyMode::Inline`]; the outbound sync's drain calls [`apply_pending_inbox`].

mod apply;
mod config;
mod http;

use std::sync::Arc;
use std::time::Duration;

pub use apply::{Applier, ApplyReport, DEFAULT_PASS_LIMIT, apply_pending_inbox};
pub use config::WebhookConfig;
use crmsync_db::inbox::PgInboxStore;
use crmsync_hubspot::signature::Verifier;
pub use http::{MAX_WEBHOOK_BODY_BYTES, PublicUri, WEBHOOK_PATH, public_uri, router};
use tokio::sync::Notify;

/// When stored events are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Before answering: for Lambda, which freezes the process once the response is sent. A batch of 100 events
    /// applies in well under HubSpot's 5-second timeout.
    Inline,
    /// In a background task woken by each stored batch (and every [`BACKGROUND_TICK`] for postponed events):
    /// for `crmsync serve`, where the answer then costs only the insert.
    Background,
}

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

async fn background_applier(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(BACKGROUND_TICK) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        loop {
            match apply_pending_inbox(&inner.applier, DEFAULT_PASS_LIMIT).await {
                Ok(report) if report.applied + report.skipped + report.waiting + report.dead == 0 => break,
                Ok(report) => tracing::debug!(?report, "webhook events applied"),
                Err(error) => {
                    tracing::error!(%error, "applying webhook events failed; retrying on the next wake-up");
                    break;
                }
            }
        }
    }
}
