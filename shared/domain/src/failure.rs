//! Failure classification: why a sync attempt failed, and what that means for its items (retry after a backoff,
//! wait for HubSpot's daily reset, or dead). The sync maps HubSpot's errors to a [`FailureClass`] at its edge; the
//! decision is made here.

use std::time::Duration;

use crate::sync::{RetryDecision, RetryPolicy, SyncItem};

/// How long items wait when HubSpot's daily limit is spent. The limit resets at the portal's midnight (at most a
/// day away); an hour's wait re-checks without burning attempts.
pub const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// Why a sync attempt failed, as far as the retry decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Trying again later may succeed; `suggested_delay` is HubSpot's hint (a rate-limit window, `Retry-After`),
    /// a floor under the backoff.
    Retryable { suggested_delay: Option<Duration> },
    /// The account's daily request limit is spent: wait, without counting an attempt.
    DailyLimit,
    /// Retrying the same data cannot succeed (validation, a missing company, no access ...).
    Permanent,
    /// The runs holding the item kept dying (killed, or timed out mid-batch) until its attempts ran out; the
    /// takeovers already counted those attempts.
    Crashed,
}

impl FailureClass {
    /// What happens to items that failed this way after `attempts_before` attempts. `jitter` in `[0, 1)` spreads
    /// the backoff (passed in to keep this pure).
    pub fn decide(self, attempts_before: i32, policy: &RetryPolicy, jitter: f64) -> RetryDecision {
        match self {
            Self::Retryable { suggested_delay } => policy.after_failure(attempts_before, jitter, suggested_delay),
            Self::DailyLimit => RetryDecision::RetryAfter {
                delay: DAILY_LIMIT_WAIT,
                attempts: attempts_before,
            },
            Self::Permanent => RetryDecision::Dead {
                attempts: attempts_before.saturating_add(1),
            },
            Self::Crashed => RetryDecision::Dead {
                attempts: attempts_before,
            },
        }
    }

    /// The text recorded in the row's last_error for an `error` of this class.
    pub fn last_error(self, error: String) -> String {
        match self {
            Self::Permanent => format!("permanent: {error}"),
            _ => error,
        }
    }

    /// True when `item` was taken over from a crashed run and those takeovers spent its attempts: it is failed as
    /// [`FailureClass::Crashed`] without being sent again.
    pub fn crashed_out(item: &SyncItem, policy: &RetryPolicy) -> bool {
        item.taken_over && item.attempts >= policy.max_attempts
    }

    /// The error recorded for an item that [`FailureClass::crashed_out`].
    pub fn crash_error(item: &SyncItem, policy: &RetryPolicy) -> String {
        format!(
            "the runs holding it stopped before they finished ({} of {} attempts: killed, or timed out mid-batch)",
            item.attempts, policy.max_attempts
        )
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::sync::EntityType;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn each_failure_class_decides_its_items_fate() {
        let wait = |secs, attempts| RetryDecision::RetryAfter {
            delay: Duration::from_secs(secs),
            attempts,
        };
        // (class, attempts before, expected)
        let table = [
            (FailureClass::Retryable { suggested_delay: None }, 0, wait(5, 1)),
            (
                FailureClass::Retryable {
                    suggested_delay: Some(Duration::from_secs(10)),
                },
                0,
                wait(10, 1),
            ),
            (
                FailureClass::Retryable { suggested_delay: None },
                3,
                RetryDecision::Dead { attempts: 4 },
            ),
            (FailureClass::DailyLimit, 2, wait(3600, 2)),
            (FailureClass::DailyLimit, 7, wait(3600, 7)),
            (FailureClass::Permanent, 0, RetryDecision::Dead { attempts: 1 }),
            (FailureClass::Permanent, 2, RetryDecision::Dead { attempts: 3 }),
            (FailureClass::Crashed, 4, RetryDecision::Dead { attempts: 4 }),
        ];
        for (class, attempts_before, expected) in table {
            assert_eq!(
                class.decide(attempts_before, &policy(), 0.0),
                expected,
                "{class:?} after {attempts_before}"
            );
        }
    }

    #[test]
    fn only_permanent_errors_are_marked_in_the_recorded_text() {
        assert_eq!(FailureClass::Permanent.last_error("400".into()), "permanent: 400");
        assert_eq!(FailureClass::DailyLimit.last_error("429".into()), "429");
        assert_eq!(FailureClass::Crashed.last_error("stopped".into()), "stopped");
    }

    #[test]
    fn an_item_is_crashed_out_only_when_takeovers_spent_its_attempts() {
        let item = |taken_over, attempts| SyncItem {
            id: Uuid::nil(),
            entity_type: EntityType::Deal,
            entity_id: Uuid::nil(),
            operation: "create".into(),
            attempts,
            taken_over,
        };
        assert!(FailureClass::crashed_out(&item(true, 4), &policy()));
        assert!(!FailureClass::crashed_out(&item(true, 3), &policy()));
        assert!(!FailureClass::crashed_out(&item(false, 4), &policy()));
        assert_eq!(
            FailureClass::crash_error(&item(true, 4), &policy()),
            "the runs holding it stopped before they finished (4 of 4 attempts: killed, or timed out mid-batch)"
        );
    }
}
