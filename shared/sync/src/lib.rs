//! The outbound sync use case: drain due sync_queue rows to HubSpot in batches. Replaces the guide's Step C
//! (10 rows per run, one call each).
//!
//! A round claims due rows (lease + SKIP LOCKED), coalesces them per entity, writes companies first (batch
//! upsert on `crmsync_id`, ≤100 per call), then deals with their primary company association (≤2,000 per call),
//! sends only the properties whose value hash changed since the last successful sync, and writes the results back
//! in one transaction per entity type. Retryable failures back off (Postgres `next_attempt_at`, plus a delayed
//! SQS message when a retry queue is configured); permanent ones fail only their own items.

mod activities;
mod circuit;
mod drain;
mod dry_run;
mod metrics;
mod retry;
mod round;
mod send;
mod settings;
mod write_back;

pub use drain::{OutboundSync, from_config};
pub use retry::{KICK_TRIGGER, RetryDelivery, purge_redriven};
pub use settings::{DryRunReport, SyncReport, SyncSettings, WAIT_FOR_COMPANY};
