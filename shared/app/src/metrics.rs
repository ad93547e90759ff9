//! Metrics as CloudWatch Embedded Metric Format (EMF) documents: one JSON line per [`MetricSet`], written to the
//! process's log stream (stdout in Lambda, where CloudWatch Logs extracts the metrics; no CloudWatch API call and
//! no IAM permission). The format:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//!
//! Hand-written rather than `metrics_cloudwatch_embedded`: that crate is a global recorder for the `metrics` facade
//! that must be flushed around every invocation (its own `lambda_runtime::run` wrapper, none for `lambda_http` or a
//! long-running `crmsync serve`), while crmsync emits a handful of per-run summaries, each one document.
//!
//! Every document carries two dimension sets: `[Function]` (the Lambda's name, `AWS_LAMBDA_FUNCTION_NAME`, or
//! `crmsync-serve` / `crmsync`), and the empty set, so the stack's alarms see one series whichever function
//! emitted it. A set may add dimensions of its own (the webhook rejection's `Reason`). The namespace is
//! `METRICS_NAMESPACE` (default `crmsync`; `template.yaml` sets `crmsync/<stack name>`). README.md lists every
//! metric and the alarms on them.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The default namespace, when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "crmsync";
/// The dimension naming the process that emitted a document.
pub const FUNCTION_DIMENSION: &str = "Function";
/// The dimension of [`WEBHOOK_REQUESTS_REJECTED`]: why a request was refused.
pub const REASON_DIMENSION: &str = "Reason";

// The outbound sync, one document per drain or retry batch.
/// Queue rows written to HubSpot (or found unchanged) and completed.
pub const SYNC_ITEMS_SYNCED: &str = "SyncItemsSynced";
/// Queue rows failed with a retryable error (retried later).
pub const SYNC_ITEMS_FAILED: &str = "SyncItemsFailed";
/// Queue rows that died (a permanent error, or attempts spent).
pub const SYNC_ITEMS_DEAD: &str = "SyncItemsDead";
/// HubSpot requests the run sent, and the 429s among the answers.
pub const HUBSPOT_REQUESTS: &str = "HubSpotRequests";
pub const HUBSPOT_429S: &str = "HubSpot429s";
/// Open sync_queue rows (pending, failed, in progress) after the run.
pub const QUEUE_DEPTH: &str = "QueueDepth";
/// Age of the oldest row not yet in HubSpot (pending or failed) after the run; 0 when there is none.
pub const QUEUE_OLDEST_PENDING_AGE: &str = "QueueOldestPendingAgeSeconds";
/// 1 when a drain found the circuit breaker open, or opened it: HubSpot is failing and calls are paused.
pub const CIRCUIT_OPEN: &str = "CircuitOpen";

// The fast path, one document per kick that requested a drain or failed (covered kicks emit nothing).
/// Kicks that asked for a drain (an SQS drain request sent, or `crmsync serve`'s drainer woken).
pub const DRAIN_KICKS_REQUESTED: &str = "DrainKicksRequested";
/// Kicks that could not ask (the database or SQS failed): the rows wait for the next scheduled drain.
pub const DRAIN_KICKS_FAILED: &str = "DrainKicksFailed";

// The webhook endpoint, one document per request.
/// Requests that reached the handler (the denominator of the 401 rate).
pub const WEBHOOK_REQUESTS: &str = "WebhookRequests";
/// Requests refused, by `Reason`: `bad_signature` (401), `bad_body` (400), `unavailable` (503).
pub const WEBHOOK_REQUESTS_REJECTED: &str = "WebhookRequestsRejected";
/// Events in signed, well-formed requests, and those among them already stored (HubSpot's re-deliveries).
pub const WEBHOOK_EVENTS_ACCEPTED: &str = "WebhookEventsAccepted";
pub const WEBHOOK_EVENTS_DUPLICATE: &str = "WebhookEventsDuplicate";

// The webhook applier, one document per pass that did something.
/// Events applied, skipped (echoes, older than local, ...), and given up (dead).
pub const WEBHOOK_EVENTS_APPLIED: &str = "WebhookEventsApplied";
pub const WEBHOOK_EVENTS_SKIPPED: &str = "WebhookEventsSkipped";
pub const WEBHOOK_EVENTS_DEAD: &str = "WebhookEventsDead";
/// The largest now − occurredAt among the pass's applied events.
pub const WEBHOOK_APPLY_LAG: &str = "WebhookApplyLagSeconds";

/// An EMF unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Where documents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The Lambda functions and `crmsync serve`: stdout is the log stream.
    Stdout,
    /// For a command whose stdout is its result.
    Stderr,
    /// Nothing is written: outside Lambda unless configured (tests, one-off commands).
    Off,
}

