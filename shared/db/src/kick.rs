//! The fast path's coalescing across processes: crmsync.drain_kicks holds, per drainer, the due time of the requested
//! drain that has not started yet. The rule is `crmsync_domain::kick`'s ([`KickCoalescer`] in memory); here each step
//! is one statement on the database's clock, so kicks from many Lambda processes agree, and concurrent kicks
//! serialize on the row's lock (an `UPDATE` re-checks its condition after waiting for another's commit).
//!
//! [`KickCoalescer`]: crmsync_domain::kick::KickCoalescer

use std::time::Duration;

use chrono::{DateTime, Utc};
use crmsync_domain::kick::KickDecision;

use crate::{DbError, Pool};

/// The outbound drain's row (the one 0014_drain_kicks.sql inserts).
pub const OUTBOUND_DRAIN: &str = "outbound";

/// What a drain request message found when it arrived ([`PgDrainKicks::start_due_drain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueDrain {
    /// It took the due request (made at `requested_at`): drain.
    Started { requested_at: Option<DateTime<Utc>> },
    /// The waiting request is due later, and its own message comes then: nothing to do now.
    NotDue { due_at: DateTime<Utc> },
    /// No request waits: a drain took this message's request already (a full batch pulled it forward).
    NoneWaiting,
}

/// The kick state of one drainer.
#[derive(Clone, Debug)]
pub struct PgDrainKicks {
    pool: Pool,
    name: &'static str,
}

impl PgDrainKicks {
    /// The outbound drain's kicks on `pool`.
    pub fn outbound(pool: Pool) -> Self {
        Self {
            pool,
            name: OUTBOUND_DRAIN,
        }
    }

    /// A kick, after its rows committed: covered when a requested drain has not started, is not past its due time
    /// plus `lost_after`, and is due within `window`; otherwise this call records a request due after `window` (a
    /// new one, or the waiting one pulled forward when `window` is zero for a full batch), and the caller sends it.
    pub async fn kick(&self, window: Duration, lost_after: Duration) -> Result<KickDecision<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        // The outer SELECT reads the row as it was before the CTE's update: the request that covers this kick.
        // A pulled-forward request keeps its requested_at (when the burst began).
        let row = client
            .query_one(
                "WITH requested AS (
                   UPDATE crmsync.drain_kicks
                   SET due_at = now() + make_interval(secs => $2),
                       requested_at = CASE WHEN due_at IS NULL OR due_at + make_interval(secs => $3) <= now()
                                           THEN now() ELSE requested_at END,
                       updated_at = now()
                   WHERE name = $1 AND (due_at IS NULL OR due_at + make_interval(secs => $3) <= now()
                                        OR due_at > now() + make_interval(secs => $2))
                   RETURNING due_at)
                 SELECT (SELECT due_at FROM requested),
                        (SELECT due_at FROM crmsync.drain_kicks WHERE name = $1),
                        EXISTS (SELECT 1 FROM crmsync.drain_kicks WHERE name = $1)",
                &[&self.name, &window.as_secs_f64(), &lost_after.as_secs_f64()],
            )
            .await?;
        let requested: Option<DateTime<Utc>> = row.get(0);
        let waiting: Option<DateTime<Utc>> = row.get(1);
        let exists: bool = row.get(2);
        match (requested, waiting, exists) {
            (Some(due_at), _, _) => Ok(KickDecision::Requested { due_at }),
            (None, Some(due_at), true) => Ok(KickDecision::Covered { due_at }),
            // The row is missing (a database restored without it): make it, with this request.
            _ => {
                let inserted = client
                    .query_opt(
                        "INSERT INTO crmsync.drain_kicks (name, due_at, requested_at)
                         VALUES ($1, now() + make_interval(secs => $2), now())
                         ON CONFLICT (name) DO NOTHING RETURNING due_at",
                        &[&self.name, &window.as_secs_f64()],
                    )
                    .await?;
                match inserted {
                    Some(row) => Ok(KickDecision::Requested { due_at: row.get(0) }),
                    // Another process made it with its own request just now: that one covers this kick.
                    None => Ok(KickDecision::Covered {
                        due_at: client
                            .query_one(
                                "SELECT coalesce(due_at, now()) FROM crmsync.drain_kicks WHERE name = $1",
                                &[&self.name],
                            )
                            .await?
                            .get(0),
                    }),
                }
            }
        }
    }

    /// Whether the sync_queue rows due now fill a HubSpot batch: `batch` distinct records of one entity type (the
    /// drain coalesces an entity's rows, so a second change of a record waiting adds nothing to its batch).
    pub async fn due_rows_fill_a_batch(&self, batch: i64) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (
                   SELECT 1 FROM public.sync_queue
                   WHERE status IN ('pending', 'failed') AND next_attempt_at <= now()
                   GROUP BY entity_type HAVING count(DISTINCT entity_id) >= $1)",
                &[&batch],
            )
            .await?;
        Ok(row.get(0))
    }

    /// The requested drain starts, before its first claim: the request is forgotten, so a kick after this requests
    /// the next drain. Returns when the request that was waiting was made, if one was.
    pub async fn start_drain(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "UPDATE crmsync.drain_kicks SET due_at = NULL, updated_at = now()
                 WHERE name = $1 AND due_at IS NOT NULL RETURNING requested_at",
                &[&self.name],
            )
            .await?;
        Ok(row.and_then(|row| row.get(0)))
    }

    /// A drain request message arrived: the drain starts as [`PgDrainKicks::start_drain`] does, but only when the
    /// waiting request is due (within `slack`). A request that is not due yet is a newer one with its own message on
    /// the way: the message that arrived served a request a full batch pulled forward and a drain already took.
    pub async fn start_due_drain(&self, slack: Duration) -> Result<DueDrain, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "WITH taken AS (
                   UPDATE crmsync.drain_kicks SET due_at = NULL, updated_at = now()
                   WHERE name = $1 AND due_at <= now() + make_interval(secs => $2)
                   RETURNING requested_at)
                 SELECT EXISTS (SELECT 1 FROM taken), (SELECT requested_at FROM taken),
                        (SELECT due_at FROM crmsync.drain_kicks WHERE name = $1)",
                &[&self.name, &slack.as_secs_f64()],
            )
            .await?;
        Ok(match (row.get::<_, bool>(0), row.get(1), row.get(2)) {
            (true, requested_at, _) => DueDrain::Started { requested_at },
            (false, _, Some(due_at)) => DueDrain::NotDue { due_at },
            (false, _, None) => DueDrain::NoneWaiting,
        })
    }

    /// The request due at `due_at` could not be sent: forget it (unless a newer one replaced it), so the next kick
    /// requests again at once.
    pub async fn release(&self, due_at: DateTime<Utc>) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE crmsync.drain_kicks SET due_at = NULL, updated_at = now() WHERE name = $1 AND due_at = $2",
                &[&self.name, &due_at],
            )
            .await?;
        Ok(())
    }

    /// The due time of the request waiting, if any (for `crmsync status` and tests).
    pub async fn waiting(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt("SELECT due_at FROM crmsync.drain_kicks WHERE name = $1", &[&self.name])
            .await?;
        Ok(row.and_then(|row| row.get(0)))
    }
}
