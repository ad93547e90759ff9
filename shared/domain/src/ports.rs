//! The ports: what the use cases need from storage, stated as traits so the domain names no database.

use std::future::Future;

use serde_json::Value;
use uuid::Uuid;

use crate::DomainError;
use crate::ingest::{MatchSpec, Rejection};
use crate::sync::RetryMessage;

/// What writing one batch of matches did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWriteOutcome {
    pub companies_created: u64,
    pub companies_updated: u64,
    pub deals_created: u64,
    pub deals_updated: u64,
    /// Matches whose company and deal were already current.
    pub unchanged: u64,
    /// sync_queue rows inserted.
    pub queued: u64,
    /// Statements sent to the database for this batch (the benchmark's round trips).
    pub round_trips: u64,
}

/// A match loaded by reference: its id, and its stored spec or why its rows cannot make a deal.
pub type LoadedMatch = (Uuid, Result<MatchSpec, DomainError>);

/// Storage for match ingestion.
pub trait MatchStore: Send + Sync {
    /// Loads the referenced matches with their opportunity and contractor, reading only the columns Steps A and B
    /// use, into specs marked [`MatchSpec::stored`]. Ids that do not exist are simply absent from the answer; a
    /// match whose stored rows cannot make a deal (a required column is null) comes back as its own
    /// [`DomainError::Invalid`] naming the column.
    fn load_matches(&self, match_ids: &[Uuid]) -> impl Future<Output = Result<Vec<LoadedMatch>, DomainError>> + Send;

    /// Writes Steps A and B for every match in `batch` in one transaction: upserts the opportunity (by notice_id),
    /// the contractor (by uei) and the match (by the pair) of each embedded record (a [`MatchSpec::stored`] one's
    /// rows are left as they are), creates or updates the company (by contractor) and the deal (by match), and
    /// queues a sync_queue row for each company or deal created or changed.
    ///
    /// Idempotent: writing the same batch again changes nothing and queues nothing. Safe under concurrent calls
    /// with overlapping batches (unique keys and ON CONFLICT, never check-then-insert). All or nothing: on error
    /// nothing of the batch is written. [`DomainError::Rejected`] means the data broke a database rule (retrying
    /// the same data fails again); [`DomainError::Unavailable`] means it may succeed later.
    fn write_matches(&self, batch: &[MatchSpec])
    -> impl Future<Output = Result<BatchWriteOutcome, DomainError>> + Send;

    /// Records a delivery in crmsync's own schema: one row with the report's counts, and one row per rejected
    /// match carrying its original JSON, so a rejected match is never lost.
    fn record_delivery(
        &self,
        source: &str,
        summary: &Value,
        rejections: &[(Rejection, Value)],
    ) -> impl Future<Output = Result<(), DomainError>> + Send;
}

/// The fast path for retries (SQS in production). Postgres stays the durable truth: a retry that cannot be
/// scheduled here still comes back through the scheduled drain, so implementations may fail without loss.
///
/// The future is boxed: a boxed `Send` future keeps callers spawnable on a multi-threaded runtime (an
/// `impl Future + Send` return here trips rustc's higher-ranked `Send` inference in spawned tasks).
pub trait RetryQueue: Send + Sync {
    /// Schedules each message to become visible after its delay (capped at SQS's 15 minutes).
    fn schedule<'a>(
        &'a self,
        messages: &'a [(RetryMessage, std::time::Duration)],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), DomainError>> + Send + 'a>>;
}
