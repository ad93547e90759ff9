//! Retention as a use case: deletes the operational rows older than their retention ([`RetentionConfig`]) in
//! bounded batches, table by table, within a time budget. `crmsync prune`, `crmsync serve`'s daily task and the
//! outbound-sync Lambda's daily `{"action": "prune"}` event all run it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crmsync_db::Pool;
use crmsync_db::retention::{PruneTarget, prune_batch};

use crate::AppError;
use crate::config::RetentionConfig;

/// What a prune deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Rows deleted per table: `echo_ledger`, `webhook_inbox` (applied and skipped events), `webhook_inbox_dead`,
    /// `sync_queue` (completed rows), `sync_runs`, `sync_conflicts`.
    pub deleted: BTreeMap<&'static str, u64>,
    /// Delete statements run.
    pub batches: u64,
    /// False when the time budget ran out before every table was done: the next prune goes on from there.
    pub complete: bool,
    pub elapsed_ms: u64,
}

/// The retention of `target`, in days.
fn days(retention: &RetentionConfig, target: PruneTarget) -> i32 {
    match target {
        PruneTarget::EchoLedger => retention.echo_ledger_days,
        PruneTarget::WebhookInbox => retention.inbox_days,
        PruneTarget::WebhookInboxDead => retention.inbox_dead_days,
        PruneTarget::SyncQueue => retention.sync_queue_days,
        PruneTarget::SyncRuns => retention.sync_runs_days,
        PruneTarget::SyncConflicts => retention.conflicts_days,
    }
}

/// Deletes, table by table, batches of at most `retention.batch_size` rows older than the table's retention, until a
/// batch comes back short (nothing older is left) or `budget` is spent (no batch starts after it). Each batch is one
/// statement in its own transaction, so a prune never holds a lock for longer than one batch, and stopping it at any
/// point leaves nothing half-done. Logs the counts.
pub async fn prune(pool: &Pool, retention: &RetentionConfig, budget: Duration) -> Result<PruneReport, AppError> {
    let started = Instant::now();
    let deadline = started + budget;
    let mut report = PruneReport {
        complete: true,
        ..PruneReport::default()
    };
    'tables: for target in PruneTarget::ALL {
        let days = days(retention, target);
        let deleted = report.deleted.entry(target.name()).or_insert(0);
        loop {
            if Instant::now() >= deadline {
                report.complete = false;
                break 'tables;
            }
            let client = pool.get().await?;
            let rows = prune_batch(&client, target, days, retention.batch_size).await?;
            report.batches += 1;
            *deleted += rows;
            if rows < retention.batch_size.max(0) as u64 {
                break;
            }
        }
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        deleted = ?report.deleted,
        batches = report.batches,
        complete = report.complete,
        elapsed_ms = report.elapsed_ms,
        "prune finished"
    );
    Ok(report)
}