struct Settings {
    sink: Sink,
    function: String,
    namespace: String,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the sink and the `Function` dimension for this process (`AWS_LAMBDA_FUNCTION_NAME` wins when set). Call
/// once at start-up, before the first document (`crmsync serve` does); a later call is ignored.
pub fn configure(sink: Sink, function: &str) {
    let _ = SETTINGS.set(Settings {
        sink,
        function: lambda_function_name().unwrap_or_else(|| function.to_owned()),
        namespace: namespace_from_env(),
    });
}

/// Without [`configure`]: stdout inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set), else nothing, so that tests and
/// commands whose stdout is their result stay clean.
fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        sink: if lambda_function_name().is_some() {
            Sink::Stdout
        } else {
            Sink::Off
        },
        function: lambda_function_name().unwrap_or_else(|| "crmsync".to_owned()),
        namespace: namespace_from_env(),
    })
}

fn lambda_function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|n| !n.is_empty())
}

fn namespace_from_env() -> String {
    std::env::var("METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Metrics that share a timestamp and dimensions: one EMF document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSet {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, f64, Unit)>,
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dimension beside `Function` (e.g. the rejection's `Reason`).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.values.push((name, value as f64, Unit::Count));
        self
    }

    pub fn seconds(mut self, name: &'static str, value: f64) -> Self {
        self.values.push((name, value, Unit::Seconds));
        self
    }

    /// The EMF document: `_aws` (timestamp, and one directive naming the namespace, the dimension sets and each
    /// metric with its unit), then each dimension and metric as a top-level member.
    pub fn to_emf(&self, namespace: &str, function: &str, timestamp_ms: i64) -> Value {
        let extra: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let with_function: Vec<&str> = std::iter::once(FUNCTION_DIMENSION)
            .chain(extra.iter().copied())
            .collect();
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [with_function, extra],
                    "Metrics": definitions,
                }],
            }),
        );
        document.insert(FUNCTION_DIMENSION.into(), Value::from(function));
        for (name, value) in &self.dimensions {
            document.insert((*name).into(), Value::from(value.as_str()));
        }
        for (name, value, _) in &self.values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    /// Writes the document as one line to the configured sink. A write error is ignored: metrics never fail the work
    /// they describe.
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let settings = settings();
        let line = self.to_emf(
            &settings.namespace,
            &settings.function,
            chrono::Utc::now().timestamp_millis(),
        );
        let _ = match settings.sink {
            Sink::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Sink::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
            Sink::Off => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_set_is_an_emf_document_with_its_directive_dimensions_and_values() {
        let document = MetricSet::new()
            .dimension(REASON_DIMENSION, "bad_signature")
            .count(WEBHOOK_REQUESTS_REJECTED, 3)
            .seconds(WEBHOOK_APPLY_LAG, 1.5)
            .to_emf("crmsync/test", "crmsync-serve", 1_700_000_000_000);

        assert_eq!(
            document["_aws"],
            json!({
                "Timestamp": 1_700_000_000_000_i64,
                "CloudWatchMetrics": [{
                    "Namespace": "crmsync/test",
                    "Dimensions": [["Function", "Reason"], ["Reason"]],
                    "Metrics": [
                        { "Name": "WebhookRequestsRejected", "Unit": "Count" },
                        { "Name": "WebhookApplyLagSeconds", "Unit": "Seconds" },
                    ],
                }],
            })
        );
        // Every dimension and metric named in the directive is a top-level member, as EMF requires.
        assert_eq!(document["Function"], "crmsync-serve");
        assert_eq!(document["Reason"], "bad_signature");
        assert_eq!(document["WebhookRequestsRejected"], 3.0);
        assert_eq!(document["WebhookApplyLagSeconds"], 1.5);
        assert_eq!(document.as_object().unwrap().len(), 5);
    }

    #[test]
    fn a_set_without_dimensions_of_its_own_is_published_per_function_and_in_aggregate() {
        let document = MetricSet::new()
            .count(SYNC_ITEMS_SYNCED, 10)
            .count(CIRCUIT_OPEN, 0)
            .to_emf(DEFAULT_NAMESPACE, "stack-outbound-sync", 0);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Function"], []]));
        assert_eq!(directive["Namespace"], "crmsync");
        assert_eq!(document["SyncItemsSynced"], 10.0);
        assert_eq!(document["CircuitOpen"], 0.0);
        // One line of JSON: CloudWatch Logs reads a log event as one document.
        assert!(!document.to_string().contains('\n'));
    }
}
