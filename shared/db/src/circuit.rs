//! The circuit breaker's shared state: one crmsync.sync_circuit row per breaker, which every process (each Lambda
//! invocation) reads before calling HubSpot. The transitions are the domain's ([`CircuitState`]); this applies
//! them under the row's lock, on the database's clock, so concurrent processes agree on one probe.

use chrono::{DateTime, Utc};
use crmsync_domain::circuit::CircuitState;

use crate::{Db, DbError, Pool};

/// The breaker in front of HubSpot (the row 0012_retry_window.sql inserts).
pub const HUBSPOT_CIRCUIT: &str = "hubspot";

/// Reads and moves a circuit's row.
#[derive(Clone, Debug)]
pub struct PgCircuit {
    pool: Pool,
    name: &'static str,
}

fn state_from(name: &str, failures: i32, until: Option<DateTime<Utc>>) -> Result<CircuitState, DbError> {
    let until = || until.ok_or_else(|| DbError::Config(format!("circuit {name} has no open_until")));
    Ok(match name {
        "closed" => CircuitState::Closed {
            failures: u32::try_from(failures).unwrap_or(0),
        },
        "open" => CircuitState::Open { until: until()? },
        "half_open" => CircuitState::HalfOpen { until: until()? },
        other => return Err(DbError::Config(format!("unknown circuit state {other:?}"))),
    })
}

fn columns(state: CircuitState) -> (&'static str, i32, Option<DateTime<Utc>>) {
    match state {
        CircuitState::Closed { failures } => ("closed", i32::try_from(failures).unwrap_or(i32::MAX), None),
        CircuitState::Open { until } => ("open", 0, Some(until)),
        CircuitState::HalfOpen { until } => ("half_open", 0, Some(until)),
    }
}

impl PgCircuit {
    /// The HubSpot breaker on `pool`.
    pub fn hubspot(pool: Pool) -> Self {
        Self {
            pool,
            name: HUBSPOT_CIRCUIT,
        }
    }

    /// The state now, and the database's clock, without a lock.
    pub async fn read(&self) -> Result<(CircuitState, DateTime<Utc>), DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT state, consecutive_failures, open_until, now() FROM crmsync.sync_circuit WHERE name = $1",
                &[&self.name],
            )
            .await?;
        match row {
            Some(row) => Ok((state_from(row.get(0), row.get(1), row.get(2))?, row.get(3))),
            None => {
                let now: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.get(0);
                Ok((CircuitState::CLOSED, now))
            }
        }
    }

    /// Moves the circuit as `transition` decides from its state and the database's clock, in one transaction
    /// holding the row's lock. `on_close` runs in that transaction when the circuit goes from open to closed.
    /// Returns the state before, the state after, and what `transition` returned besides.
    pub async fn update<T>(
        &self,
        transition: impl FnOnce(CircuitState, DateTime<Utc>) -> (CircuitState, T),
    ) -> Result<(CircuitState, CircuitState, T), DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "INSERT INTO crmsync.sync_circuit (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&self.name],
            )
            .await?;
        let row = transaction
            .query_one(
                "SELECT state, consecutive_failures, open_until, now() FROM crmsync.sync_circuit
                 WHERE name = $1 FOR UPDATE",
                &[&self.name],
            )
            .await?;
        let before = state_from(row.get(0), row.get(1), row.get(2))?;
        let (after, result) = transition(before, row.get(3));
        if after != before {
            let (state, failures, until) = columns(after);
            transaction
                .execute(
                    "UPDATE crmsync.sync_circuit
                     SET state = $2, consecutive_failures = $3, open_until = $4, updated_at = now(),
                         opened_at = CASE WHEN $2 = 'closed' THEN NULL ELSE coalesce(opened_at, now()) END
                     WHERE name = $1",
                    &[&self.name, &state, &failures, &until],
                )
                .await?;
            if before.is_open() && !after.is_open() {
                wake_retryable_rows(&transaction).await?;
            }
        }
        transaction.commit().await?;
        Ok((before, after, result))
    }
}

/// Rows backing off after retryable failures are due now: the circuit closed, so HubSpot answers again, and the
/// waits an outage grew need not run out first.
async fn wake_retryable_rows(client: &impl Db) -> Result<u64, DbError> {
    client
        .execute(
            "UPDATE sync_queue SET next_attempt_at = now()
             WHERE status = 'failed' AND next_attempt_at > now()
               AND id IN (SELECT sync_queue_id FROM crmsync.sync_retry_state)",
            &[],
        )
        .await
}
