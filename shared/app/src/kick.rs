//! The fast path's kick: after a write commits rows to `sync_queue` (an ingestion, or an API write), it asks for a
//! drain, so the rows reach HubSpot in seconds instead of at the next scheduled drain. Kicks are coalesced by the
//! rule in [`crmsync_domain::kick`]: in `crmsync serve` in memory ([`LocalKicks`], an in-process signal to its
//! fast-path drainer), in AWS across processes through crmsync.drain_kicks and one delayed SQS drain request on the
//! retry queue, which the outbound-sync function consumes. When the rows due fill a HubSpot batch
//! ([`FULL_BATCH`] records of one type), the drain is due at once: waiting cannot make a full batch cheaper.
//!
//! A kick never fails its write: a failure is logged and counted ([`DRAIN_KICKS_FAILED`]), and the rows wait in
//! `sync_queue` for the schedule, the safety net.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crmsync_db::kick::PgDrainKicks;
use crmsync_domain::kick::{DrainRequest, FULL_BATCH, KICK_LOST_AFTER, KickCoalescer, KickDecision, sqs_delay};
use crmsync_queue::SqsRetryQueue;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{DRAIN_KICKS_FAILED, DRAIN_KICKS_REQUESTED, MetricSet};

/// What a kick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickOutcome {
    /// The fast path is off (`SYNC_FAST_PATH=off`, or no retry queue to ask through): the schedule takes the rows.
    Off,
    /// This kick asked for a drain.
    Requested,
    /// A drain already asked for, not started yet, takes this kick's rows.
    Covered,
    /// The kick could not ask (logged and counted): the schedule takes the rows.
    Failed,
}

/// How an entry point asks for a drain after it queued rows. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub enum DrainKicker {
    /// No fast path: the rows wait for the schedule.
    #[default]
    Off,
    /// `crmsync serve`: a signal to its own fast-path drainer.
    InProcess(LocalKicks),
    /// The Lambdas and the CLI: a delayed drain request on the retry queue, coalesced in crmsync.drain_kicks.
    Sqs(SqsKicks),
}

impl DrainKicker {
    /// Asks for a drain after `requested_by` (`ingest`, `api`) committed rows to `sync_queue`. Never fails.
    pub async fn kick(&self, requested_by: &str) -> KickOutcome {
        let outcome = match self {
            Self::Off => KickOutcome::Off,
            Self::InProcess(local) => {
                if local.kick().await.is_requested() {
                    KickOutcome::Requested
                } else {
                    KickOutcome::Covered
                }
            }
            Self::Sqs(sqs) => sqs.kick(requested_by).await,
        };
        match outcome {
            KickOutcome::Requested => {
                tracing::debug!(requested_by, "fast path: drain requested");
                MetricSet::new().count(DRAIN_KICKS_REQUESTED, 1).emit();
            }
            KickOutcome::Failed => MetricSet::new().count(DRAIN_KICKS_FAILED, 1).emit(),
            KickOutcome::Off | KickOutcome::Covered => {}
        }
        outcome
    }
}

/// `crmsync serve`'s kicks: the coalescer in memory and a signal to the fast-path drainer.
#[derive(Debug, Clone)]
pub struct LocalKicks {
    inner: Arc<LocalInner>,
    /// Asked whether the rows due fill a batch.
    due_rows: PgDrainKicks,
}

#[derive(Debug)]
struct LocalInner {
    coalescer: Mutex<KickCoalescer<Instant>>,
    wake: Notify,
}

impl LocalKicks {
    /// Kicks coalesced over `debounce`; `due_rows` answers whether the rows due fill a batch.
    pub fn new(debounce: Duration, due_rows: PgDrainKicks) -> Self {
        Self {
            inner: Arc::new(LocalInner {
                // In memory a request cannot be lost: it waits until the drainer takes it.
                coalescer: Mutex::new(KickCoalescer::new(debounce)),
                wake: Notify::new(),
            }),
            due_rows,
        }
    }

    fn coalescer(&self) -> std::sync::MutexGuard<'_, KickCoalescer<Instant>> {
        self.inner.coalescer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn kick(&self) -> KickDecision<Instant> {
        let batch_full = batch_full(&self.due_rows).await;
        let decision = self.coalescer().kick(Instant::now(), batch_full);
        if decision.is_requested() {
            self.inner.wake.notify_one();
        }
        decision
    }

    /// Waits until a requested drain is due and starts it (forgets the request): the drainer calls this before each
    /// drain, so a kick after it requests the next one.
    pub async fn next_drain(&self) {
        loop {
            let due_at = self.coalescer().due_at();
            match due_at {
                // A kick between the read and the wait leaves a permit: `notified` returns at once.
                None => self.inner.wake.notified().await,
                Some(due_at) => {
                    // A full batch pulls the request forward and wakes this wait; the loop reads the new due time.
                    tokio::select! {
                        () = tokio::time::sleep_until(due_at) => {}
                        () = self.inner.wake.notified() => continue,
                    }
                    if self.coalescer().start_drain() {
                        return;
                    }
                }
            }
        }
    }
}

/// The Lambdas' kicks: coalesced in crmsync.drain_kicks, asked for with one SQS drain request per burst.
#[derive(Debug, Clone)]
pub struct SqsKicks {
    kicks: PgDrainKicks,
    queue: SqsRetryQueue,
    debounce: Duration,
}

impl SqsKicks {
    pub fn new(kicks: PgDrainKicks, queue: SqsRetryQueue, debounce: Duration) -> Self {
        Self { kicks, queue, debounce }
    }

    async fn kick(&self, requested_by: &str) -> KickOutcome {
        let window = if batch_full(&self.kicks).await {
            Duration::ZERO
        } else {
            self.debounce
        };
        let delay = sqs_delay(window);
        let due_at = match self.kicks.kick(delay, KICK_LOST_AFTER).await {
            Ok(KickDecision::Covered { .. }) => return KickOutcome::Covered,
            Ok(KickDecision::Requested { due_at }) => due_at,
            Err(error) => {
                tracing::warn!(%error, requested_by, "fast path: could not record the kick; the schedule syncs the rows");
                return KickOutcome::Failed;
            }
        };
        match self
            .queue
            .send_drain_request(&DrainRequest::new(requested_by, due_at), delay)
            .await
        {
            Ok(()) => KickOutcome::Requested,
            Err(error) => {
                tracing::warn!(%error, requested_by, queue_url = self.queue.queue_url(),
                    "fast path: could not send the drain request; the schedule syncs the rows");
                // Forget the request no message will serve, so the next kick tries again at once.
                if let Err(error) = self.kicks.release(due_at).await {
                    tracing::warn!(%error, "fast path: could not release the unsent request; it lapses by itself");
                }
                KickOutcome::Failed
            }
        }
    }
}

/// Whether the rows due fill a HubSpot batch. Unknown (the question failed) counts as not full: the window applies.
async fn batch_full(due_rows: &PgDrainKicks) -> bool {
    due_rows
        .due_rows_fill_a_batch(FULL_BATCH)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "fast path: could not count the rows due; the debounce window applies");
            false
        })
}
