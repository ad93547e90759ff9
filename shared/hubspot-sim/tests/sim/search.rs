//! Search: operators, one sort, paging, the 10,000-result cap and the secondly limit.

use std::time::Duration;

use crmsync_hubspot_sim::SimConfig;
use serde_json::{Value, json};

use crate::harness::TestSim;

async fn seeded() -> TestSim {
    // A long search window so the per-second limit can't trip these tests on a slow machine.
    let sim = TestSim::with(SimConfig {
        search_per_second: 1000,
        ..SimConfig::default()
    })
    .await;
    let companies = [
        json!({"name": "Acme Federal", "domain": "acme.gov", "numberofemployees": "250"}),
        json!({"name": "Beta Systems", "domain": "beta.com", "numberofemployees": "40"}),
        json!({"name": "Gamma Labs", "numberofemployees": "1200"}),
    ];
    let inputs: Vec<Value> = companies.into_iter().map(|p| json!({"properties": p})).collect();
    assert_eq!(
        sim.post("/crm/v3/objects/companies/batch/create", json!({"inputs": inputs}))
            .await
            .status,
        201
    );
    sim
}

async fn names(sim: &TestSim, body: Value) -> Vec<String> {
    let answer = sim.post("/crm/objects/2026-03/companies/search", body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn filter(property: &str, operator: &str, value: Value) -> Value {
    let mut f = json!({"propertyName": property, "operator": operator});
    match value {
        Value::Array(values) => f["values"] = Value::Array(values),
        Value::Null => {}
        value => f["value"] = value,
    }
    json!({"filterGroups": [{"filters": [f]}], "sorts": [{"propertyName": "name", "direction": "ASCENDING"}]})
}

#[tokio::test]
async fn filters_compare_numbers_as_numbers_and_text_case_insensitively() {
    let sim = seeded().await;
    assert_eq!(
        names(&sim, filter("numberofemployees", "GT", json!("100"))).await,
        ["Acme Federal", "Gamma Labs"]
    );
    assert_eq!(
        names(&sim, filter("numberofemployees", "LTE", json!(250))).await,
        ["Acme Federal", "Beta Systems"]
    );
    assert_eq!(
        names(&sim, filter("domain", "EQ", json!("ACME.gov"))).await,
        ["Acme Federal"]
    );
    assert_eq!(
        names(&sim, filter("domain", "NEQ", json!("acme.gov"))).await,
        ["Beta Systems", "Gamma Labs"]
    );
    assert_eq!(
        names(&sim, filter("domain", "IN", json!(["beta.com", "acme.gov"]))).await,
        ["Acme Federal", "Beta Systems"]
    );
    assert_eq!(
        names(&sim, filter("domain", "NOT_IN", json!(["beta.com"]))).await,
        ["Acme Federal", "Gamma Labs"]
    );
    assert_eq!(
        names(&sim, filter("domain", "HAS_PROPERTY", Value::Null)).await,
        ["Acme Federal", "Beta Systems"]
    );
    assert_eq!(
        names(&sim, filter("domain", "NOT_HAS_PROPERTY", Value::Null)).await,
        ["Gamma Labs"]
    );
    assert_eq!(
        names(&sim, filter("name", "CONTAINS_TOKEN", json!("federal"))).await,
        ["Acme Federal"]
    );
    assert_eq!(
        names(&sim, filter("domain", "CONTAINS_TOKEN", json!("*.com"))).await,
        ["Beta Systems"]
    );
}

#[tokio::test]
async fn groups_are_ored_filters_anded_and_one_sort_orders_the_results() {
    let sim = seeded().await;
    let body = json!({
        "filterGroups": [
            {"filters": [{"propertyName": "domain", "operator": "HAS_PROPERTY"}, {"propertyName": "numberofemployees", "operator": "LT", "value": "100"}]},
            {"filters": [{"propertyName": "name", "operator": "EQ", "value": "gamma labs"}]}
        ],
        "sorts": [{"propertyName": "numberofemployees", "direction": "DESCENDING"}],
        "properties": ["name"],
    });
    assert_eq!(names(&sim, body).await, ["Gamma Labs", "Beta Systems"]);
    let two_sorts = json!({"sorts": ["name", "-domain"]});
    assert_eq!(
        sim.post("/crm/v3/objects/companies/search", two_sorts).await.status,
        400
    );
}

#[tokio::test]
async fn search_pages_with_after_and_refuses_limits_over_200_and_paging_past_10000() {
    let sim = seeded().await;
    let first = sim
        .post(
            "/crm/v3/objects/companies/search",
            json!({"limit": 2, "sorts": ["name"]}),
        )
        .await;
    assert_eq!(first.body["total"], 3);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    let after = first.body["paging"]["next"]["after"].as_str().unwrap().to_string();
    let second = sim
        .post(
            "/crm/v3/objects/companies/search",
            json!({"limit": 2, "after": after, "sorts": ["name"]}),
        )
        .await;
    assert_eq!(second.body["results"][0]["properties"]["name"], "Gamma Labs");
    assert!(second.body["paging"].is_null());
    assert_eq!(
        sim.post("/crm/v3/objects/companies/search", json!({"limit": 201}))
            .await
            .status,
        400
    );
    let past = sim
        .post(
            "/crm/v3/objects/companies/search",
            json!({"limit": 100, "after": "10000"}),
        )
        .await;
    assert_eq!(past.status, 400);
    assert!(past.body["message"].as_str().unwrap().contains("10000"));
}

#[tokio::test]
async fn search_finds_records_by_association_and_never_returns_archived_ones() {
    let sim = seeded().await;
    let company = sim.company("Parent").await;
    let deal = sim.deal("D1").await;
    let other = sim.deal("D2").await;
    let link = json!({"inputs": [{"from": {"id": deal}, "to": {"id": company}}]});
    assert_eq!(
        sim.post("/crm/v4/associations/deals/companies/batch/associate/default", link)
            .await
            .status,
        200
    );
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "associations.company", "operator": "EQ", "value": company}]}]});
    let found = sim.post("/crm/v3/objects/deals/search", body.clone()).await;
    assert_eq!(found.body["total"], 1);
    assert_eq!(found.body["results"][0]["id"], deal);
    sim.delete(&format!("/crm/v3/objects/deals/{deal}")).await;
    let after_delete = sim.post("/crm/v3/objects/deals/search", json!({})).await;
    assert_eq!(after_delete.body["total"], 1);
    assert_eq!(after_delete.body["results"][0]["id"], other);
}

