//! The applier's metrics: one EMF document per pass that settled events (see `crmsync_app::metrics`).

use crmsync_app::metrics::{
    MetricSet, WEBHOOK_APPLY_LAG, WEBHOOK_EVENTS_APPLIED, WEBHOOK_EVENTS_DEAD, WEBHOOK_EVENTS_SKIPPED,
};
use crmsync_domain::webhook::WebhookEvent;
use uuid::Uuid;

use crate::ApplyReport;

/// Emits the pass's applied, skipped and dead counts, and its apply lag: the largest now − occurredAt among the
/// pass's events (how far behind HubSpot the local CRM was). A pass that settled nothing emits nothing.
pub(crate) fn emit_pass(report: &ApplyReport, events: &[(Uuid, WebhookEvent)], now_ms: i64) {
    if let Some(set) = pass_metrics(report, events, now_ms) {
        set.emit();
    }
}

fn pass_metrics(report: &ApplyReport, events: &[(Uuid, WebhookEvent)], now_ms: i64) -> Option<MetricSet> {
    if report.applied + report.skipped + report.dead == 0 {
        return None;
    }
    let mut set = MetricSet::new()
        .count(WEBHOOK_EVENTS_APPLIED, report.applied)
        .count(WEBHOOK_EVENTS_SKIPPED, report.skipped)
        .count(WEBHOOK_EVENTS_DEAD, report.dead);
    if let Some(oldest) = events.iter().map(|(_, e)| e.occurred_at).min() {
        set = set.seconds(WEBHOOK_APPLY_LAG, now_ms.saturating_sub(oldest).max(0) as f64 / 1000.0);
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(occurred_at: i64) -> (Uuid, WebhookEvent) {
        let raw = serde_json::json!({
            "eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": occurred_at,
            "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 7,
            "propertyName": "dealstage", "propertyValue": "x", "changeSource": "CRM_UI"
        });
        (Uuid::nil(), WebhookEvent::from_value(&raw, 0).expect("a valid event"))
    }

    #[test]
    fn the_lag_is_the_oldest_events_age_and_the_counts_are_the_reports() {
        let report = ApplyReport {
            applied: 2,
            skipped: 1,
            dead: 1,
            ..ApplyReport::default()
        };
        let set = pass_metrics(&report, &[event(10_000), event(4_000)], 12_500).expect("a pass that did something");
        let document = set.to_emf("crmsync", "test", 0);
        assert_eq!(document[WEBHOOK_EVENTS_APPLIED], 2.0);
        assert_eq!(document[WEBHOOK_EVENTS_SKIPPED], 1.0);
        assert_eq!(document[WEBHOOK_EVENTS_DEAD], 1.0);
        assert_eq!(document[WEBHOOK_APPLY_LAG], 8.5);
    }

    #[test]
    fn a_pass_that_settled_nothing_emits_nothing() {
        let report = ApplyReport {
            waiting: 3,
            ..ApplyReport::default()
        };
        assert!(pass_metrics(&report, &[event(1)], 2).is_none());
    }
}
