//! The fast path: after a write commits rows to `sync_queue`, a *kick* asks for a drain, so a new match reaches
//! HubSpot in seconds instead of at the next 5-minute tick. Kicks are coalesced: the first one requests a drain that
//! starts after a debounce window, and every kick until that drain starts is covered by it. The schedule stays as the
//! safety net: a kick that fails loses nothing, the rows wait in `sync_queue` for the next scheduled drain.
//!
//! The rule, which [`KickCoalescer`] implements in memory (`crmsync serve`) and `crmsync_db::kick` in one SQL
//! statement per step (the Lambdas, whose kicks come from many processes):
//!
//! - **kick** (called after the commit): when a requested drain has not started yet, the kick is covered; else it
//!   requests one, due after the debounce window (in AWS: one SQS message with that delay);
//! - **a full batch** ([`FULL_BATCH`] records of one type due): the kick's window is zero. Waiting longer cannot make
//!   a full HubSpot batch cheaper, so the requested drain is due now (one not due yet is pulled forward: in AWS a
//!   second message without delay, and the first one, arriving later, finds its request gone and does nothing);
//! - **start** (called by the requested drain *before its first claim*): forgets the request, so every kick after
//!   this point requests a new drain.
//!
//! Why no row is left behind: a covered kick ran after its rows committed and before the drain's start, and the drain
//! claims only after its start, so it sees them. A row that commits after a drain's last empty check finds the
//! request already forgotten (the start came before that check), so its kick requests the next drain. A request
//! whose drain never starts (a message that could not be sent or was lost) covers kicks for at most
//! [`KICK_LOST_AFTER`] past its due time; after that the next kick requests again. Whatever happens to a kick, the
//! schedule drains the rows.

use std::ops::Add;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sync::{MAX_SQS_DELAY, RetryMessage};

/// The default debounce window (`SYNC_KICK_DEBOUNCE_MS`): a burst of kicks inside it makes one drain.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);

/// HubSpot's batch write limit (inputs per create, update or upsert): this many records of one type due make a full
/// batch, which drains at once instead of waiting for the window.
pub const FULL_BATCH: i64 = 100;

/// How long past its due time a requested drain that has not started still covers kicks. Past it the request is
/// taken as lost (its message never sent, or its consumer gone) and the next kick requests a new drain.
pub const KICK_LOST_AFTER: Duration = Duration::from_secs(30);

/// The `kind` of a drain request on the retry queue.
pub const DRAIN_REQUEST_KIND: &str = "drain";

/// What a kick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickDecision<T> {
    /// No drain was waiting: this kick requested one, due at `due_at` (the caller sends the request).
    Requested { due_at: T },
    /// A requested drain, due at `due_at`, has not started: it will see this kick's rows.
    Covered { due_at: T },
}

impl<T> KickDecision<T> {
    pub fn is_requested(&self) -> bool {
        matches!(self, Self::Requested { .. })
    }
}

/// The in-memory coalescer: at most one requested drain waits at a time. `T` is a point in time
/// (`std::time::Instant`, or a test's own clock).
#[derive(Debug, Clone)]
pub struct KickCoalescer<T> {
    debounce: Duration,
    /// `None`: a request never lapses (in memory it cannot be lost).
    lost_after: Option<Duration>,
    /// The due time of the requested drain that has not started.
    pending: Option<T>,
}

impl<T: Copy + Ord + Add<Duration, Output = T>> KickCoalescer<T> {
    /// A coalescer whose requests wait until a drain takes them.
    pub fn new(debounce: Duration) -> Self {
        Self {
            debounce,
            lost_after: None,
            pending: None,
        }
    }

