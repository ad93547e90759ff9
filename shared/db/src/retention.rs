//! Retention: bounded deletes of the operational rows crmsync no longer needs (`crmsync prune`). Each batch is one
//! `DELETE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` statement, its own short transaction: it
//! takes the oldest rows past the cut-off through an index (migration 0011), skips rows another session holds
//! rather than waiting for them, and locks at most `n` rows for as long as one statement runs. Open rows (pending
//! or failed queue rows, inbox events still to apply, runs still running) are never touched.

use crate::{Db, DbError};

/// One kind of row that retention deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneTarget {
    /// `crmsync.echo_ledger`: the values the sync wrote, by `written_at`.
    EchoLedger,
    /// `crmsync.webhook_inbox` rows applied or skipped, by `received_at`.
    WebhookInbox,
    /// `crmsync.webhook_inbox` rows given up (dead), by `received_at`: kept longer, for operators.
    WebhookInboxDead,
    /// `public.sync_queue` rows completed, by `completed_at`.
    SyncQueue,
    /// `crmsync.sync_runs` rows finished, by `started_at`.
    SyncRuns,
    /// `crmsync.sync_conflicts`, by `created_at`.
    SyncConflicts,
}

impl PruneTarget {
    /// Every target, in the order a prune runs them.
    pub const ALL: [PruneTarget; 6] = [
        PruneTarget::EchoLedger,
        PruneTarget::WebhookInbox,
        PruneTarget::WebhookInboxDead,
        PruneTarget::SyncQueue,
        PruneTarget::SyncRuns,
        PruneTarget::SyncConflicts,
    ];

    /// The name in reports and logs.
    pub const fn name(self) -> &'static str {
        match self {
            PruneTarget::EchoLedger => "echo_ledger",
            PruneTarget::WebhookInbox => "webhook_inbox",
            PruneTarget::WebhookInboxDead => "webhook_inbox_dead",
            PruneTarget::SyncQueue => "sync_queue",
            PruneTarget::SyncRuns => "sync_runs",
            PruneTarget::SyncConflicts => "sync_conflicts",
        }
    }

    /// The batch statement: `$1` the retention in days, `$2` the batch size. Statuses are literals so the planner
    /// matches the partial indexes.
    fn statement(self) -> &'static str {
        match self {
            PruneTarget::EchoLedger => {
                "DELETE FROM crmsync.echo_ledger WHERE id IN (
                   SELECT id FROM crmsync.echo_ledger WHERE written_at < now() - make_interval(days => $1)
                   ORDER BY written_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            PruneTarget::WebhookInbox => {
                "DELETE FROM crmsync.webhook_inbox WHERE id IN (
                   SELECT id FROM crmsync.webhook_inbox
                   WHERE status IN ('applied', 'skipped') AND received_at < now() - make_interval(days => $1)
                   ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            PruneTarget::WebhookInboxDead => {
                "DELETE FROM crmsync.webhook_inbox WHERE id IN (
                   SELECT id FROM crmsync.webhook_inbox
                   WHERE status = 'dead' AND received_at < now() - make_interval(days => $1)
                   ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            PruneTarget::SyncQueue => {
                "DELETE FROM public.sync_queue WHERE id IN (
                   SELECT id FROM public.sync_queue
                   WHERE status = 'completed' AND completed_at < now() - make_interval(days => $1)
                   ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            PruneTarget::SyncRuns => {
                "DELETE FROM crmsync.sync_runs WHERE id IN (
                   SELECT id FROM crmsync.sync_runs
                   WHERE status <> 'running' AND started_at < now() - make_interval(days => $1)
                   ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            PruneTarget::SyncConflicts => {
                "DELETE FROM crmsync.sync_conflicts WHERE id IN (
                   SELECT id FROM crmsync.sync_conflicts WHERE created_at < now() - make_interval(days => $1)
                   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
        }
    }
}

/// Deletes at most `limit` rows of `target` older than `days` days, oldest first, in one statement; returns how
/// many it deleted. Fewer than `limit` means none is left past the cut-off (but rows another session held at that
/// moment, which the next prune takes).
pub async fn prune_batch(db: &impl Db, target: PruneTarget, days: i32, limit: i64) -> Result<u64, DbError> {
    db.execute(target.statement(), &[&days, &limit]).await
}
