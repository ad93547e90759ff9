//! The sync_queue row's state machine: its statuses and the transitions between them, as pure functions. The
//! store's SQL persists what these decide (each transition is one atomic statement there).
//!
//! ```text
//!   pending ──claim──▶ in_progress ──complete──▶ completed
//!      ▲  ▲               │  ▲ └─takeover (lease expired: +1 attempt)
//!      │  └────defer──────┤  │
//!      │                  ├──fail(retry)──▶ failed ──claim──▶ in_progress
//!      └──redrive── dead ◀┴──fail(dead)
//! ```

use std::fmt;
use std::str::FromStr;

use crate::DomainError;
use crate::sync::RetryDecision;

/// Where a sync_queue row is in its life (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncStatus {
    /// Waiting to be sent once due (new, put back to wait for another record, or redriven).
    Pending,
    /// Claimed by a run under a lease.
    InProgress,
    /// Failed with a retryable error; due again after its backoff.
    Failed,
    /// Sent (or nothing to send).
    Completed,
    /// Attempts spent or a permanent error: waits for an operator's redrive.
    Dead,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 5] = [
        Self::Pending,
        Self::InProgress,
        Self::Failed,
        Self::Completed,
        Self::Dead,
    ];

    /// The statuses a row waits in until its next_attempt_at: claimable once due.
    pub const WAITING: [SyncStatus; 2] = [Self::Pending, Self::Failed];

    /// The statuses of a row that is still to be sent.
    pub const OPEN: [SyncStatus; 3] = [Self::Pending, Self::Failed, Self::InProgress];

    /// The column's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Failed => "failed",
            Self::Completed => "completed",
            Self::Dead => "dead",
        }
    }

    /// True for the statuses in [`SyncStatus::WAITING`].
    pub fn is_waiting(self) -> bool {
        Self::WAITING.contains(&self)
    }

    /// The column values of `statuses`, for a query parameter (`status = ANY($n)`).
    pub fn names(statuses: &[SyncStatus]) -> Vec<&'static str> {
        statuses.iter().map(|s| s.as_str()).collect()
    }

    /// `statuses` as an SQL list of literals (`'pending', 'failed'`), for predicates that must stay literal so the
    /// planner can match them with the partial indexes on sync_queue (a bound parameter cannot prove a partial
    /// index's predicate in a generic plan). The values come from [`SyncStatus::as_str`], never from input.
    pub fn sql_list(statuses: &[SyncStatus]) -> String {
        statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncStatus {
    type Err = DomainError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| DomainError::invalid("status", format!("unknown sync status {value:?}")))
    }
}

impl serde::Serialize for SyncStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A row's state as the transitions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    pub status: SyncStatus,
    /// Attempts made so far.
    pub attempts: i32,
}

/// How a claim took its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A waiting row that was due.
    Fresh,
    /// A row in progress whose lease expired: the run holding it crashed or timed out, and its attempt counts.
    Takeover,
}

impl Claim {
    /// Attempts a claim of this kind adds: a takeover counts the crashed run's attempt, so a row that crashes every
    /// run it is in still ends dead after max attempts.
    pub const fn attempts_added(self) -> i32 {
        match self {
            Self::Fresh => 0,
            Self::Takeover => 1,
        }
    }
}

impl RetryDecision {
    /// The status a failed row takes under this decision.
    pub fn status(self) -> SyncStatus {
        match self {
            RetryDecision::RetryAfter { .. } => SyncStatus::Failed,
            RetryDecision::Dead { .. } => SyncStatus::Dead,
        }
    }

    /// The attempts recorded on the failed row.
    pub fn attempts(self) -> i32 {
        match self {
            RetryDecision::RetryAfter { attempts, .. } | RetryDecision::Dead { attempts } => attempts,
        }
    }

    /// How long until the row is due again; `None` for a dead row, which is not due again.
    pub fn delay(self) -> Option<std::time::Duration> {
        match self {
            RetryDecision::RetryAfter { delay, .. } => Some(delay),
            RetryDecision::Dead { .. } => None,
        }
    }
}

impl QueueState {
    /// A redriven row: pending, its attempts reset.
    pub const REDRIVEN: QueueState = QueueState {
        status: SyncStatus::Pending,
        attempts: 0,
    };

    pub fn new(status: SyncStatus, attempts: i32) -> Self {
        Self { status, attempts }
    }

