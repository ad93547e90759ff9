//! Failure classification: why a sync attempt failed, and what that means for its items (retry after a backoff,
//! within the retry window for retryable failures; wait for HubSpot's daily reset; or dead). The sync maps HubSpot's
//! errors to a [`FailureClass`] at its edge; the decision is made here.

use std::time::Duration;

use crate::sync::{RetryDecision, RetryPolicy, SyncItem};

/// How long items wait when HubSpot's daily limit is spent. The limit resets at the portal's midnight (at most a
/// day away); an hour's wait re-checks without burning attempts.
pub const DAILY_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// Why a sync attempt failed, as far as the retry decision is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Trying again later may succeed (429, 5xx, 477, 423, a timeout, a reset connection, an answer whose outcome
    /// is unknown); `suggested_delay` is HubSpot's hint (a rate-limit window, `Retry-After`), a floor under the
    /// backoff. Retried until [`RetryPolicy::retry_window`] has passed since the item's first such failure, without
    /// counting toward [`RetryPolicy::max_attempts`].
    Retryable { suggested_delay: Option<Duration> },
    /// The account's daily request limit is spent: wait, without counting an attempt.
    DailyLimit,
    /// Retrying the same data cannot succeed (validation, a missing company, no access ...).
    Permanent,
    /// The runs holding the item kept dying (killed, or timed out mid-batch) until its attempts ran out; the
    /// takeovers already counted those attempts.
    Crashed,
}

/// An item's past, as far as deciding its next failure goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureHistory {
    /// Every attempt made before this one.
    pub attempts: i32,
    /// How many of them failed retryably.
    pub retryable_failures: i32,
    /// Since its first retryable failure, if it had one.
    pub failing_for: Option<Duration>,
}

impl From<&SyncItem> for FailureHistory {
    fn from(item: &SyncItem) -> Self {
        Self {
            attempts: item.attempts,
            retryable_failures: item.retryable_failures,
            failing_for: item.failing_for,
        }
    }
}

impl FailureClass {
    /// True for [`FailureClass::Retryable`]: the failures the retry window and the circuit breaker count.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// What happens to an item with this `history` that failed this way. `jitter` in `[0, 1)` spreads the backoff
    /// (passed in to keep this pure).
    pub fn decide(self, history: FailureHistory, policy: &RetryPolicy, jitter: f64) -> RetryDecision {
        let attempts_before = history.attempts;
        match self {
            Self::Retryable { suggested_delay } => policy.after_retryable_failure(
                attempts_before,
                history.retryable_failures,
                history.failing_for,
                jitter,
                suggested_delay,
            ),
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
    /// Retryable failures do not count: only the takeovers' attempts do.
    pub fn crashed_out(item: &SyncItem, policy: &RetryPolicy) -> bool {
        item.taken_over && item.counted_attempts() >= policy.max_attempts
    }

    /// The error recorded for an item that [`FailureClass::crashed_out`].
    pub fn crash_error(item: &SyncItem, policy: &RetryPolicy) -> String {
        format!(
            "the runs holding it stopped before they finished ({} of {} attempts: killed, or timed out mid-batch)",
            item.counted_attempts(),
            policy.max_attempts
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
            retry_window: Duration::from_secs(24 * 3600),
        }
    }

    fn history(attempts: i32, retryable_failures: i32, failing_for_secs: Option<u64>) -> FailureHistory {
        FailureHistory {
            attempts,
            retryable_failures,
            failing_for: failing_for_secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn each_failure_class_decides_its_items_fate() {
        let wait = |secs, attempts| RetryDecision::RetryAfter {
            delay: Duration::from_secs(secs),
            attempts,
        };
        let retryable = FailureClass::Retryable { suggested_delay: None };
        let hour = 3600;
        // (class, history, expected)
        let table = [
            (retryable, history(0, 0, None), wait(5, 1)),
            (
                FailureClass::Retryable {
                    suggested_delay: Some(Duration::from_secs(10)),
                },
                history(0, 0, None),
                wait(10, 1),
            ),
            // Past max attempts, inside the window: retried, the backoff capped at max_delay (60 s, half fixed).
            (retryable, history(3, 3, Some(hour)), wait(30, 4)),
            (retryable, history(40, 40, Some(23 * hour)), wait(30, 41)),
            // The window has passed since the first retryable failure: dead, however few the attempts.
            (
                retryable,
                history(1, 1, Some(24 * hour)),
                RetryDecision::Dead { attempts: 2 },
            ),
            (FailureClass::DailyLimit, history(2, 0, None), wait(3600, 2)),
            (FailureClass::DailyLimit, history(7, 7, Some(hour)), wait(3600, 7)),
            (
                FailureClass::Permanent,
                history(0, 0, None),
                RetryDecision::Dead { attempts: 1 },
            ),
            (
                FailureClass::Permanent,
                history(12, 12, Some(hour)),
                RetryDecision::Dead { attempts: 13 },
            ),
            (
                FailureClass::Crashed,
                history(4, 0, None),
                RetryDecision::Dead { attempts: 4 },
            ),
        ];
        for (class, history, expected) in table {
            assert_eq!(
                class.decide(history, &policy(), 0.0),
                expected,
                "{class:?} after {history:?}"
            );
        }
    }

    #[test]
    fn retryable_waits_grow_with_the_retryable_failures_not_the_takeovers() {
        let retryable = FailureClass::Retryable { suggested_delay: None };
        // Two takeovers and one retryable failure before: the second retryable failure waits 10 to 20 s, not 40 to 80.
        assert_eq!(
            retryable.decide(history(3, 1, Some(30)), &policy(), 0.0),
            RetryDecision::RetryAfter {
                delay: Duration::from_secs(10),
                attempts: 4
            }
        );
    }

    #[test]
    fn only_permanent_errors_are_marked_in_the_recorded_text() {
        assert_eq!(FailureClass::Permanent.last_error("400".into()), "permanent: 400");
        assert_eq!(FailureClass::DailyLimit.last_error("429".into()), "429");
        assert_eq!(FailureClass::Crashed.last_error("stopped".into()), "stopped");
    }

    #[test]
    fn an_item_is_crashed_out_only_when_takeovers_spent_its_attempts() {
        let item = |taken_over, attempts, retryable_failures| SyncItem {
            id: Uuid::nil(),
            entity_type: EntityType::Deal,
            entity_id: Uuid::nil(),
            operation: "create".into(),
            attempts,
            taken_over,
            retryable_failures,
            failing_for: None,
        };
        assert!(FailureClass::crashed_out(&item(true, 4, 0), &policy()));
        assert!(!FailureClass::crashed_out(&item(true, 3, 0), &policy()));
        assert!(!FailureClass::crashed_out(&item(false, 4, 0), &policy()));
        assert!(
            !FailureClass::crashed_out(&item(true, 9, 6), &policy()),
            "six retryable failures and three takeovers: three counted attempts"
        );
        assert!(FailureClass::crashed_out(&item(true, 10, 6), &policy()));
        assert_eq!(
            FailureClass::crash_error(&item(true, 4, 0), &policy()),
            "the runs holding it stopped before they finished (4 of 4 attempts: killed, or timed out mid-batch)"
        );
    }
}
