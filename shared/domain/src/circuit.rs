//! The circuit breaker in front of HubSpot, as pure transitions: after `failures_to_open` retryable failures in a
//! row the sync stops calling HubSpot for a cool-down, then one process sends a probe; its success closes the
//! circuit, its failure opens it for another cool-down. The store persists the state where every process sees it
//! (crmsync.sync_circuit), and applies these transitions under a row lock.
//!
//! ```text
//!   closed ──N retryable failures in a row──▶ open ──cool-down over: one process takes the probe──▶ half_open
//!     ▲                                         ▲                                                   │
//!     └──────────────probe succeeded────────────┼───────────────────────────────────────────────────┤
//!                                               └────────────────probe failed───────────────────────┘
//! ```

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The breaker's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Retryable failures in a row that open the circuit (`SYNC_CIRCUIT_FAILURES`, default 5).
    pub failures_to_open: u32,
    /// How long an open circuit keeps the sync from calling HubSpot (`SYNC_CIRCUIT_COOLDOWN_SECONDS`, default 60).
    pub cooldown: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; `failures` retryable failures in a row so far.
    Closed { failures: u32 },
    /// No calls until `until`.
    Open { until: DateTime<Utc> },
    /// One process is probing; the others wait until `until`, after which another may take the probe over (the
    /// prober died).
    HalfOpen { until: DateTime<Utc> },
}

/// What a process may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Call HubSpot.
    Call,
    /// Send one probe, then report it with [`CircuitState::after_probe`].
    Probe,
    /// Do not call HubSpot before `until`.
    Wait { until: DateTime<Utc> },
}

/// A transition worth a log line (and a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitChange {
    /// The failures in a row reached the threshold.
    Opened,
    /// A probe failed: open for another cool-down.
    Reopened,
    /// A probe succeeded.
    Closed,
}

impl CircuitChange {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Reopened => "reopened",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for CircuitChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run's HubSpot calls did since it last reported them, in order: whether any succeeded (HubSpot answered,
/// even with a permanent error), and the retryable failures after the last success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallStreak {
    pub succeeded: bool,
    pub trailing_failures: u32,
}

impl CallStreak {
    pub fn success(&mut self) {
        self.succeeded = true;
        self.trailing_failures = 0;
    }

    pub fn failure(&mut self) {
        self.trailing_failures = self.trailing_failures.saturating_add(1);
    }

    /// Nothing to report: no HubSpot answer and no retryable failure.
    pub fn is_empty(&self) -> bool {
        !self.succeeded && self.trailing_failures == 0
    }
}

fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

impl CircuitState {
    pub const CLOSED: CircuitState = CircuitState::Closed { failures: 0 };

    /// The `state` column's value.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed { .. } => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }

