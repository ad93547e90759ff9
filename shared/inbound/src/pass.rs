//! One run of a pass: a transaction over the events still open, each event's outcome recorded on its inbox row,
//! and a savepoint per event when an earlier run found an event that breaks a database rule.

use std::time::Duration;

use crmsync_app::AppError;
use crmsync_db::{Db, DbError, inbox};
use crmsync_domain::webhook::{InboxStatus, WebhookEvent};
use tracing::Instrument;
use uuid::Uuid;

use crate::applier::{Applier, ApplyReport};
use crate::event::{EventTarget, Outcome, PassContext, apply_event, settled_before_reading};
use crate::property_change::{PropertyEvent, property_changes};
use crate::retries::{Postponed, Retries};
use crate::write_back::Created;

/// How long a creation event stays held (`retry`) while our id is written back to HubSpot: a pass cut off
/// before the write-back finished leaves it to the re-apply pass after this.
const WRITE_BACK_HOLD: Duration = Duration::from_secs(30);

/// What one pass did, kept until its transaction commits.
#[derive(Default)]
pub(crate) struct Pass {
    pub(crate) report: ApplyReport,
    pub(crate) retries: Retries,
    pub(crate) created: Vec<Created>,
}

/// The inbox rows a run closes or holds in its last statements.
#[derive(Default)]
struct Closing {
    finished: Vec<(Uuid, InboxStatus, &'static str)>,
    held: Vec<Uuid>,
}

impl Applier {
    /// One transaction over the events still open. `careful` wraps each event in a savepoint; without it, a data
    /// error returns `None` (nothing of the pass is kept).
    pub(crate) async fn run_pass(
        &self,
        events: &[(Uuid, WebhookEvent)],
        context: &PassContext<'_>,
        careful: bool,
    ) -> Result<Option<Pass>, AppError> {
        let mut client = self.pool.get().await?;
        let mut transaction = client.transaction().await?;
        let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
        let locked = inbox::lock_open_many(&transaction, &ids).await?;
        let mut pass = Pass::default();
        let mut closing = Closing::default();
        let targets: Vec<(EventTarget, &WebhookEvent)> = events
            .iter()
            .filter_map(|(id, event)| {
                locked.get(id).map(|&attempts_before| {
                    let target = EventTarget {
                        inbox_id: *id,
                        attempts_before,
                    };
                    (target, event)
                })
            })
            .collect();
        let mut rest = targets.as_slice();
        while !rest.is_empty() {
            // A run of property changes goes in one piece (one event at a time when careful), with the events
            // settled without reading anything (echoes of our writes, unknown types) in their places; any other
            // event alone.
            let run: Vec<Step> = rest
                .iter()
                .take(if careful { 1 } else { rest.len() })
                .map_while(|(target, event)| step(*target, event, context))
                .collect();
            let taken = run.len().max(1);
            let (now, later) = rest.split_at(taken);
            rest = later;
            let outcomes = if run.is_empty() {
                let (target, event) = now[0];
                let span = tracing::debug_span!("webhook_event", inbox_id = %target.inbox_id,
                    event_type = %event.event_type, object_id = ?event.object_id);
                let outcome = if careful {
                    let savepoint = transaction.savepoint("event").await?;
                    let outcome = apply_event(&savepoint, target, event, context, &mut pass.created)
                        .instrument(span)
                        .await;
                    finish_savepoint(savepoint, &outcome).await?;
                    outcome
                } else {
                    apply_event(&transaction, target, event, context, &mut pass.created)
                        .instrument(span)
                        .await
                };
                outcome.map(|outcome| vec![outcome])
            } else if careful {
                let savepoint = transaction.savepoint("event").await?;
                let outcomes = apply_run(&savepoint, run, context).await;
                finish_savepoint(savepoint, &outcomes).await?;
                outcomes
            } else {
                apply_run(&transaction, run, context).await
            };
            match outcomes {
                Ok(outcomes) => {
                    for ((target, _), outcome) in now.iter().zip(outcomes) {
                        self.record(&transaction, *target, outcome, &mut pass, &mut closing)
                            .await?;
                    }
                }
                Err(error) if error.is_data_error() && !careful => {
                    tracing::info!("a webhook event broke a database rule; applying the pass event by event");
                    return Ok(None);
                }
                Err(error) if error.is_data_error() => refused(&transaction, now[0].0, error, &mut pass).await?,
                Err(error) => return Err(error.into()),
            }
        }
        inbox::finish_many(&transaction, &closing.finished).await?;
        inbox::hold_for_write_back(&transaction, &closing.held, WRITE_BACK_HOLD.as_secs_f64()).await?;
        // Everything above is one transaction: a pass dropped before this line (a deadline, a crash) keeps nothing.
        transaction.commit().await?;
        Ok(Some(pass))
    }

