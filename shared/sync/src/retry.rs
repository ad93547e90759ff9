//! The SQS retry path: a message says "this row may be due now" and Postgres decides; a drain request (the fast
//! path's kick) says "drain now". Handles a batch of retry
//! messages (sync_queue rows and webhook inbox events), the local poller standing in for the Lambda's event
//! source, and the DLQ clean-up after a redrive.

use std::collections::HashMap;
use std::time::Duration;

use crmsync_app::AppError;
use crmsync_db::PgSyncStore;
use crmsync_db::kick::{DueDrain, PgDrainKicks};
use crmsync_db::sync::{RETRY_DUE_SLACK, RetryRowState};
use crmsync_domain::kick::{DrainRequest, QueueMessage};
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::queue::SyncStatus;
use crmsync_domain::sync::{MAX_SQS_DELAY, RetryMessage, RetryTarget};
use crmsync_domain::webhook::InboxStatus;
use uuid::Uuid;

use crate::circuit::Gate;
use crate::drain::OutboundSync;
use crate::settings::SyncReport;

/// One SQS message as the retry handler sees it.
#[derive(Debug, Clone)]
pub struct RetryDelivery {
    pub message_id: String,
    pub body: String,
}

/// A batch's messages by what they name: (message id, row id, attempts) for sync_queue rows, (message id, event
/// id) for inbox events, and the ids of unreadable messages.
#[derive(Default)]
struct Sorted {
    rows: Vec<(String, Uuid, RetryMessage)>,
    inbox_events: Vec<(String, Uuid)>,
    unreadable: Vec<String>,
}

fn sort(deliveries: &[RetryDelivery]) -> Sorted {
    let mut sorted = Sorted::default();
    for delivery in deliveries {
        match serde_json::from_str::<RetryMessage>(&delivery.body) {
            Ok(message) => match message.target {
                RetryTarget::InboxEvent(id) => sorted.inbox_events.push((delivery.message_id.clone(), id)),
                RetryTarget::SyncQueue { id, .. } => sorted.rows.push((delivery.message_id.clone(), id, message)),
            },
            Err(error) => {
                tracing::warn!(message_id = %delivery.message_id, %error, "unreadable retry message");
                sorted.unreadable.push(delivery.message_id.clone());
            }
        }
    }
    sorted
}

/// What to do with the messages for sync_queue rows, after reading their rows.
#[derive(Default)]
struct Triage {
    /// Messages whose row is due: retried now.
    to_retry: Vec<(String, Uuid, RetryMessage)>,
    /// Rows not due yet: a fresh message for the rest of the wait.
    not_due: Vec<(RetryMessage, Duration)>,
    /// Messages for dead rows: reported failed.
    failed: Vec<String>,
}

