//! The outbound-sync Lambda. Two event sources share one function:
//! - the EventBridge schedule (every 5 minutes): drain due sync_queue rows until empty or the time budget (the
//!   invocation's remaining time minus a margin) is spent;
//! - the SQS retry queue (ReportBatchItemFailures): retry the rows the messages name, and report failures one
//!   message at a time; a drain request on it (`{"kind": "drain"}`, the fast path's kick after an ingestion or an
//!   API write) drains the queue as the schedule does;
//! - the hourly EventBridge Scheduler schedule whose input is `{"action": "reconcile"}`: reconcile with HubSpot
//!   (read what changed there since the watermark and apply it as the lost webhooks would have), within the same
//!   time budget.
//! - the daily EventBridge Scheduler schedule whose input is `{"action": "prune"}`: delete old operational rows
//!   (retention).
//! - `{"action": "refresh-owners"}` (an operator's `aws lambda invoke`): refresh the cache of HubSpot's owners, which
//!   every reconciliation also does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use crmsync_app::AppError;
use crmsync_app::config::RetentionConfig;
use crmsync_inbound::{ReconcileRequest, Reconciler};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, RetryDelivery};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

/// Time kept back from the invocation's deadline for the write-back and the run record.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(
        "the event is neither an SQS batch, a scheduled event nor an action (reconcile, prune, refresh-owners): {0}"
    )]
    UnknownEvent(String),
    #[error("reconciliation needs the webhook applier, which this function was built without")]
    NoApplier,
}

/// The input of the reconciliation schedule (template.yaml's ReconcileSchedule).
pub const RECONCILE_ACTION: &str = "reconcile";

impl From<SyncFailure> for Diagnostic {
    fn from(failure: SyncFailure) -> Self {
        let retryable = matches!(&failure, SyncFailure::App(error) if error.is_retryable());
        Diagnostic {
            error_type: if retryable { "Retryable" } else { "NonRetryable" }.into(),
            error_message: failure.to_string(),
        }
    }
}

/// Refreshes the cache of HubSpot's owners on demand: `{"action": "refresh-owners"}`.
pub const OWNERS_ACTION: &str = "refresh-owners";

/// The input of the daily retention schedule (template.yaml's DailyPrune): `{"action": "prune"}`.
pub const PRUNE_ACTION: &str = "prune";

/// Handles one invocation: an SQS batch gets a partial batch response, a schedule tick a drain report, the prune
/// schedule's event a prune report (rows deleted per table).
pub async fn handle(
    sync: &OutboundSync<SqsRetryQueue>,
    retention: &RetentionConfig,
    event: LambdaEvent<Value>,
) -> Result<Value, SyncFailure> {
    let (payload, context) = event.into_parts();
    let budget = remaining(context.deadline)
        .saturating_sub(DEADLINE_MARGIN)
        .max(Duration::from_secs(1));
    if payload.get("action").and_then(Value::as_str) == Some(PRUNE_ACTION) {
        let report = crmsync_app::prune::prune(sync.store().pool(), retention, budget).await?;
        return serde_json::to_value(report).map_err(|e| SyncFailure::UnknownEvent(e.to_string()));
    }
    if payload.get("Records").is_some() {
        let sqs: SqsEvent =
            serde_json::from_value(payload).map_err(|e| SyncFailure::UnknownEvent(format!("bad SQS event: {e}")))?;
        let response = handle_sqs(sync, sqs, budget).await?;
        return serde_json::to_value(response).map_err(|e| SyncFailure::UnknownEvent(e.to_string()));
    }
    if payload.get("action").and_then(Value::as_str) == Some(RECONCILE_ACTION) {
        let applier = sync.inbox().cloned().ok_or(SyncFailure::NoApplier)?;
        let request = ReconcileRequest {
            deadline: Some(std::time::Instant::now() + budget),
            started_by: "schedule".into(),
            ..ReconcileRequest::default()
        };
        let report = Reconciler::new(applier).run(&request, |_| {}).await?;
        return serde_json::to_value(report).map_err(|e| SyncFailure::UnknownEvent(e.to_string()));
    }
    if payload.get("action").and_then(Value::as_str) == Some(OWNERS_ACTION) {
        let applier = sync.inbox().cloned().ok_or(SyncFailure::NoApplier)?;
        let refreshed = crmsync_inbound::refresh_owners(applier.pool(), applier.hubspot()).await?;
        return serde_json::to_value(refreshed).map_err(|e| SyncFailure::UnknownEvent(e.to_string()));
    }
    if payload.get("detail-type").is_none() && payload.get("source").is_none() {
        return Err(SyncFailure::UnknownEvent(
            "expected SQS Records, an EventBridge event, or {\"action\": \"reconcile\", \"prune\" or \"refresh-owners\"}"
                .into(),
        ));
    }
    let report = sync.drain("schedule", budget).await?;
    serde_json::to_value(report).map_err(|e| SyncFailure::UnknownEvent(e.to_string()))
}

/// Drains when the batch holds a drain request (the fast path's kick), within `drain_budget`, and retries the rows
/// the retry messages name; a message whose row is still not done is reported as a failure.
pub async fn handle_sqs(
    sync: &OutboundSync<SqsRetryQueue>,
    event: SqsEvent,
    drain_budget: Duration,
) -> Result<SqsBatchResponse, SyncFailure> {
    let deliveries: Vec<RetryDelivery> = event
        .records
        .into_iter()
        .filter_map(|record| {
            Some(RetryDelivery {
                message_id: record.message_id?,
                body: record.body.unwrap_or_default(),
            })
        })
        .collect();
    let failed = sync.handle_queue_messages(&deliveries, drain_budget).await?;
    let batch_item_failures = failed
        .into_iter()
        .map(|item_identifier| BatchItemFailure { item_identifier })
        .collect();
    Ok(SqsBatchResponse { batch_item_failures })
}

/// Time left until a deadline given in milliseconds since the epoch.
fn remaining(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
