//! The admin API: state dump, request counts, reset, and validation of user acts.

use serde_json::json;

use crate::harness::TestSim;

#[tokio::test]
async fn the_state_dump_shows_records_with_associations_pipelines_and_custom_properties() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let (deal, company) = (sim.deal("D").await, sim.company("C").await);
    sim.post(
        "/crm/v4/associations/deals/companies/batch/associate/default",
        json!({"inputs": [{"from": {"id": deal}, "to": {"id": company}}]}),
    )
    .await;
    let state = sim.admin_get("/__sim/state").await.body;
    let stored = state["objects"]["deals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == deal)
        .unwrap();
    assert_eq!(stored["associations"]["companies"], json!([company]));
    assert_eq!(stored["properties"]["dealstage"], "appointmentscheduled");
    assert_eq!(stored["archived"], false);
    assert!(stored["createdAt"].is_string() && stored["updatedAt"].is_string());
    assert_eq!(state["pipelines"][0]["id"], "default");
    assert!(
        state["properties"]["deals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "crmsync_id")
    );
}

#[tokio::test]
async fn requests_are_counted_by_endpoint_template_and_status() {
    let sim = TestSim::start().await;
    sim.get("/crm/v3/objects/deals").await;
    sim.get("/crm/objects/2026-03/deals/99999").await;
    sim.http.get(sim.url("/crm/v3/objects/deals")).send().await.unwrap();
    let counts = sim.admin_get("/__sim/requests").await.body;
    assert_eq!(
        counts["byEndpoint"]["GET /crm/v3/objects/{object_type}"],
        json!({"200": 1, "401": 1})
    );
    assert_eq!(
        counts["byEndpoint"]["GET /crm/objects/{version}/{object_type}/{object_id}"],
        json!({"404": 1})
    );
    assert_eq!(counts["total"], 3);
    assert_eq!(sim.sim.total_requests(), 3);
}

#[tokio::test]
async fn reset_returns_to_a_fresh_portal() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    sim.company("C").await;
    assert_eq!(sim.admin_post("/__sim/reset", json!({})).await.status, 204);
    let state = sim.admin_get("/__sim/state").await.body;
    assert!(state["objects"]["companies"].as_array().unwrap().is_empty());
    assert!(state["properties"]["deals"].as_array().unwrap().is_empty());
    assert_eq!(sim.admin_get("/__sim/requests").await.body["total"], 0);
    // The group is gone too, so setup can run again.
    sim.setup_b2g().await;
}

#[tokio::test]
async fn user_acts_are_validated_like_api_writes() {
    let sim = TestSim::start().await;
    let deal = sim.deal("D").await;
    let bad_stage = sim
        .admin_post(
            "/__sim/act/move-deal-stage",
            json!({"dealId": deal, "stage": "nowhere"}),
        )
        .await;
    assert_eq!(bad_stage.status, 400);
    assert!(bad_stage.body["message"].as_str().unwrap().contains("INVALID_OPTION"));
    let missing = sim
        .admin_post("/__sim/act/delete-deal", json!({"dealId": "123456"}))
        .await;
    assert_eq!(missing.status, 404);
    let not_archived = sim.admin_post("/__sim/act/restore-deal", json!({"dealId": deal})).await;
    assert_eq!(not_archived.status, 400);
    let no_id = sim
        .admin_post("/__sim/act/edit-company", json!({"properties": {}}))
        .await;
    assert!(no_id.body["message"].as_str().unwrap().contains("companyId"));
}
