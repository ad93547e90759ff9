//! Counts of API requests by endpoint (method + path template) and outcome, for the admin API
//! and for tests that check how many calls a client made.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `"POST /crm/v3/objects/{object_type}/batch/upsert"` → outcome (`"200"`, `"429"`, `"dropped"`) → count.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    total: u64,
}

impl RequestLog {
    pub fn record(&mut self, endpoint: &str, outcome: &str) {
        *self
            .counts
            .entry(endpoint.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
        self.total += 1;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many requests to `endpoint` ended with `outcome`.
    pub fn count(&self, endpoint: &str, outcome: &str) -> u64 {
        self.counts
            .get(endpoint)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// How many requests went to each endpoint, whatever their outcome.
    pub fn by_endpoint(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(endpoint, outcomes)| (endpoint.clone(), outcomes.values().sum()))
            .collect()
    }

    /// How many requests, to any endpoint, ended with `outcome`.
    pub fn count_outcome(&self, outcome: &str) -> u64 {
        self.counts.values().filter_map(|o| o.get(outcome)).sum()
    }

    pub fn to_json(&self) -> Value {
        json!({"total": self.total, "byEndpoint": self.counts})
    }
}
