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

    /// A kick, after its rows committed: covered when a requested drain has not started and is not past its due time
    /// plus `lost_after`; otherwise this call records a request due after `debounce`, and the caller sends it.
    pub async fn kick(&self, debounce: Duration, lost_after: Duration) -> Result<KickDecision<DateTime<Utc>>, DbError> {
        let client = self.pool.get().await?;
        // The outer SELECT reads the row as it was before the CTE's update: the request that covers this kick.
        let row = client
            .query_one(
                "WITH requested AS (
                   UPDATE crmsync.drain_kicks
                   SET due_at = now() + make_interval(secs => $2), requested_at = now(), updated_at = now()
                   WHERE name = $1 AND (due_at IS NULL OR due_at + make_interval(secs => $3) <= now())
                   RETURNING due_at)
                 SELECT (SELECT due_at FROM requested),
                        (SELECT due_at FROM crmsync.drain_kicks WHERE name = $1),
                        EXISTS (SELECT 1 FROM crmsync.drain_kicks WHERE name = $1)",
                &[&self.name, &debounce.as_secs_f64(), &lost_after.as_secs_f64()],
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
                        &[&self.name, &debounce.as_secs_f64()],
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