    /// Claims the row for a run: a waiting row once `due`, an in-progress one once its lease expired. `None` when
    /// the row cannot be claimed.
    pub fn claim(self, due: bool, lease_expired: bool) -> Option<(QueueState, Claim)> {
        let claim = match self.status {
            status if status.is_waiting() && due => Claim::Fresh,
            SyncStatus::InProgress if lease_expired => Claim::Takeover,
            _ => return None,
        };
        let attempts = self.attempts.saturating_add(claim.attempts_added());
        Some((QueueState::new(SyncStatus::InProgress, attempts), claim))
    }

    /// The run sent the row (or found nothing to send). Only a claimed row completes.
    pub fn complete(self) -> Option<QueueState> {
        self.held().map(|s| QueueState::new(SyncStatus::Completed, s.attempts))
    }

    /// Puts the row back without counting an attempt (it waits for another record, or the run ran out of time).
    pub fn defer(self) -> Option<QueueState> {
        self.held().map(|s| QueueState::new(SyncStatus::Pending, s.attempts))
    }

    /// Records a failed attempt as `decision` says: failed and due again later, or dead.
    pub fn fail(self, decision: RetryDecision) -> Option<QueueState> {
        self.held()
            .map(|_| QueueState::new(decision.status(), decision.attempts()))
    }

    /// An operator's redrive: a dead row is pending again with its attempts reset.
    pub fn redrive(self) -> Option<QueueState> {
        (self.status == SyncStatus::Dead).then_some(Self::REDRIVEN)
    }

    fn held(self) -> Option<QueueState> {
        (self.status == SyncStatus::InProgress).then_some(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use SyncStatus::*;

    fn state(status: SyncStatus, attempts: i32) -> QueueState {
        QueueState::new(status, attempts)
    }

    #[test]
    fn status_names_round_trip_and_unknown_names_are_errors() {
        for status in SyncStatus::ALL {
            assert_eq!(status.as_str().parse::<SyncStatus>().unwrap(), status);
        }
        assert!("abandoned".parse::<SyncStatus>().is_err());
        assert_eq!(SyncStatus::sql_list(&SyncStatus::WAITING), "'pending', 'failed'");
        assert_eq!(serde_json::to_value(InProgress).unwrap(), "in_progress");
    }

    #[test]
    fn a_claim_takes_due_waiting_rows_and_expired_leases_and_counts_an_attempt_only_on_takeover() {
        // (from, due, lease expired, expected)
        let table = [
            (
                state(Pending, 0),
                true,
                false,
                Some((state(InProgress, 0), Claim::Fresh)),
            ),
            (
                state(Failed, 3),
                true,
                false,
                Some((state(InProgress, 3), Claim::Fresh)),
            ),
            (state(Pending, 0), false, false, None),
            (state(Failed, 3), false, true, None),
            (
                state(InProgress, 2),
                false,
                true,
                Some((state(InProgress, 3), Claim::Takeover)),
            ),
            (state(InProgress, 2), true, false, None),
            (state(Completed, 1), true, true, None),
            (state(Dead, 8), true, true, None),
        ];
        for (from, due, expired, expected) in table {
            assert_eq!(
                from.claim(due, expired),
                expected,
                "{from:?} due={due} expired={expired}"
            );
        }
    }

    #[test]
    fn only_a_claimed_row_completes_defers_or_fails() {
        let retry = RetryDecision::RetryAfter {
            delay: Duration::from_secs(30),
            attempts: 2,
        };
        let dead = RetryDecision::Dead { attempts: 8 };
        let held = state(InProgress, 1);
        assert_eq!(held.complete(), Some(state(Completed, 1)));
        assert_eq!(held.defer(), Some(state(Pending, 1)), "no attempt counted");
        assert_eq!(held.fail(retry), Some(state(Failed, 2)));
        assert_eq!(held.fail(dead), Some(state(Dead, 8)));
        for status in [Pending, Failed, Completed, Dead] {
            let row = state(status, 1);
            assert_eq!(row.complete(), None, "{status}");
            assert_eq!(row.defer(), None, "{status}");
            assert_eq!(row.fail(retry), None, "{status}");
        }
    }

    #[test]
    fn only_a_dead_row_is_redriven_and_its_attempts_reset() {
        assert_eq!(state(Dead, 8).redrive(), Some(state(Pending, 0)));
        for status in [Pending, InProgress, Failed, Completed] {
            assert_eq!(state(status, 2).redrive(), None, "{status}");
        }
    }
}
