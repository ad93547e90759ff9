//! Webhook delivery: an outbox of change events, a background worker that cuts them into signed
//! JSON-array batches of at most 100, POSTs them to the target, and retries failures with
//! exponential backoff (`attemptNumber` counts up), plus the record tests read back.
//!
//! Rules: <https://developers.hubspot.com/docs/api/webhooks> — batches under 100, retries on
//! connection failures, timeouts and any 4xx/5xx, no ordering guarantee. Signatures:
//! <https://developers.hubspot.com/docs/api/webhooks/validating-requests>, computed with
//! `crmsync_hubspot::signature` over the exact body bytes and the configured target URL.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use crmsync_hubspot::signature::{
    HEADER_REQUEST_TIMESTAMP, HEADER_SIGNATURE, HEADER_SIGNATURE_V3, HEADER_SIGNATURE_VERSION, sign_v1, sign_v3,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

use crate::SimError;
use crate::config::{SimConfig, WebhookDelivery, WebhookTarget};
use crate::events::{ChangeEvent, EventContext};
use crate::state::lock;

/// Batches whose payloads are kept for inspection; counts are kept for all.
const KEPT_BATCHES: usize = 20_000;

/// The signature headers HubSpot puts on a delivery: v3 always, v1 when `send_v1`.
pub fn signature_headers(target: &WebhookTarget, body: &[u8], timestamp_ms: i64) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            HEADER_SIGNATURE_V3,
            sign_v3(&target.client_secret, "POST", &target.url, body, timestamp_ms),
        ),
        (HEADER_REQUEST_TIMESTAMP, timestamp_ms.to_string()),
    ];
    if target.send_v1 {
        headers.push((HEADER_SIGNATURE, sign_v1(&target.client_secret, body)));
        headers.push((HEADER_SIGNATURE_VERSION, "v1".to_string()));
    }
    headers
}

#[derive(Debug, Clone)]
struct Queued {
    event_id: u64,
    event: ChangeEvent,
}

#[derive(Debug)]
struct OutboxState {
    target: Option<WebhookTarget>,
    queue: VecDeque<Queued>,
    /// Events in batches being sent or waiting for a retry.
    in_flight: usize,
    next_event_id: u64,
    /// Bumped by a reset so that batches already in flight stop and are forgotten.
    generation: u64,
    delivered_batches: u64,
    delivered_events: u64,
    failed_attempts: u64,
    abandoned_events: u64,
    /// Drop events instead of queueing them (HubSpot losing deliveries).
    dropping: bool,
    dropped_events: u64,
    deliveries: Vec<Value>,
    attempts: Vec<Value>,
    rng: StdRng,
}

struct Outbox {
    state: Mutex<OutboxState>,
    wake: Notify,
    closed: AtomicBool,
    delivery: WebhookDelivery,
    context: EventContext,
    seed: u64,
    /// `dropping` after a reset: the configuration's `drop_webhooks`.
    drop_at_start: bool,
    client: reqwest::Client,
}

/// Handle on the outbox and its worker.
#[derive(Clone)]
pub struct Webhooks {
    outbox: Arc<Outbox>,
}