    /// Requests lapse `lost_after` past their due time (see [`KICK_LOST_AFTER`]).
    pub fn with_lost_after(mut self, lost_after: Duration) -> Self {
        self.lost_after = Some(lost_after);
        self
    }

    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    /// A kick at `now`, after its rows committed; `batch_full` when the rows due fill a HubSpot batch
    /// ([`FULL_BATCH`]), which drains at once: a request not due yet is pulled forward to `now` (`Requested`).
    pub fn kick(&mut self, now: T, batch_full: bool) -> KickDecision<T> {
        let window = if batch_full { Duration::ZERO } else { self.debounce };
        match self.pending {
            Some(due_at)
                if self.lost_after.is_none_or(|lost_after| now < due_at + lost_after) && due_at <= now + window =>
            {
                KickDecision::Covered { due_at }
            }
            _ => {
                let due_at = now + window;
                self.pending = Some(due_at);
                KickDecision::Requested { due_at }
            }
        }
    }

    /// When the requested drain is due, if one waits.
    pub fn due_at(&self) -> Option<T> {
        self.pending
    }

    /// The requested drain starts: called before its first claim. True when a request was waiting.
    pub fn start_drain(&mut self) -> bool {
        self.pending.take().is_some()
    }

    /// The request due at `due_at` could not be sent: forget it (unless a newer one replaced it), so the next kick
    /// requests again instead of waiting for [`KICK_LOST_AFTER`].
    pub fn release(&mut self, due_at: T) {
        if self.pending == Some(due_at) {
            self.pending = None;
        }
    }
}

/// The SQS delay of a drain request: the debounce window rounded up to whole seconds (SQS's unit), at most 900 s.
pub fn sqs_delay(debounce: Duration) -> Duration {
    let seconds = u64::try_from(debounce.as_millis().div_ceil(1_000)).unwrap_or(u64::MAX);
    Duration::from_secs(seconds).min(MAX_SQS_DELAY)
}

/// The body of a drain request on the retry queue:
/// `{"kind": "drain", "requested_by": "ingest", "due_at": "2026-12-05T10:00:02Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRequest {
    pub kind: String,
    /// What kicked (`ingest`, `api`): for the logs.
    pub requested_by: String,
    /// When the request it serves is due (crmsync.drain_kicks' clock). A message whose request was already taken
    /// (pulled forward by a full batch and drained) finds no due request and does nothing. Absent in messages sent
    /// before it existed: those always drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

impl DrainRequest {
    pub fn new(requested_by: &str, due_at: DateTime<Utc>) -> Self {
        Self {
            kind: DRAIN_REQUEST_KIND.to_owned(),
            requested_by: requested_by.to_owned(),
            due_at: Some(due_at),
        }
    }
}

/// A message on the retry queue: a retry of one row (the original format, which has no `kind`) or a drain request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueMessage {
    Retry(RetryMessage),
    Drain(DrainRequest),
}

