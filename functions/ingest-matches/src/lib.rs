//! The ingest-matches Lambda: the upstream matching workflow invokes it with new matches; it answers with the
//! same report as `crmsync ingest` and `POST /ingest/matches`. When it queued rows it kicks the fast path: one
//! delayed drain request on the retry queue per burst (coalesced in crmsync.drain_kicks), which the outbound-sync
//! function consumes. A failed kick is logged and counted; the rows wait for the schedule.

use crmsync_app::AppError;
use crmsync_app::ingest::ingest_and_kick;
use crmsync_app::kick::DrainKicker;
use crmsync_db::PgMatchStore;
use crmsync_domain::ingest::IngestReport;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::Value;

/// A failed invocation, typed for Lambda: `Retryable` when the database was unavailable (the whole event may be
/// sent again safely: ingestion is idempotent), `NonRetryable` when the event itself is unusable.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct IngestFailure(#[from] AppError);

impl From<IngestFailure> for Diagnostic {
    fn from(failure: IngestFailure) -> Self {
        let error_type = if failure.0.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: failure.to_string(),
        }
    }
}

/// Handles one invocation: ingests, then kicks when rows were queued.
pub async fn handle(
    store: &PgMatchStore,
    kicker: &DrainKicker,
    event: LambdaEvent<Value>,
) -> Result<IngestReport, IngestFailure> {
    Ok(ingest_and_kick(store, kicker, &event.payload, "lambda").await?)
}
