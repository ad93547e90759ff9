//! The outbound sync's metrics: one EMF document per run (a drain or a retry batch) with its counts and the queue's
//! gauges afterwards (see `crmsync_app::metrics`).

use crmsync_app::metrics::{
    CIRCUIT_OPEN, HUBSPOT_429S, HUBSPOT_REQUESTS, MetricSet, QUEUE_DEPTH, QUEUE_OLDEST_PENDING_AGE, SYNC_ITEMS_DEAD,
    SYNC_ITEMS_FAILED, SYNC_ITEMS_SYNCED,
};
use crmsync_db::PgSyncStore;

use crate::SyncReport;

/// Emits the run's counts, and the queue depth and oldest pending age read after it. A failed read leaves the gauges
/// out (logged): the counts still go.
pub(crate) async fn emit_run(store: &PgSyncStore, report: &SyncReport) {
    let mut set = run_metrics(report);
    match store.queue_gauges().await {
        Ok(gauges) => {
            set = set
                .count(QUEUE_DEPTH, u64::try_from(gauges.depth).unwrap_or(0))
                .seconds(QUEUE_OLDEST_PENDING_AGE, gauges.oldest_pending_age_seconds);
        }
        Err(error) => tracing::warn!(%error, "could not read the queue's gauges for the metrics"),
    }
    set.emit();
}

/// The run's counts. Synced: the claimed rows that neither failed, died, waited for another record nor were left
/// for the next run, i.e. those completed.
fn run_metrics(report: &SyncReport) -> MetricSet {
    let not_synced = report.failed + report.dead + report.deferred + report.postponed;
    MetricSet::new()
        .count(SYNC_ITEMS_SYNCED, report.claimed.saturating_sub(not_synced))
        .count(SYNC_ITEMS_FAILED, report.failed)
        .count(SYNC_ITEMS_DEAD, report.dead)
        .count(HUBSPOT_REQUESTS, report.hubspot_requests)
        .count(HUBSPOT_429S, report.hubspot_429)
        // 1 while the circuit breaker keeps the sync from HubSpot (the "open circuit" alarm), 0 otherwise.
        .count(CIRCUIT_OPEN, u64::from(report.circuit_open || report.circuit_opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_items_are_the_claimed_ones_that_completed() {
        let report = SyncReport {
            claimed: 20,
            failed: 3,
            dead: 2,
            deferred: 4,
            postponed: 1,
            hubspot_requests: 7,
            hubspot_429: 1,
            ..SyncReport::default()
        };
        let document = run_metrics(&report).to_emf("crmsync", "test", 0);
        assert_eq!(document[SYNC_ITEMS_SYNCED], 10.0);
        assert_eq!(document[SYNC_ITEMS_FAILED], 3.0);
        assert_eq!(document[SYNC_ITEMS_DEAD], 2.0);
        assert_eq!(document[HUBSPOT_REQUESTS], 7.0);
        assert_eq!(document[HUBSPOT_429S], 1.0);
        assert_eq!(document[CIRCUIT_OPEN], 0.0);
        let open = SyncReport {
            circuit_opened: true,
            ..SyncReport::default()
        };
        assert_eq!(run_metrics(&open).to_emf("crmsync", "test", 0)[CIRCUIT_OPEN], 1.0);
    }
}
