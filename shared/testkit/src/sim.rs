//! The HubSpot simulator from a test's side: a client for it, and typed reads of its state.

use std::collections::HashMap;
use std::time::Duration;

use crmsync_hubspot::{HubSpotClient, HubSpotConfig, RateLimitConfig};
use crmsync_hubspot_sim::RunningSim;
use serde_json::{Map, Value};

use crate::TestApp;

/// The configuration of a client for `sim`: `requests` per `window`, 5 s timeouts, retries after 10–100 ms.
pub fn client_config(sim: &RunningSim, requests: u32, window: Duration) -> HubSpotConfig {
    let mut config = HubSpotConfig::new(sim.base_url(), sim.access_token().to_owned().into());
    config.rate_limit = RateLimitConfig::new(requests, window);
    config.request_timeout = Duration::from_secs(5);
    config.retry_min_delay = Duration::from_millis(10);
    config.retry_max_delay = Duration::from_millis(100);
    config
}

/// A client for `sim` with [`client_config`].
pub fn client_for(sim: &RunningSim, requests: u32, window: Duration) -> HubSpotClient {
    HubSpotClient::new(client_config(sim, requests, window)).expect("client")
}

/// A client for a closed port: for parts that must exist but never call HubSpot in the test.
pub fn unused_hubspot() -> HubSpotClient {
    HubSpotClient::new(HubSpotConfig::new(
        "http://127.0.0.1:9",
        "unused-token".to_owned().into(),
    ))
    .expect("client")
}

/// One record in the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub id: String,
    pub properties: Map<String, Value>,
    /// The whole record as `/__sim/state` shows it (associations, archived, ...).
    pub raw: Value,
}

impl SimRecord {
    fn from_value(raw: Value) -> Self {
        Self {
            id: raw["id"].as_str().expect("id").to_owned(),
            properties: raw["properties"].as_object().cloned().unwrap_or_default(),
            raw,
        }
    }

    /// A property's value; `None` when it is unset or not a string.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

impl TestApp {
    /// The simulator's records of `object_type` (`deals`, `companies`, `contacts`, `notes`, ...) as JSON.
    pub async fn sim_objects(&self, object_type: &str) -> Vec<Value> {
        let url = format!("{}/__sim/state?type={object_type}", self.sim().base_url());
        let state: Value = reqwest::get(url).await.expect("state").json().await.expect("json");
        state["objects"][object_type].as_array().cloned().unwrap_or_default()
    }

    /// The simulator's record `id` of `object_type` as JSON, or `Value::Null` when it has none.
    pub async fn sim_object(&self, object_type: &str, id: &str) -> Value {
        self.sim_objects(object_type)
            .await
            .into_iter()
            .find(|o| o["id"].as_str() == Some(id))
            .unwrap_or(Value::Null)
    }

    /// The simulator's records of `object_type`.
    pub async fn sim_records(&self, object_type: &str) -> Vec<SimRecord> {
        self.sim_objects(object_type)
            .await
            .into_iter()
            .map(SimRecord::from_value)
            .collect()
    }

    /// The simulator's deal `hubspot_id`; panics when it has none.
    pub async fn sim_deal(&self, hubspot_id: &str) -> SimRecord {
        self.sim_record("deals", hubspot_id).await
    }

    /// The simulator's company `hubspot_id`; panics when it has none.
    pub async fn sim_company(&self, hubspot_id: &str) -> SimRecord {
        self.sim_record("companies", hubspot_id).await
    }

    /// The simulator's record `hubspot_id` of `object_type`; panics when it has none.
    pub async fn sim_record(&self, object_type: &str, hubspot_id: &str) -> SimRecord {
        let raw = self.sim_object(object_type, hubspot_id).await;
        assert!(!raw.is_null(), "the simulator has no {object_type} {hubspot_id}");
        SimRecord::from_value(raw)
    }

    /// The `crmsync_id` of each of the simulator's records of `object_type` (`None` where it has none), duplicates
    /// included.
    pub async fn sim_crmsync_ids(&self, object_type: &str) -> Vec<Option<String>> {
        self.sim_objects(object_type)
            .await
            .iter()
            .map(|o| o["properties"]["crmsync_id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The simulator's records of `object_type` by their `crmsync_id`; panics on a duplicate.
    pub async fn sim_by_local_id(&self, object_type: &str) -> HashMap<String, Value> {
        let mut by_id = HashMap::new();
        for object in self.sim_objects(object_type).await {
            let key = object["properties"]["crmsync_id"]
                .as_str()
                .expect("crmsync_id")
                .to_owned();
            assert!(
                by_id.insert(key.clone(), object).is_none(),
                "duplicate {object_type} for {key}"
            );
        }
        by_id
    }

    /// Acts in the simulator as a user or another integration would (`POST /__sim/act/<action>`); asserts a 2xx and
    /// returns the answer (`Value::Null` when it is not JSON).
    pub async fn sim_act(&self, action: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/__sim/act/{action}", self.sim().base_url()))
            .json(&body)
            .send()
            .await
            .expect("act");
        assert!(response.status().is_success(), "{action}: {}", response.status());
        response.json().await.unwrap_or(Value::Null)
    }

    /// How many requests the simulator answered per endpoint (`POST /crm/v3/objects/deals/batch/create`, ...),
    /// every outcome added up.
    pub async fn sim_requests_by_endpoint(&self) -> Vec<(String, u64)> {
        let url = format!("{}/__sim/requests", self.sim().base_url());
        let requests: Value = reqwest::get(url).await.expect("requests").json().await.expect("json");
        requests["byEndpoint"]
            .as_object()
            .expect("byEndpoint")
            .iter()
            .map(|(endpoint, outcomes)| {
                let total = outcomes
                    .as_object()
                    .expect("outcomes")
                    .values()
                    .map(|n| n.as_u64().unwrap_or(0))
                    .sum();
                (endpoint.clone(), total)
            })
            .collect()
    }
}