fn triage(rows: Vec<(String, Uuid, RetryMessage)>, states: &HashMap<Uuid, RetryRowState>) -> Triage {
    let mut triage = Triage::default();
    for (message_id, id, message) in rows {
        let _span = tracing::info_span!("retry_message", %message_id, sync_queue_id = %id).entered();
        let Some(row) = states.get(&id) else {
            tracing::warn!("retry message names a sync_queue row that no longer exists");
            continue;
        };
        if row.attempts != message.attempts {
            tracing::debug!(
                row_attempts = row.attempts,
                message_attempts = message.attempts,
                "stale retry message: the row was retried since"
            );
            continue;
        }
        match row.status {
            SyncStatus::Dead => triage.failed.push(message_id),
            SyncStatus::Completed => tracing::debug!("retry message for a completed row"),
            _ if row.leased => tracing::debug!("retry message for a row another run holds"),
            status if status.is_waiting() && row.due_in > RETRY_DUE_SLACK => {
                tracing::debug!(
                    due_in_seconds = row.due_in.as_secs(),
                    "row not due: sending a fresh message"
                );
                triage.not_due.push((message, row.due_in.min(MAX_SQS_DELAY)));
            }
            _ => triage.to_retry.push((message_id, id, message)),
        }
    }
    triage
}

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Handles a batch of retry-queue messages; returns the ids of the messages that failed, for SQS's partial
    /// batch response. Postgres is the truth; a message only says "this row may be due now":
    /// - its row is retried when the message is current (the row's attempts equal the message's) and the row is due;
    /// - a row not due yet (its backoff is longer than SQS's 900 s delay cap) gets a fresh message for the rest of
    ///   the wait, and this one succeeds;
    /// - a stale message (the row was retried since, by the schedule or another message), or one whose row is
    ///   completed, gone, or held by another run (which records the outcome and sends its own message), succeeds
    ///   without a retry, so old messages never add attempts or multiply retry chains;
    /// - it fails while its row is dead, so SQS's redrive policy moves it to the DLQ after maxReceiveCount
    ///   receives, or when its body is unreadable.
    pub async fn handle_retry_messages(&self, deliveries: &[RetryDelivery]) -> Result<Vec<String>, AppError> {
        let Sorted {
            rows,
            inbox_events,
            mut unreadable,
        } = sort(deliveries);
        let mut failed = std::mem::take(&mut unreadable);
        failed.extend(self.retry_inbox_events(&inbox_events).await?);
        if rows.is_empty() {
            return Ok(failed);
        }
        let ids: Vec<Uuid> = rows.iter().map(|(_, id, _)| *id).collect();
        let states = self.store.retry_row_states(&ids).await?;
        let triage = triage(rows, &states);
        failed.extend(triage.failed);
        self.reschedule(&triage.not_due).await;
        if triage.to_retry.is_empty() {
            return Ok(failed);
        }
        if let Some(deferred) = self.defer_while_open(&triage.to_retry).await? {
            failed.extend(deferred);
            return Ok(failed);
        }
        let wanted: Vec<(Uuid, i32)> = triage.to_retry.iter().map(|(_, id, m)| (*id, m.attempts)).collect();
        let (_, claimed, statuses) = self.retry_items(&wanted).await?;
        for (message_id, id, _) in triage.to_retry {
            let _span = tracing::info_span!("retry_message", %message_id, sync_queue_id = %id).entered();
            // A row that failed again or died has a fresh message with its new attempts (a dead row's goes to the
            // DLQ); one claimed by another run in the meantime is that run's to record.
            tracing::debug!(
                claimed = claimed.contains(&id),
                status = statuses.get(&id).map(|s| s.as_str()),
                "retry message handled"
            );
        }
        Ok(failed)
    }

    /// Defers the due rows' messages while the circuit is open: each gets a fresh message for the end of the
    /// cool-down (its attempts unchanged, so it stays current) and this one succeeds, so nothing counts toward SQS's
    /// maxReceiveCount. `None` when the circuit lets calls through (after a successful probe, perhaps); otherwise
    /// the ids of the messages that could not be deferred, reported failed so SQS delivers them again after their
    /// visibility timeout. A run records the deferral (and a probe) in crmsync.sync_runs.
    async fn defer_while_open(
        &self,
        to_retry: &[(String, Uuid, RetryMessage)],
    ) -> Result<Option<Vec<String>>, AppError> {
        let mut report = SyncReport::default();
        let gate = self.circuit_gate(&mut report).await?;
        let Gate::Wait(wait) = gate else {
            if report.circuit_probed {
                self.record_run("retry_queue", &report).await;
            }
            return Ok(None);
        };
        let delay = wait.clamp(RETRY_DUE_SLACK, MAX_SQS_DELAY);
        let fresh: Vec<(RetryMessage, Duration)> = to_retry.iter().map(|(_, _, m)| (m.clone(), delay)).collect();
        let sent = match &self.retry_queue {
            Some(queue) => queue
                .schedule(&fresh)
                .await
                .map_err(|error| tracing::warn!(%error, "could not defer retry messages; SQS delivers them again"))
                .is_ok(),
            None => false,
        };
        let not_deferred: Vec<String> = if sent {
            report.circuit_deferred = fresh.len() as u64;
            report.retry_messages = fresh.len() as u64;
            Vec::new()
        } else {
            to_retry.iter().map(|(message_id, ..)| message_id.clone()).collect()
        };
        tracing::info!(
            circuit = "open",
            deferred = report.circuit_deferred,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "HubSpot circuit open: retry messages deferred to the end of the cool-down"
        );
        self.record_run("retry_queue", &report).await;
        Ok(Some(not_deferred))
    }

    /// Applies the inbox events the messages name; returns the ids of the messages whose event is dead. The
    /// applier records what it could not apply (attempts, next try, or dead) in the inbox itself; a dead event's
    /// message is reported failed, so the redrive policy moves it to the DLQ.
    async fn retry_inbox_events(&self, inbox_events: &[(String, Uuid)]) -> Result<Vec<String>, AppError> {
        if inbox_events.is_empty() {
            return Ok(Vec::new());
        }
        let Some(applier) = &self.inbox else {
            tracing::warn!(
                events = inbox_events.len(),
                "inbox retry messages but no applier; the next pass applies them"
            );
            return Ok(Vec::new());
        };
        let ids: Vec<Uuid> = inbox_events.iter().map(|(_, id)| *id).collect();
        let statuses = applier.apply_retried(&ids).await?;
        Ok(inbox_events
            .iter()
            .filter(|(_, id)| statuses.get(id) == Some(&InboxStatus::Dead))
            .map(|(message_id, _)| message_id.clone())
            .collect())
    }

    /// Sends fresh messages for rows not due yet. If this fails the schedule still retries the rows when due.
    async fn reschedule(&self, not_due: &[(RetryMessage, Duration)]) {
        if not_due.is_empty() {
            return;
        }
        match &self.retry_queue {
            Some(queue) => {
                if let Err(error) = queue.schedule(not_due).await {
                    tracing::warn!(%error, "could not send fresh retry messages; the schedule will retry");
                }
            }
            None => tracing::warn!("retry messages but no retry queue configured; the schedule will retry"),
        }
    }
}

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Handles a batch from the retry queue: the fast path's drain requests and row retries. Drain requests (one or
    /// many, the batch makes one drain) first forget the waiting kick in crmsync.drain_kicks, *then* drain until the
    /// queue is empty or `drain_budget` is spent, so a row committed after this drain's last claim finds no request
    /// waiting and its kick asks for the next drain. A drain request always succeeds: if the drain fails, it is
    /// logged and the schedule takes the rows (a DLQ of drain requests would only raise the alarm). The rest go to
    /// [`OutboundSync::handle_retry_messages`]. Returns the ids of the messages that failed.
    pub async fn handle_queue_messages(
        &self,
        deliveries: &[RetryDelivery],
        drain_budget: Duration,
    ) -> Result<Vec<String>, AppError> {
        let mut drains = Vec::new();
        let mut retries = Vec::new();
        for delivery in deliveries {
            match QueueMessage::parse(&delivery.body) {
                Ok(QueueMessage::Drain(request)) => drains.push(request),
                _ => retries.push(delivery.clone()),
            }
        }
        if !drains.is_empty() {
            self.drain_on_request(&drains, drain_budget).await;
        }
        self.handle_retry_messages(&retries).await
    }

    /// The drain kicks asked for with `requests` (see [`OutboundSync::handle_queue_messages`]). A message whose
    /// request is gone or not due yet does nothing: a full batch pulled its request forward and a drain took it, and
    /// any newer request has its own message on the way. A message from before requests carried their due time
    /// always drains.
    pub async fn drain_on_request(&self, requests: &[DrainRequest], budget: Duration) {
        let kicks = PgDrainKicks::outbound(self.store.pool().clone());
        let started = if requests.iter().any(|r| r.due_at.is_none()) {
            kicks
                .start_drain()
                .await
                .map(|requested_at| DueDrain::Started { requested_at })
        } else {
            kicks.start_due_drain(DRAIN_DUE_SLACK).await
        };
        match started {
            Ok(DueDrain::Started { requested_at }) => {
                tracing::info!(requests = requests.len(), ?requested_at, "fast path: drain requested")
            }
            Ok(DueDrain::NotDue { due_at }) => {
                tracing::info!(requests = requests.len(), %due_at, "fast path: drained already; the next request is due later");
                return;
            }
            Ok(DueDrain::NoneWaiting) => {
                tracing::info!(
                    requests = requests.len(),
                    "fast path: drained already (a full batch went early)"
                );
                return;
            }
            // Draining anyway is safe: the request lapses by itself, and a kick meanwhile is covered by this drain
            // or by the lapse.
            Err(error) => tracing::warn!(%error, "fast path: could not take the kick request; draining anyway"),
        }
        if let Err(error) = self.drain_requested(budget).await {
            tracing::error!(%error, "fast path: the requested drain failed; the schedule syncs the rows");
        }
    }
}