impl QueueMessage {
    /// Reads a message body; an unknown `kind` is an error naming it.
    pub fn parse(body: &str) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(body)?;
        match value.get("kind").and_then(serde_json::Value::as_str) {
            None => Ok(Self::Retry(serde_json::from_value(value)?)),
            Some(DRAIN_REQUEST_KIND) => Ok(Self::Drain(serde_json::from_value(value)?)),
            Some(other) => Err(serde::de::Error::custom(format!(
                "kind: unknown message kind {other:?} (expected \"drain\", or none for a retry)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test clock: milliseconds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Ms(u64);

    impl Add<Duration> for Ms {
        type Output = Ms;
        fn add(self, d: Duration) -> Ms {
            Ms(self.0 + d.as_millis() as u64)
        }
    }

    fn coalescer() -> KickCoalescer<Ms> {
        KickCoalescer::new(Duration::from_secs(2)).with_lost_after(Duration::from_secs(30))
    }

    #[test]
    fn the_first_kick_requests_a_drain_after_the_window_and_the_burst_is_covered_by_it() {
        let mut kicks = coalescer();
        assert_eq!(kicks.kick(Ms(0), false), KickDecision::Requested { due_at: Ms(2_000) });
        let requested = (1..1_000)
            .map(|i| kicks.kick(Ms(i), false))
            .filter(KickDecision::is_requested)
            .count();
        assert_eq!(requested, 0, "1,000 kicks inside the window: one request");
        assert_eq!(kicks.due_at(), Some(Ms(2_000)));
    }

    #[test]
    fn a_kick_after_the_drain_started_requests_the_next_drain_even_inside_the_first_window() {
        // The race: a row commits after the drain's last empty check, while an earlier kick's window would still
        // cover it by time alone. The drain forgot its request when it started, so this kick asks again.
        let mut kicks = coalescer();
        kicks.kick(Ms(0), false);
        assert!(kicks.start_drain(), "the drain takes the waiting request");
        assert_eq!(
            kicks.kick(Ms(1_500), false),
            KickDecision::Requested { due_at: Ms(3_500) }
        );
        // Until that one starts, further kicks are covered.
        assert_eq!(
            kicks.kick(Ms(1_600), false),
            KickDecision::Covered { due_at: Ms(3_500) }
        );
    }

    #[test]
    fn a_kick_before_the_drain_started_is_covered_even_past_the_due_time() {
        // The drain is late (a busy consumer): its rows are still claimed after its start.
        let mut kicks = coalescer();
        kicks.kick(Ms(0), false);
        assert!(!kicks.kick(Ms(10_000), false).is_requested());
        assert!(kicks.start_drain());
        assert!(!kicks.start_drain(), "a second drain start finds no request");
    }

    #[test]
    fn a_request_whose_drain_never_starts_stops_covering_after_the_lost_window() {
        let mut kicks = coalescer();
        kicks.kick(Ms(0), false);
        assert!(
            !kicks.kick(Ms(31_999), false).is_requested(),
            "due 2,000 + 30,000 lost window"
        );
        assert_eq!(
            kicks.kick(Ms(32_000), false),
            KickDecision::Requested { due_at: Ms(34_000) }
        );
        let mut in_memory = KickCoalescer::new(Duration::from_secs(2));
        in_memory.kick(Ms(0), false);
        assert!(
            !in_memory.kick(Ms(3_600_000), false).is_requested(),
            "without a lost window it waits for its drain"
        );
    }

    #[test]
    fn a_released_request_lets_the_next_kick_ask_again_but_not_a_newer_one() {
        let mut kicks = coalescer();
        let KickDecision::Requested { due_at } = kicks.kick(Ms(0), false) else {
            panic!("requested")
        };
        kicks.release(due_at);
        assert_eq!(kicks.due_at(), None);
        assert!(kicks.kick(Ms(100), false).is_requested());
        kicks.release(due_at);
        assert_eq!(
            kicks.due_at(),
            Some(Ms(2_100)),
            "an old release leaves a newer request alone"
        );
    }

    #[test]
    fn a_burst_spread_over_two_seconds_with_drains_between_makes_a_handful_of_drains() {
        // 100 kicks 20 ms apart; a drain starts whenever a request is due and takes 300 ms.
        let mut kicks = coalescer();
        let mut drains = 0;
        let mut draining_until: Option<u64> = None;
        for t in (0..2_000).step_by(20) {
            if draining_until.is_some_and(|end| t >= end) {
                draining_until = None;
            }
            if draining_until.is_none() && kicks.due_at().is_some_and(|due| Ms(t) >= due) {
                assert!(kicks.start_drain());
                drains += 1;
                draining_until = Some(t + 300);
            }
            kicks.kick(Ms(t), false);
        }
        // Whatever is still requested drains once more.
        drains += usize::from(kicks.start_drain());
        assert!((1..=5).contains(&drains), "{drains} drains");
    }

    #[test]
    fn a_full_batch_pulls_the_waiting_request_forward_to_now_and_later_kicks_are_covered_by_it() {
        let mut kicks = coalescer();
        assert_eq!(kicks.kick(Ms(0), false), KickDecision::Requested { due_at: Ms(2_000) });
        assert_eq!(kicks.kick(Ms(500), false), KickDecision::Covered { due_at: Ms(2_000) });
        // The 100th record due: waiting cannot make the batch cheaper.
        assert_eq!(kicks.kick(Ms(600), true), KickDecision::Requested { due_at: Ms(600) });
        assert_eq!(kicks.due_at(), Some(Ms(600)));
        // Until that drain starts, every kick is covered, full or not.
        assert_eq!(kicks.kick(Ms(700), true), KickDecision::Covered { due_at: Ms(600) });
        assert_eq!(kicks.kick(Ms(800), false), KickDecision::Covered { due_at: Ms(600) });
        assert!(kicks.start_drain());
        // With nothing waiting, a full batch asks for a drain due at once.
        assert_eq!(kicks.kick(Ms(900), true), KickDecision::Requested { due_at: Ms(900) });
    }

    #[test]
    fn a_trickle_drains_once_per_window_and_a_steady_stream_once_per_full_batch() {
        // One write every 300 ms for 60 s (200 records), a 30 s window, drains taking 200 ms: the stream fills a batch
        // of 100 at the 100th write, before the window ends, so it drains twice, each time a full batch.
        let mut kicks = KickCoalescer::new(Duration::from_secs(30));
        let (mut due, mut drained_batches) = (0_i64, Vec::new());
        for write in 0..200_u64 {
            let now = Ms(write * 300);
            if kicks.due_at().is_some_and(|at| at <= now) {
                assert!(kicks.start_drain());
                drained_batches.push(std::mem::take(&mut due));
            }
            due += 1;
            kicks.kick(now, due >= FULL_BATCH);
        }
        if kicks.start_drain() {
            drained_batches.push(due);
        }
        assert_eq!(drained_batches, vec![100, 100]);
        // The same stream with the 2 s window: a drain per window, seven records each.
        let mut kicks = KickCoalescer::new(Duration::from_secs(2));
        let mut drains = 0;
        for write in 0..200_u64 {
            let now = Ms(write * 300);
            if kicks.due_at().is_some_and(|at| at <= now) {
                assert!(kicks.start_drain());
                drains += 1;
            }
            kicks.kick(now, false);
        }
        assert_eq!(drains + usize::from(kicks.start_drain()), 29);
    }

    #[test]
    fn the_sqs_delay_rounds_the_window_up_to_whole_seconds_within_the_cap() {
        assert_eq!(sqs_delay(Duration::from_millis(2_000)), Duration::from_secs(2));
        assert_eq!(sqs_delay(Duration::from_millis(1_001)), Duration::from_secs(2));
        assert_eq!(sqs_delay(Duration::ZERO), Duration::ZERO);
        assert_eq!(sqs_delay(Duration::from_secs(3_600)), MAX_SQS_DELAY);
    }

    #[test]
    fn queue_messages_are_drain_requests_by_kind_and_retries_without_one() {
        let due_at = "2026-12-05T10:00:02Z".parse().unwrap();
        let drain = serde_json::to_string(&DrainRequest::new("ingest", due_at)).unwrap();
        assert_eq!(
            drain,
            r#"{"kind":"drain","requested_by":"ingest","due_at":"2026-12-05T10:00:02Z"}"#
        );
        assert_eq!(
            QueueMessage::parse(&drain).unwrap(),
            QueueMessage::Drain(DrainRequest::new("ingest", due_at))
        );
        let earlier = QueueMessage::parse(r#"{"kind":"drain","requested_by":"api"}"#).unwrap();
        assert!(
            matches!(earlier, QueueMessage::Drain(DrainRequest { due_at: None, .. })),
            "a message from before due_at still reads as a drain request: {earlier:?}"
        );
        let retry = r#"{"sync_queue_id":"7b6f3c1e-0c2a-4f59-9d7e-2b1a8f0e4c11","entity_type":"deal","entity_id":"7b6f3c1e-0c2a-4f59-9d7e-2b1a8f0e4c12","attempts":2}"#;
        assert!(matches!(QueueMessage::parse(retry).unwrap(), QueueMessage::Retry(m) if m.attempts == 2));
        let unknown = QueueMessage::parse(r#"{"kind":"flush"}"#).unwrap_err().to_string();
        assert!(unknown.contains("unknown message kind \"flush\""), "{unknown}");
        assert!(QueueMessage::parse("not json").is_err());
    }
}
