//! The drain's tunables and what a drain reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crmsync_domain::circuit::CircuitSettings;
use crmsync_domain::policy::FieldPolicies;
use crmsync_domain::sync::RetryPolicy;
use serde::Serialize;
use uuid::Uuid;

/// How long a deal waits before its next try when its company is not in HubSpot yet. Not an attempt.
pub const WAIT_FOR_COMPANY: Duration = Duration::from_secs(60);

/// Tunables of a drain.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long a claim holds its rows; a crashed run's rows come back after it.
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// This process's name. Each claim writes `<worker>/<claim id>` to `sync_queue.locked_by`, and write-backs
    /// check it, so a run whose lease expired cannot overwrite the result of the run that took its rows over.
    pub worker: String,
    /// Which side wins each property: a property HubSpot owns is sent only when the record is created there.
    pub field_policies: Arc<FieldPolicies>,
    /// When the circuit breaker stops calling HubSpot, and for how long.
    pub circuit: CircuitSettings,
}

/// A name unique to this process: pids repeat across Lambda containers (often pid 1 or a small number).
fn process_worker_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("crmsync-{}-{}", std::process::id(), Uuid::new_v4().simple()))
        .clone()
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            lease: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            worker: process_worker_name(),
            field_policies: Arc::new(FieldPolicies::defaults()),
            circuit: CircuitSettings::default(),
        }
    }
}
/// What a drain did. Serialized into the run's log line and its crmsync.sync_runs row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub rounds: u64,
    pub claimed: u64,
    pub companies_created: u64,
    pub companies_updated: u64,
    pub deals_created: u64,
    pub deals_updated: u64,
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub engagements_created: u64,
    pub associations: u64,
    /// Items completed without a HubSpot call: nothing changed since the last sync.
    pub unchanged: u64,
    /// Items put back to wait for another record (a deal for its company).
    pub deferred: u64,
    /// Items claimed but not sent before the time budget ran out: due again at once, no attempt counted.
    pub postponed: u64,
    /// Items failed with a retryable error, to be retried.
    pub failed: u64,
    /// Items that are dead: attempts spent, or a permanent error.
    pub dead: u64,
    /// Retry messages sent to SQS.
    pub retry_messages: u64,
    /// True when HubSpot's daily limit stopped the run.
    pub daily_limit_reached: bool,
    /// HubSpot requests this run sent, and 429s it got. From the client's counters, which are per process: runs
    /// that overlap in one process (`crmsync serve`'s schedule and retry poller) count each other's too.
    pub hubspot_requests: u64,
    pub hubspot_429: u64,
    pub elapsed_ms: u64,
    /// The circuit breaker during this run (see [`crmsync_domain::circuit`]): its retryable failures opened it;
    pub circuit_opened: bool,
    /// it sent the probe of an open circuit;
    pub circuit_probed: bool,
    /// its probe succeeded and closed the circuit;
    pub circuit_closed: bool,
    /// it ended with the circuit open (it stopped calling HubSpot, or deferred its retry messages).
    pub circuit_open: bool,
    /// Retry messages put back for after the cool-down because the circuit was open.
    pub circuit_deferred: u64,
}

impl SyncReport {
    /// The circuit breaker's state as this run left it: `open`, or `closed`.
    pub fn circuit_state(&self) -> &'static str {
        if self.circuit_open { "open" } else { "closed" }
    }
}

/// What a dry run would send, per entity type: `{"company": {"create": 2, "update": 1, "unchanged": 0}, ...}`.
pub type DryRunReport = BTreeMap<String, BTreeMap<String, u64>>;