impl Webhooks {
    /// Creates the outbox and spawns the delivery worker on the current Tokio runtime.
    pub fn start(config: &SimConfig) -> Result<Self, SimError> {
        let client = reqwest::Client::builder().build()?;
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutboxState {
                target: config.webhook.clone(),
                queue: VecDeque::new(),
                in_flight: 0,
                next_event_id: 1,
                generation: 0,
                delivered_batches: 0,
                delivered_events: 0,
                failed_attempts: 0,
                abandoned_events: 0,
                dropping: config.drop_webhooks,
                dropped_events: 0,
                deliveries: Vec::new(),
                attempts: Vec::new(),
                rng: StdRng::seed_from_u64(config.seed),
            }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            delivery: config.webhook_delivery.clone(),
            context: EventContext {
                portal_id: config.portal_id,
                app_id: config.app_id,
                user_id: config.user_id,
            },
            seed: config.seed,
            drop_at_start: config.drop_webhooks,
            client,
        });
        tokio::spawn(run_worker(outbox.clone()));
        Ok(Self { outbox })
    }

    /// Queues change events for delivery; dropped when no target is configured (no subscription), and dropped and
    /// counted while [`Webhooks::set_dropping`] is on.
    pub fn enqueue(&self, events: Vec<ChangeEvent>) {
        if events.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.outbox.state);
            if state.dropping {
                state.dropped_events += events.len() as u64;
                return;
            }
            if state.target.is_none() {
                return;
            }
            for event in events {
                let event_id = state.next_event_id;
                state.next_event_id += 1;
                state.queue.push_back(Queued { event_id, event });
            }
        }
        self.outbox.wake.notify_one();
    }

    /// Sets or clears the target (admin). Events already queued go to the new target.
    pub fn set_target(&self, target: Option<WebhookTarget>) {
        let mut state = lock(&self.outbox.state);
        if target.is_none() {
            state.queue.clear();
        }
        state.target = target;
        drop(state);
        self.outbox.wake.notify_one();
    }

    /// Drops every event from now on (`true`) instead of delivering it, as HubSpot sometimes loses deliveries; events
    /// already queued are still delivered.
    pub fn set_dropping(&self, dropping: bool) {
        lock(&self.outbox.state).dropping = dropping;
    }

    /// Events queued or in flight.
    pub fn pending(&self) -> usize {
        let state = lock(&self.outbox.state);
        state.queue.len() + state.in_flight
    }

    /// Waits until nothing is queued or in flight; `false` if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The outbox as the admin API shows it; `with_payloads` adds every delivered batch.
    pub fn to_json(&self, with_payloads: bool) -> Value {
        let state = lock(&self.outbox.state);
        let mut out = json!({
            "target": state.target.as_ref().map(|t| json!({"url": t.url, "sendV1": t.send_v1})),
            "pending": state.queue.len() + state.in_flight,
            "queued": state.queue.len(),
            "inFlight": state.in_flight,
            "deliveredBatches": state.delivered_batches,
            "deliveredEvents": state.delivered_events,
            "failedAttempts": state.failed_attempts,
            "abandonedEvents": state.abandoned_events,
            "dropping": state.dropping,
            "droppedEvents": state.dropped_events,
        });
        if with_payloads {
            out["deliveries"] = Value::Array(state.deliveries.clone());
            out["attempts"] = Value::Array(state.attempts.clone());
        }
        out
    }

    /// Forgets queued, in-flight and delivered batches.
    pub fn reset(&self) {
        let mut state = lock(&self.outbox.state);
        state.generation += 1;
        state.queue.clear();
        state.in_flight = 0;
        state.next_event_id = 1;
        state.delivered_batches = 0;
        state.delivered_events = 0;
        state.failed_attempts = 0;
        state.abandoned_events = 0;
        state.dropping = self.outbox.drop_at_start;
        state.dropped_events = 0;
        state.deliveries.clear();
        state.attempts.clear();
        state.rng = StdRng::seed_from_u64(self.outbox.seed);
    }

    /// Stops the worker and any retries.
    pub fn close(&self) {
        self.outbox.closed.store(true, Ordering::SeqCst);
        self.outbox.wake.notify_one();
    }
}

async fn run_worker(outbox: Arc<Outbox>) {
    let slots = Arc::new(Semaphore::new(outbox.delivery.max_concurrent.max(1)));
    loop {
        outbox.wake.notified().await;
        loop {
            if outbox.closed.load(Ordering::SeqCst) {
                return;
            }
            let next = {
                let mut state = lock(&outbox.state);
                match state.target.clone() {
                    Some(target) if !state.queue.is_empty() => {
                        if outbox.delivery.shuffle {
                            let OutboxState { queue, rng, .. } = &mut *state;
                            queue.make_contiguous().shuffle(rng);
                        }
                        let size = outbox.delivery.max_batch_size.clamp(1, 100).min(state.queue.len());
                        let batch: Vec<Queued> = state.queue.drain(..size).collect();
                        state.in_flight += batch.len();
                        Some((batch, target, state.generation))
                    }
                    _ => None,
                }
            };
            let Some((batch, target, generation)) = next else { break };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let outbox = outbox.clone();
            tokio::spawn(async move {
                deliver(&outbox, batch, &target, generation).await;
                drop(permit);
            });
        }
    }
}