/// How early a drain request may find its request and still take it: SQS delays are whole seconds, rounded up, so a
/// message never comes before its request is due; this covers the clocks of SQS and the database disagreeing.
const DRAIN_DUE_SLACK: Duration = Duration::from_secs(1);

/// The trigger of a drain a kick asked for, in crmsync.sync_runs.
pub const KICK_TRIGGER: &str = "kick";

impl OutboundSync<crmsync_queue::SqsRetryQueue> {
    /// One long poll of the retry queue (the local stand-in for the Lambda's SQS event source): handles the
    /// messages received and deletes those that succeeded; failed ones reappear after their visibility timeout
    /// and, after maxReceiveCount receives, move to the DLQ. Returns (received, failed).
    /// Drain requests among the messages drain for up to `drain_budget`.
    pub async fn poll_retry_queue_once(
        &self,
        wait: Duration,
        drain_budget: Duration,
    ) -> Result<(usize, usize), AppError> {
        let Some(queue) = &self.retry_queue else {
            return Ok((0, 0));
        };
        let received = queue.receive(wait, None).await?;
        if received.is_empty() {
            return Ok((0, 0));
        }
        let deliveries: Vec<RetryDelivery> = received
            .iter()
            .map(|m| RetryDelivery {
                message_id: m.message_id.clone(),
                body: m.body.clone(),
            })
            .collect();
        let failed = self.handle_queue_messages(&deliveries, drain_budget).await?;
        let succeeded: Vec<String> = received
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.clone())
            .collect();
        for receipt_handle in succeeded {
            queue.delete(&receipt_handle).await?;
        }
        Ok((received.len(), failed.len()))
    }
}

