//! Retry scheduling for events a pass could not finish: postponing an event with the retry policy's backoff (or
//! giving it up after its last attempt), and the SQS retry-queue messages that bring it back early.

use std::time::Duration;

use crmsync_db::{Db, DbError, inbox};
use crmsync_domain::sync::{RetryDecision, RetryMessage, RetryPolicy};
use uuid::Uuid;

use crate::applier::Applier;

/// The events of a pass that get a retry-queue message once it has committed, with their attempts so far.
#[derive(Debug, Default)]
pub(crate) struct Retries {
    /// Postponed: due again after the delay.
    postponed: Vec<(Uuid, i32, Duration)>,
    /// Given up in this pass: each gets a DLQ-bound retry message.
    dead: Vec<(Uuid, i32)>,
    /// Left open, untouched, because the pass ran out of time.
    deferred: Vec<(Uuid, i32)>,
}

/// What [`Retries::postpone`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Postponed {
    /// Due again later.
    Waiting,
    /// Its attempts are spent: dead, after `attempts`.
    Dead { attempts: i32 },
}

impl Retries {
    pub(crate) fn defer(&mut self, id: Uuid, attempts: i32) {
        self.deferred.push((id, attempts));
    }

    pub(crate) fn dead(&mut self, id: Uuid, attempts: i32) {
        self.dead.push((id, attempts));
    }

    pub(crate) fn extend(&mut self, other: Retries) {
        self.postponed.extend(other.postponed);
        self.dead.extend(other.dead);
        self.deferred.extend(other.deferred);
    }

    /// Leaves an event for a later attempt after the policy's backoff, or gives it up (`dead`) when its attempts
    /// are spent, recording `reason` on its inbox row in the caller's transaction.
    pub(crate) async fn postpone(
        &mut self,
        client: &impl Db,
        policy: &RetryPolicy,
        id: Uuid,
        attempts_before: i32,
        reason: &str,
    ) -> Result<Postponed, DbError> {
        match policy.after_failure(attempts_before, rand::random::<f64>(), None) {
            RetryDecision::RetryAfter { delay, attempts } => {
                inbox::postpone(client, id, attempts, Some(delay.as_secs_f64()), reason).await?;
                self.postponed.push((id, attempts, delay));
                Ok(Postponed::Waiting)
            }
            RetryDecision::Dead { attempts } => {
                inbox::postpone(client, id, attempts, None, reason).await?;
                self.dead.push((id, attempts));
                Ok(Postponed::Dead { attempts })
            }
        }
    }

    /// The messages to send: (inbox id, attempts, delay). Deferred events come back through SQS at once rather than
    /// at the next scheduled drain. Dead ones get a message too, unless the pass handles retry-queue messages (a
    /// dead event's own message is reported failed there).
    pub(crate) fn messages(&self, from_retry_queue: bool) -> Vec<(Uuid, i32, Duration)> {
        let mut messages = self.postponed.clone();
        messages.extend(
            self.deferred
                .iter()
                .map(|(id, attempts)| (*id, *attempts, Duration::ZERO)),
        );
        if !from_retry_queue {
            // Like a dead sync item: a message the retry handler reports failed on every receive, so the redrive
            // policy moves it to the DLQ and the DLQ alarm fires, however the event died.
            messages.extend(self.dead.iter().map(|(id, attempts)| (*id, *attempts, Duration::ZERO)));
        }
        messages
    }
}

impl Applier {
    /// Retry-queue messages: (inbox id, attempts, delay). Postgres stays the truth: a failed send only means the
    /// event waits for the next pass.
    pub(crate) async fn schedule_retries(&self, postponed: &[(Uuid, i32, Duration)]) {
        let Some(queue) = &self.retry_queue else { return };
        if postponed.is_empty() {
            return;
        }
        let messages: Vec<(RetryMessage, Duration)> = postponed
            .iter()
            .map(|(id, attempts, delay)| (RetryMessage::for_inbox_event(*id, *attempts), *delay))
            .collect();
        if let Err(error) = queue.schedule(&messages).await {
            tracing::warn!(%error, events = messages.len(), "could not schedule webhook retries on SQS; the next pass takes them");
        }
    }
}
