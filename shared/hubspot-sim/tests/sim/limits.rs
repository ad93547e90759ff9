//! Rate limits over HTTP: the rolling burst window and the daily allowance, with HubSpot's 429
//! bodies and X-HubSpot-RateLimit-* headers. Windows are long so no test depends on speed.

use std::time::Duration;

use crmsync_hubspot_sim::SimConfig;
use serde_json::json;

use crate::harness::TestSim;

#[tokio::test]
async fn a_full_burst_window_answers_ten_secondly_rolling_with_rate_headers() {
    let sim = TestSim::with(SimConfig {
        rate_window: Duration::from_secs(60),
        requests_per_window: 3,
        ..SimConfig::default()
    })
    .await;
    for expected in ["2", "1", "0"] {
        let ok = sim.get("/crm/v3/objects/deals").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-hubspot-ratelimit-remaining"), Some(expected));
        assert_eq!(ok.header("x-hubspot-ratelimit-max"), Some("3"));
        assert_eq!(ok.header("x-hubspot-ratelimit-interval-milliseconds"), Some("60000"));
        assert_eq!(ok.header("x-hubspot-ratelimit-daily"), Some("250000"));
        assert!(ok.header("x-hubspot-ratelimit-daily-remaining").is_some());
    }
    let limited = sim
        .post("/crm/v3/objects/companies", json!({"properties": {"name": "x"}}))
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["status"], "error");
    assert_eq!(
        limited.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(limited.body["correlationId"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(limited.header("x-hubspot-ratelimit-remaining"), Some("0"));
    assert_eq!(sim.sim.request_count("POST /crm/v3/objects/{object_type}", "429"), 1);
    // The rejected write was not applied.
    let state = sim.admin_get("/__sim/state?type=companies").await;
    assert!(state.body["objects"]["companies"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn error_answers_also_carry_rate_headers() {
    let sim = TestSim::start().await;
    let missing = sim.get("/crm/v3/objects/deals/123456").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-hubspot-ratelimit-remaining"), Some("99"));
}

#[tokio::test]
async fn a_spent_daily_allowance_answers_policy_daily() {
    let sim = TestSim::with(SimConfig {
        daily_limit: 2,
        ..SimConfig::default()
    })
    .await;
    let first = sim.get("/crm/v3/objects/deals").await;
    assert_eq!(first.header("x-hubspot-ratelimit-daily-remaining"), Some("1"));
    let second = sim.get("/crm/v3/objects/deals").await;
    assert_eq!(second.header("x-hubspot-ratelimit-daily-remaining"), Some("0"));
    let limited = sim.get("/crm/v3/objects/deals").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["policyName"], "DAILY");
    assert_eq!(limited.body["message"], "You have reached your daily limit.");
    assert_eq!(limited.header("x-hubspot-ratelimit-daily-remaining"), Some("0"));
}

#[tokio::test]
async fn limits_can_be_changed_through_the_admin_api() {
    let sim = TestSim::start().await;
    let set = sim
        .admin_post("/__sim/limits", json!({"windowMs": 60000, "requestsPerWindow": 1}))
        .await;
    assert_eq!(set.body["requestsPerWindow"], 1);
    assert_eq!(sim.get("/crm/v3/objects/deals").await.status, 200);
    assert_eq!(sim.get("/crm/v3/objects/deals").await.status, 429);
    // Admin calls are never limited.
    assert_eq!(sim.admin_get("/__sim/state").await.status, 200);
}
