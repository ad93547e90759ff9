//! The write-back of a round's results: successes in one transaction, then the items put back (waiting, or
//! unsent at the deadline), then failures as the domain decides them, then their retry messages.

use std::collections::HashSet;
use std::time::Duration;

use crmsync_app::AppError;
use crmsync_domain::circuit::CallStreak;
use crmsync_domain::failure::{FailureClass, FailureHistory};
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{RetryDecision, RetryMessage, SyncItem};
use uuid::Uuid;

use crate::drain::OutboundSync;
use crate::round::{Failure, RoundOutcome};
use crate::settings::{SyncReport, WAIT_FOR_COMPANY};

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Writes a round's results gathered so far, and empties them from `outcome`.
    pub(crate) async fn write_back(&self, outcome: &mut RoundOutcome, report: &mut SyncReport) -> Result<(), AppError> {
        let lease = outcome.lease.clone();
        // What HubSpot's answers say about the circuit: an accepted record is a success, and each failed call counts
        // toward opening it (successes first: the failures in a row are the ones that end a step). A call that
        // failed as a whole reported one error for all its inputs, so a call is one distinct error text.
        let mut calls = CallStreak::default();
        if !outcome.synced.is_empty() {
            calls.success();
        }
        let failed_calls: HashSet<&str> = outcome
            .failures
            .iter()
            .filter(|f| f.from_hubspot && f.class.is_retryable())
            .map(|f| f.error.as_str())
            .collect();
        for _ in &failed_calls {
            calls.failure();
        }
        if self.record_calls(calls, report).await? {
            outcome.circuit_open = true;
        }
        let synced = std::mem::take(&mut outcome.synced);
        let completed = std::mem::take(&mut outcome.completed);
        if !synced.is_empty() || !completed.is_empty() {
            let lost = self.store.complete(&synced, &completed, &lease).await?;
            lease_lost(&lost, "completed");
        }
        self.put_back(outcome, report, &lease).await?;
        let mut failures = std::mem::take(&mut outcome.failures);
        let policy = &self.settings.retry;
        failures.extend(std::mem::take(&mut outcome.crashed).into_iter().map(|item| Failure {
            error: FailureClass::crash_error(&item, policy),
            items: vec![item],
            class: FailureClass::Crashed,
            from_hubspot: false,
        }));
        let mut messages = Vec::new();
        for failure in failures {
            messages.extend(self.record_failure(failure, report, &lease).await?);
        }
        self.send_retry_messages(&messages, report).await;
        Ok(())
    }

    /// Puts back the items that wait for another record, and those the deadline left unsent, without counting an
    /// attempt.
    async fn put_back(&self, outcome: &mut RoundOutcome, report: &mut SyncReport, lease: &str) -> Result<(), AppError> {
        for (ids, reason) in std::mem::take(&mut outcome.deferred) {
            report.deferred += ids.len() as u64;
            let written = self.store.defer(&ids, &reason, WAIT_FOR_COMPANY, lease).await?;
            not_put_back(ids.len(), written);
        }
        let waiting = std::mem::take(&mut outcome.waiting_for_company);
        if !waiting.is_empty() {
            report.deferred += waiting.len() as u64;
            let written = self
                .store
                .defer_for_companies(&waiting, WAIT_FOR_COMPANY, lease)
                .await?;
            not_put_back(waiting.len(), written);
        }
        let unsent = std::mem::take(&mut outcome.unsent);
        if !unsent.is_empty() {
            report.postponed += unsent.len() as u64;
            let (reason, delay) = if outcome.circuit_open {
                (
                    "the HubSpot circuit opened before it was sent: waits for the cool-down",
                    self.settings.circuit.cooldown,
                )
            } else {
                ("the run's time budget ran out before it was sent", Duration::ZERO)
            };
            self.store.defer(&unsent, reason, delay, lease).await?;
        }
        Ok(())
    }

    /// Records items that failed together as the domain decides from each one's history (retry after a backoff,
    /// or dead), and returns the retry messages for the rows this run still held: the taker of the others sends
    /// its own.
    async fn record_failure(
        &self,
        failure: Failure,
        report: &mut SyncReport,
        lease: &str,
    ) -> Result<Vec<(RetryMessage, Duration)>, AppError> {
        let Failure {
            items, error, class, ..
        } = failure;
        if class == FailureClass::DailyLimit {
            report.daily_limit_reached = true;
        }
        let text = class.last_error(error);
        let jitter = rand::random::<f64>();
        // Items with the same history get the same decision: one statement each.
        let mut decided: Vec<(RetryDecision, Vec<SyncItem>)> = Vec::new();
        for item in items {
            let decision = class.decide(FailureHistory::from(&item), &self.settings.retry, jitter);
            match decided.iter_mut().find(|(d, _)| *d == decision) {
                Some((_, group)) => group.push(item),
                None => decided.push((decision, vec![item])),
            }
        }
        let mut messages = Vec::new();
        for (decision, items) in decided {
            let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
            let written = self
                .store
                .fail(&ids, &text, decision, class.is_retryable(), lease)
                .await?;
            let lost: Vec<Uuid> = ids.iter().copied().filter(|id| !written.contains(id)).collect();
            lease_lost(&lost, "failed");
            let items: Vec<&SyncItem> = items.iter().filter(|i| written.contains(&i.id)).collect();
            messages.extend(match decision {
                RetryDecision::RetryAfter { delay, attempts } => {
                    report.failed += items.len() as u64;
                    items
                        .iter()
                        .map(|item| (RetryMessage::for_item(item, attempts), delay))
                        .collect::<Vec<_>>()
                }
                RetryDecision::Dead { attempts } => {
                    report.dead += items.len() as u64;
                    // A message for the dead item, reported failed on every receive, so the redrive policy puts it
                    // in the DLQ and its alarm fires, however the item died (on the schedule or on the retry path,
                    // whose triggering message is then acknowledged: its attempts no longer match).
                    items
                        .iter()
                        .map(|item| (RetryMessage::for_item(item, attempts), Duration::ZERO))
                        .collect()
                }
            });
            tracing::warn!(items = ids.len(), error = %text, ?decision, "sync items failed");
        }
        Ok(messages)
    }

    async fn send_retry_messages(&self, messages: &[(RetryMessage, Duration)], report: &mut SyncReport) {
        if let (Some(queue), false) = (&self.retry_queue, messages.is_empty()) {
            // Postgres already holds next_attempt_at: if SQS is unreachable the schedule still retries these.
            match queue.schedule(messages).await {
                Ok(()) => report.retry_messages += messages.len() as u64,
                Err(error) => tracing::warn!(%error, "could not send retry messages; the schedule will retry"),
            }
        }
    }
}

/// Logs items a deferral left alone because this run's lease on them expired.
fn not_put_back(wanted: usize, written: u64) {
    if written < wanted as u64 {
        tracing::warn!(
            items = wanted as u64 - written,
            "lease lost: items not put back to wait"
        );
    }
}

/// Logs rows a write-back left alone because this run's lease on them expired and another run took them over.
fn lease_lost(ids: &[Uuid], what: &str) {
    if !ids.is_empty() {
        tracing::warn!(
            items = ids.len(),
            first = %ids[0],
            what,
            "lease lost: another run took these rows over; its result stands and this one is not written"
        );
    }
}