    /// Records how one event ended: in the report, and on its inbox row (now, or with the run's last statements).
    async fn record(
        &self,
        client: &impl Db,
        target: EventTarget,
        outcome: Outcome,
        pass: &mut Pass,
        closing: &mut Closing,
    ) -> Result<(), DbError> {
        let id = target.inbox_id;
        let report = &mut pass.report;
        match outcome {
            Outcome::Applied(label) => {
                closing.finished.push((id, InboxStatus::Applied, label));
                count(report, label);
                report.applied += 1;
            }
            Outcome::Created(label) => {
                closing.held.push(id);
                count(report, label);
                report.applied += 1;
            }
            Outcome::Skipped(label) => {
                closing.finished.push((id, InboxStatus::Skipped, label));
                count(report, label);
                report.skipped += 1;
            }
            Outcome::Leave => {
                pass.retries.defer(id, target.attempts_before);
                report.deferred += 1;
            }
            Outcome::Wait(reason) => {
                // Nothing of the event was written; only the row's attempt bookkeeping.
                let postponed = pass
                    .retries
                    .postpone(client, &self.retry, id, target.attempts_before, &reason)
                    .await?;
                match postponed {
                    Postponed::Waiting => report.waiting += 1,
                    Postponed::Dead { attempts } => {
                        report.dead += 1;
                        tracing::warn!(%reason, attempts, "webhook event dead after its last attempt");
                    }
                }
            }
            Outcome::Error(label, reason) => {
                inbox::give_up(client, id, target.attempts_before + 1, label, &reason).await?;
                pass.retries.dead(id, target.attempts_before + 1);
                count(report, label);
                report.dead += 1;
                tracing::warn!(inbox_id = %id, %reason, "webhook event cannot be applied");
            }
        }
        Ok(())
    }
}

/// An event of a run: settled already, or a property change to apply with the run.
enum Step<'e> {
    Settled(Outcome),
    Property(PropertyEvent<'e>),
}

/// The event as part of a run; `None` for an event applied on its own (creations, deletions, merges, ...).
fn step<'e>(target: EventTarget, event: &'e WebhookEvent, context: &PassContext<'_>) -> Option<Step<'e>> {
    match settled_before_reading(event, context) {
        Some(outcome) => Some(Step::Settled(outcome)),
        None => PropertyEvent::of(target, event).map(Step::Property),
    }
}

/// Applies a run's property changes together; returns every step's outcome in the run's order.
async fn apply_run(client: &impl Db, run: Vec<Step<'_>>, context: &PassContext<'_>) -> Result<Vec<Outcome>, DbError> {
    let changes: Vec<PropertyEvent> = run
        .iter()
        .filter_map(|step| match step {
            Step::Property(change) => Some(*change),
            Step::Settled(_) => None,
        })
        .collect();
    let mut applied = property_changes(client, &changes, context).await?.into_iter();
    Ok(run
        .into_iter()
        .map(|step| match step {
            Step::Settled(outcome) => Some(outcome),
            Step::Property(_) => applied.next(),
        })
        .map(|outcome| outcome.unwrap_or(Outcome::Leave))
        .collect())
}

/// Keeps an event's savepoint, or rolls it back when the event broke a database rule (it is given up alone).
async fn finish_savepoint<T>(
    savepoint: crmsync_db::Transaction<'_>,
    outcome: &Result<T, DbError>,
) -> Result<(), DbError> {
    if matches!(outcome, Err(error) if error.is_data_error()) {
        savepoint.rollback().await
    } else {
        savepoint.commit().await
    }
}

fn count(report: &mut ApplyReport, label: &str) {
    *report.outcomes.entry(label.to_owned()).or_default() += 1;
}

/// An event whose writes broke a database rule (they are undone by its savepoint): given up with the reason.
async fn refused(client: &impl Db, target: EventTarget, error: DbError, pass: &mut Pass) -> Result<(), DbError> {
    let id = target.inbox_id;
    let reason = crmsync_domain::DomainError::from(error).to_string();
    tracing::warn!(inbox_id = %id, %reason, "webhook event refused by the database");
    inbox::postpone(client, id, target.attempts_before + 1, None, &reason).await?;
    pass.retries.dead(id, target.attempts_before + 1);
    pass.report.dead += 1;
    Ok(())
}
