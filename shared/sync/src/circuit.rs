//! The circuit breaker as the drain meets it: a gate before each round (call, wait out the cool-down, or send the
//! one probe), and the record of each write-back's HubSpot outcomes. The state is shared in crmsync.sync_circuit
//! ([`PgCircuit`]): each gate reads the row (one unlocked single-row read), so a circuit another process opened,
//! or whose cool-down ended, is seen at once. This process caches whether the circuit was closed and quiet when it
//! last looked, so a run of successes writes nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_app::AppError;
use crmsync_db::circuit::PgCircuit;
use crmsync_domain::circuit::{CallStreak, CircuitChange, CircuitState, Permit};
use crmsync_domain::ports::RetryQueue;
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{ErrorClass, ObjectType};

use crate::drain::OutboundSync;
use crate::settings::SyncReport;

/// May this run call HubSpot?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Call,
    /// The circuit is open: not before this long.
    Wait(Duration),
}

/// This process's view of the circuit: the shared row, and whether it was closed with no failures when this
/// process last looked.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    pub row: PgCircuit,
    quiet: Arc<Mutex<bool>>,
}

impl Breaker {
    pub fn new(row: PgCircuit) -> Self {
        Self {
            row,
            quiet: Arc::default(),
        }
    }

    /// Remembers `state`.
    fn cache(&self, state: CircuitState) {
        *self.quiet.lock().unwrap_or_else(|e| e.into_inner()) = state == CircuitState::CLOSED;
    }

    fn is_quiet(&self) -> bool {
        *self.quiet.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wait_until(until: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or_default()
}

/// The structured line for a transition (the metrics and the "open circuit" alarm key on `circuit`).
fn log_change(change: CircuitChange, state: CircuitState, failures_to_open: u32) {
    let until = match state {
        CircuitState::Open { until } | CircuitState::HalfOpen { until } => Some(until),
        CircuitState::Closed { .. } => None,
    };
    match change {
        CircuitChange::Closed => tracing::info!(circuit = %change, "HubSpot circuit closed: the probe succeeded"),
        CircuitChange::Opened => tracing::warn!(
            circuit = %change,
            failures_to_open,
            open_until = ?until,
            "HubSpot circuit opened: retryable failures in a row; no HubSpot calls until the cool-down ends"
        ),
        CircuitChange::Reopened => tracing::warn!(
            circuit = %change,
            open_until = ?until,
            "HubSpot circuit stays open: the probe failed"
        ),
    }
}

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Before a round: call HubSpot when the circuit is closed; wait while it is open; after the cool-down, the
    /// first process to ask sends one probe (a read of the `crmsync_id` property), which closes the circuit or
    /// opens it for another cool-down. Notes the probe and its outcome in `report`.
    pub(crate) async fn circuit_gate(&self, report: &mut SyncReport) -> Result<Gate, AppError> {
        let (state, now) = self.breaker.row.read().await?;
        match state {
            CircuitState::Closed { .. } => {
                self.breaker.cache(state);
                report.circuit_open = false;
                return Ok(Gate::Call);
            }
            CircuitState::Open { until } | CircuitState::HalfOpen { until } if now < until => {
                self.breaker.cache(state);
                report.circuit_open = true;
                return Ok(Gate::Wait(wait_until(until, now)));
            }
            _ => {}
        }
        let settings = self.settings.circuit;
        let (_, probing, (permit, now)) = self
            .breaker
            .row
            .update(|state, now| {
                let (after, permit) = state.permit(now, &settings);
                (after, (permit, now))
            })
            .await?;
        match permit {
            Permit::Call => {
                self.breaker.cache(probing);
                report.circuit_open = false;
                Ok(Gate::Call)
            }
            Permit::Wait { until } => {
                self.breaker.cache(probing);
                report.circuit_open = true;
                Ok(Gate::Wait(wait_until(until, now)))
            }
            Permit::Probe => self.probe(report).await,
        }
    }

    /// Sends the probe and records its outcome.
    async fn probe(&self, report: &mut SyncReport) -> Result<Gate, AppError> {
        report.circuit_probed = true;
        let answered = match self.hubspot.get_property(ObjectType::Deals, LOCAL_ID_PROPERTY).await {
            Ok(_) => true,
            // HubSpot answered: it is up, whatever it thinks of the request.
            Err(error) => !matches!(error.class(), ErrorClass::Retryable { .. }),
        };
        tracing::info!(circuit = "probe", succeeded = answered, "HubSpot circuit probe sent");
        let settings = self.settings.circuit;
        let (_, after, change) = self
            .breaker
            .row
            .update(|state, now| state.after_probe(answered, now, &settings))
            .await?;
        self.breaker.cache(after);
        log_change(change, after, settings.failures_to_open);
        if answered {
            report.circuit_closed = true;
            report.circuit_open = false;
            Ok(Gate::Call)
        } else {
            report.circuit_open = true;
            Ok(Gate::Wait(settings.cooldown))
        }
    }

    /// Records a write-back's HubSpot outcomes; true when they opened the circuit (the round then stops calling
    /// HubSpot). A run of successes on a quiet circuit writes nothing.
    pub(crate) async fn record_calls(&self, streak: CallStreak, report: &mut SyncReport) -> Result<bool, AppError> {
        if streak.is_empty() || (streak.trailing_failures == 0 && self.breaker.is_quiet()) {
            return Ok(false);
        }
        let settings = self.settings.circuit;
        let (_, after, change) = self
            .breaker
            .row
            .update(|state, now| state.record(streak, now, &settings))
            .await?;
        self.breaker.cache(after);
        if let Some(change) = change {
            log_change(change, after, settings.failures_to_open);
            report.circuit_opened = true;
        }
        report.circuit_open = after.is_open();
        Ok(after.is_open())
    }
}