/// Sends one batch until it is accepted or out of attempts.
async fn deliver(outbox: &Outbox, batch: Vec<Queued>, target: &WebhookTarget, generation: u64) {
    let delivery = &outbox.delivery;
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(delivery.initial_retry_delay)
        .with_max_delay(delivery.max_retry_delay)
        .with_max_times(delivery.max_attempts.saturating_sub(1) as usize)
        .with_jitter()
        .build();
    let count = batch.len();
    let mut attempt: u32 = 0;
    loop {
        if outbox.closed.load(Ordering::SeqCst) || lock(&outbox.state).generation != generation {
            return;
        }
        let events: Vec<Value> = batch
            .iter()
            .map(|q| q.event.to_json(q.event_id, attempt, outbox.context))
            .collect();
        let body = serde_json::to_vec(&events).expect("JSON values serialize");
        let timestamp = chrono::Utc::now().timestamp_millis();
        let mut request = outbox
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .timeout(delivery.request_timeout);
        for (name, value) in signature_headers(target, &body, timestamp) {
            request = request.header(name, value);
        }
        let outcome = match request.body(body).send().await {
            Ok(response) => Ok(response.status()),
            Err(error) => Err(error.without_url().to_string()),
        };
        let accepted = matches!(outcome, Ok(status) if status.is_success());
        {
            let mut state = lock(&outbox.state);
            if state.generation != generation {
                return;
            }
            let outcome_json = match &outcome {
                Ok(status) => json!(status.as_u16()),
                Err(error) => json!(error),
            };
            if state.attempts.len() < KEPT_BATCHES {
                state
                    .attempts
                    .push(json!({"attemptNumber": attempt, "eventCount": count, "outcome": outcome_json}));
            }
            if accepted {
                state.delivered_batches += 1;
                state.delivered_events += count as u64;
                state.in_flight = state.in_flight.saturating_sub(count);
                if state.deliveries.len() < KEPT_BATCHES {
                    state
                        .deliveries
                        .push(json!({"attemptNumber": attempt, "status": outcome_json, "events": events}));
                }
                return;
            }
            state.failed_attempts += 1;
        }
        match delays.next() {
            Some(delay) => tokio::time::sleep(delay).await,
            None => {
                let mut state = lock(&outbox.state);
                if state.generation == generation {
                    state.abandoned_events += count as u64;
                    state.in_flight = state.in_flight.saturating_sub(count);
                }
                tracing::warn!(
                    events = count,
                    attempts = attempt + 1,
                    "webhook batch abandoned after its last attempt"
                );
                return;
            }
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

    #[test]
    fn the_v3_header_matches_hubspots_documented_vector() {
        let target = WebhookTarget {
            url: "https://www.example.com/webhook_uri".into(),
            client_secret: SECRET.into(),
            send_v1: false,
        };
        let headers = signature_headers(&target, b"{'example_field':'example_value'}", 1_693_657_560_000);
        assert_eq!(
            headers,
            [
                (
                    HEADER_SIGNATURE_V3,
                    "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=".to_string()
                ),
                (HEADER_REQUEST_TIMESTAMP, "1693657560000".to_string()),
            ]
        );
    }

    #[test]
    fn the_v1_header_matches_hubspots_documented_vector_when_enabled() {
        let target = WebhookTarget {
            url: "https://example.com/".into(),
            client_secret: SECRET.into(),
            send_v1: true,
        };
        let body = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        let headers = signature_headers(&target, body.as_bytes(), 0);
        assert!(headers.contains(&(
            HEADER_SIGNATURE,
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de".to_string()
        )));
        assert!(headers.contains(&(HEADER_SIGNATURE_VERSION, "v1".to_string())));
    }
}
