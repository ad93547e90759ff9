//! Shared helpers: client configurations for tests and wiremock responders that answer like HubSpot.

use std::time::Duration;

use crmsync_hubspot::{HubSpotClient, HubSpotConfig, RateLimitConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "pat-test-token-0000";

/// A config for wiremock tests: budgets large enough to never pace, fast retries.
pub fn fast_config(base_url: &str) -> HubSpotConfig {
    let mut config = HubSpotConfig::new(base_url, SecretString::from(TOKEN));
    config.request_timeout = Duration::from_secs(5);
    config.retry_min_delay = Duration::from_millis(1);
    config.retry_max_delay = Duration::from_millis(20);
    config.max_retries = 3;
    config.rate_limit = RateLimitConfig {
        search_per_second: 1_000,
        ..RateLimitConfig::new(10_000, Duration::from_secs(1))
    };
    config
}

pub fn client(base_url: &str) -> HubSpotClient {
    HubSpotClient::new(fast_config(base_url)).expect("valid config")
}

pub fn body_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON request body")
}

/// Answers a batch upsert with one result per input, echoing properties and `objectWriteTraceId`, in the
/// documented response shape (<https://developers.hubspot.com/docs/api-reference/latest/crm/objects/contacts/batch/upsert-contacts>).
pub struct EchoUpsert;

impl Respond for EchoUpsert {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = body_of(request);
        let results: Vec<Value> = body["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|input| {
                let trace = input["objectWriteTraceId"].as_str().expect("trace id");
                json!({
                    "id": format!("90{trace}"),
                    "properties": input["properties"],
                    "createdAt": "2026-03-30T10:00:00.000Z",
                    "updatedAt": "2026-03-30T10:00:00.000Z",
                    "archived": false,
                    "new": true,
                    "objectWriteTraceId": trace,
                })
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": "2026-03-30T10:00:00.000Z",
            "completedAt": "2026-03-30T10:00:00.100Z",
        }))
    }
}

/// Answers association batch creates with one `LabelsBetweenObjectPair` per input.
pub struct EchoAssociations;

impl Respond for EchoAssociations {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = body_of(request);
        let results: Vec<Value> = body["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(|input| {
                json!({
                    "fromObjectTypeId": "0-3",
                    "fromObjectId": input["from"]["id"],
                    "toObjectTypeId": "0-2",
                    "toObjectId": input["to"]["id"],
                    "labels": [],
                })
            })
            .collect();
        ResponseTemplate::new(201).set_body_json(json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": "2026-03-30T10:00:00.000Z",
            "completedAt": "2026-03-30T10:00:00.100Z",
        }))
    }
}

/// HubSpot's error body (<https://developers.hubspot.com/docs/api-reference/error-handling>).
pub fn error_body(category: &str, message: &str) -> Value {
    json!({
        "status": "error",
        "message": message,
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "category": category,
    })
}