#[tokio::test]
async fn searches_beyond_the_per_second_limit_get_the_secondly_429_without_rate_headers() {
    // A 60 s search window makes the limit independent of how fast this machine is.
    let sim = TestSim::with(SimConfig {
        search_per_second: 2,
        search_window: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    for _ in 0..2 {
        let ok = sim.post("/crm/v3/objects/deals/search", json!({})).await;
        assert_eq!(ok.status, 200);
        assert!(
            ok.header("x-hubspot-ratelimit-remaining").is_none(),
            "search answers carry no rate headers"
        );
    }
    let limited = sim.post("/crm/v3/objects/deals/search", json!({})).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["message"], "You have reached your secondly limit.");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert!(limited.header("x-hubspot-ratelimit-remaining").is_none());
    // The search budget is separate from the burst window.
    assert_eq!(sim.get("/crm/v3/objects/deals").await.status, 200);
}

#[tokio::test]
async fn a_lower_result_cap_refuses_paging_past_it() {
    let sim = TestSim::with(SimConfig {
        search_result_cap: 4,
        ..SimConfig::default()
    })
    .await;
    for name in ["A", "B", "C", "D", "E", "F"] {
        sim.company(name).await;
    }
    let last_page = sim
        .post("/crm/v3/objects/companies/search", json!({"limit": 2, "after": "2"}))
        .await;
    assert_eq!(last_page.status, 200);
    assert_eq!(last_page.body["total"], 6);
    assert_eq!(last_page.body["paging"]["next"]["after"], "4");
    let past = sim
        .post("/crm/v3/objects/companies/search", json!({"limit": 2, "after": "4"}))
        .await;
    assert_eq!(past.status, 400, "{:?}", past.body);
}