/// After a redrive, removes from the DLQ the messages whose rows are no longer dead. Returns how many it removed.
/// Only messages that read as sync retry messages for a sync_queue row that exists and is not dead are removed;
/// anything else (an unreadable body, a webhook inbox message, a row still dead or gone) stays for an operator.
pub async fn purge_redriven(store: &PgSyncStore, queue: &crmsync_queue::SqsRetryQueue) -> Result<usize, AppError> {
    let mut removed = 0;
    loop {
        // Messages left alone stay invisible for this long, so the loop ends once it has seen each one.
        let messages = queue.receive_dead(Duration::from_secs(30)).await?;
        if messages.is_empty() {
            return Ok(removed);
        }
        let parsed: Vec<(String, Option<Uuid>)> = messages
            .iter()
            .map(|m| {
                let id = serde_json::from_str::<RetryMessage>(&m.body)
                    .ok()
                    .and_then(|r| r.sync_queue_id());
                (m.receipt_handle.clone(), id)
            })
            .collect();
        let ids: Vec<Uuid> = parsed.iter().filter_map(|(_, id)| *id).collect();
        let statuses = store.statuses(&ids).await?;
        for (receipt, id) in parsed {
            let redriven = id
                .and_then(|id| statuses.get(&id))
                .is_some_and(|s| *s != SyncStatus::Dead);
            if redriven {
                queue.delete_dead(&receipt).await?;
                removed += 1;
            }
        }
    }
}