    /// True unless closed.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Closed { .. })
    }

    /// What a process may do at `now`, and the state after it asked: the first to ask after the cool-down takes
    /// the probe (half open until another cool-down has passed).
    pub fn permit(self, now: DateTime<Utc>, settings: &CircuitSettings) -> (CircuitState, Permit) {
        match self {
            Self::Closed { .. } => (self, Permit::Call),
            Self::Open { until } | Self::HalfOpen { until } if now < until => (self, Permit::Wait { until }),
            Self::Open { .. } | Self::HalfOpen { .. } => (
                Self::HalfOpen {
                    until: after(now, settings.cooldown),
                },
                Permit::Probe,
            ),
        }
    }

    /// Records a run's calls: closed, the failures in a row add up (a success starts them over) and open the
    /// circuit at the threshold. An open or half-open circuit is left to its probe.
    pub fn record(
        self,
        streak: CallStreak,
        now: DateTime<Utc>,
        settings: &CircuitSettings,
    ) -> (CircuitState, Option<CircuitChange>) {
        let Self::Closed { failures } = self else {
            return (self, None);
        };
        let before = if streak.succeeded { 0 } else { failures };
        let failures = before.saturating_add(streak.trailing_failures);
        if failures >= settings.failures_to_open.max(1) {
            let open = Self::Open {
                until: after(now, settings.cooldown),
            };
            (open, Some(CircuitChange::Opened))
        } else {
            (Self::Closed { failures }, None)
        }
    }

    /// The probe's result: closed when it succeeded, open for another cool-down when it failed.
    pub fn after_probe(
        self,
        succeeded: bool,
        now: DateTime<Utc>,
        settings: &CircuitSettings,
    ) -> (CircuitState, CircuitChange) {
        if succeeded {
            (Self::CLOSED, CircuitChange::Closed)
        } else {
            let open = Self::Open {
                until: after(now, settings.cooldown),
            };
            (open, CircuitChange::Reopened)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CircuitSettings {
        CircuitSettings {
            failures_to_open: 3,
            cooldown: Duration::from_secs(60),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap()
    }

    fn streak(succeeded: bool, trailing_failures: u32) -> CallStreak {
        CallStreak {
            succeeded,
            trailing_failures,
        }
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_a_success_starts_the_count_over() {
        let s = settings();
        // (from, calls, expected state, expected change)
        let table = [
            (
                CircuitState::CLOSED,
                streak(false, 2),
                CircuitState::Closed { failures: 2 },
                None,
            ),
            (
                CircuitState::Closed { failures: 2 },
                streak(false, 1),
                CircuitState::Open { until: at(60) },
                Some(CircuitChange::Opened),
            ),
            (
                CircuitState::Closed { failures: 2 },
                streak(true, 1),
                CircuitState::Closed { failures: 1 },
                None,
            ),
            (
                CircuitState::Closed { failures: 2 },
                streak(true, 0),
                CircuitState::CLOSED,
                None,
            ),
            (
                CircuitState::CLOSED,
                streak(true, 3),
                CircuitState::Open { until: at(60) },
                Some(CircuitChange::Opened),
            ),
            (
                CircuitState::Open { until: at(30) },
                streak(false, 9),
                CircuitState::Open { until: at(30) },
                None,
            ),
            (
                CircuitState::HalfOpen { until: at(30) },
                streak(true, 0),
                CircuitState::HalfOpen { until: at(30) },
                None,
            ),
        ];
        for (from, calls, state, change) in table {
            assert_eq!(from.record(calls, at(0), &s), (state, change), "{from:?} + {calls:?}");
        }
    }

    #[test]
    fn an_open_circuit_makes_callers_wait_then_lets_exactly_one_probe() {
        let s = settings();
        let open = CircuitState::Open { until: at(60) };
        assert_eq!(open.permit(at(59), &s), (open, Permit::Wait { until: at(60) }));
        let (probing, permit) = open.permit(at(60), &s);
        assert_eq!(
            (probing, permit),
            (CircuitState::HalfOpen { until: at(120) }, Permit::Probe)
        );
        assert_eq!(
            probing.permit(at(61), &s).1,
            Permit::Wait { until: at(120) },
            "a second process waits for the probe"
        );
        assert_eq!(
            probing.permit(at(120), &s),
            (CircuitState::HalfOpen { until: at(180) }, Permit::Probe),
            "a probe whose process died is taken over after a cool-down"
        );
        assert_eq!(
            CircuitState::CLOSED.permit(at(0), &s),
            (CircuitState::CLOSED, Permit::Call)
        );
    }

    #[test]
    fn a_probe_closes_the_circuit_or_opens_it_for_another_cool_down() {
        let s = settings();
        let probing = CircuitState::HalfOpen { until: at(60) };
        assert_eq!(
            probing.after_probe(true, at(10), &s),
            (CircuitState::CLOSED, CircuitChange::Closed)
        );
        assert_eq!(
            probing.after_probe(false, at(10), &s),
            (CircuitState::Open { until: at(70) }, CircuitChange::Reopened)
        );
        assert!(probing.is_open() && !CircuitState::CLOSED.is_open());
        assert_eq!(
            [
                CircuitState::CLOSED.name(),
                probing.name(),
                CircuitState::Open { until: at(0) }.name()
            ],
            ["closed", "half_open", "open"]
        );
    }

    #[test]
    fn a_streak_counts_only_the_failures_after_the_last_success() {
        let mut calls = CallStreak::default();
        assert!(calls.is_empty());
        calls.failure();
        calls.failure();
        calls.success();
        calls.failure();
        assert_eq!(calls, streak(true, 1));
        assert!(!calls.is_empty());
    }
}
