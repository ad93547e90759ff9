//! Associations (v4 and dated paths), properties and pipelines.

use serde_json::json;

use crate::harness::TestSim;

#[tokio::test]
async fn a_primary_company_association_also_creates_the_unlabeled_one_in_both_directions() {
    let sim = TestSim::start().await;
    let (deal, company) = (sim.deal("D").await, sim.company("C").await);
    let created = sim
        .post(
            "/crm/associations/2026-03/deals/companies/batch/create",
            json!({"inputs": [{"from": {"id": deal}, "to": {"id": company},
                               "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["results"][0]["labels"], json!(["Primary"]));
    assert_eq!(created.body["results"][0]["toObjectTypeId"], "0-2");
    let read = sim
        .post(
            "/crm/v4/associations/deals/companies/batch/read",
            json!({"inputs": [{"id": deal}]}),
        )
        .await;
    assert_eq!(read.status, 200);
    let to = &read.body["results"][0]["to"][0];
    assert_eq!(
        to["toObjectId"],
        json!(company.parse::<u64>().unwrap()),
        "v4 answers numeric ids"
    );
    let types: Vec<u64> = to["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_u64().unwrap())
        .collect();
    assert_eq!(types, [5, 341]);
    let reverse = sim
        .post(
            "/crm/associations/2026-03/companies/deals/batch/read",
            json!({"inputs": [{"id": company}]}),
        )
        .await;
    assert_eq!(
        reverse.body["results"][0]["to"][0]["toObjectId"],
        json!(deal),
        "dated versions answer string ids"
    );
    let reverse_types: Vec<u64> = reverse.body["results"][0]["to"][0]["associationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["typeId"].as_u64().unwrap())
        .collect();
    assert_eq!(reverse_types, [6, 342]);
}

#[tokio::test]
async fn default_association_uses_hubspots_unlabeled_type_and_archive_removes_the_pair() {
    let sim = TestSim::start().await;
    let contact = sim
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "jo@acme.gov"}}),
        )
        .await;
    let contact = contact.body["id"].as_str().unwrap().to_string();
    let company = sim.company("Acme").await;
    let linked = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/associate/default",
            json!({"inputs": [{"from": {"id": contact}, "to": {"id": company}}]}),
        )
        .await;
    assert_eq!(linked.status, 200);
    let specs: Vec<u64> = linked.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["associationSpec"]["associationTypeId"].as_u64().unwrap())
        .collect();
    assert_eq!(specs, [279, 280]);
    let archived = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/archive",
            json!({"inputs": [{"from": {"id": contact}, "to": [{"id": company}]}]}),
        )
        .await;
    assert_eq!(archived.status, 204);
    let read = sim
        .post(
            "/crm/v4/associations/companies/contacts/batch/read",
            json!({"inputs": [{"id": company}]}),
        )
        .await;
    assert_eq!(read.body["results"][0]["to"], json!([]));
    let dated = sim
        .post(
            "/crm/associations/2026-03/contacts/companies/batch/archive",
            json!({"inputs": [{"from": {"id": contact}, "to": [{"id": company}]}]}),
        )
        .await;
    assert_eq!(dated.status, 200, "the dated spec answers a batch body");
}

#[tokio::test]
async fn associating_a_missing_record_or_an_undefined_type_is_a_per_input_error() {
    let sim = TestSim::start().await;
    let (deal, company) = (sim.deal("D").await, sim.company("C").await);
    let answer = sim
        .post(
            "/crm/v4/associations/deals/companies/batch/create",
            json!({"inputs": [
                {"from": {"id": deal}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}]},
                {"from": {"id": deal}, "to": {"id": "424242"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}]},
                {"from": {"id": deal}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]}
            ]}),
        )
        .await;
    assert_eq!(answer.status, 207);
    assert_eq!(answer.body["numErrors"], 2);
    assert_eq!(answer.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert!(answer.body["errors"][1]["message"].as_str().unwrap().contains("279"));
}

#[tokio::test]
async fn property_groups_and_properties_are_created_once_and_listed() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let again = sim
        .post(
            "/crm/v3/properties/deals",
            json!({"name": "crmsync_id", "label": "x", "type": "string", "fieldType": "text", "groupName": "b2g", "hasUniqueValue": true}),
        )
        .await;
    assert_eq!(again.status, 409);
    let group_again = sim
        .post(
            "/crm/v3/properties/deals/groups",
            json!({"name": "b2g", "label": "B2G"}),
        )
        .await;
    assert_eq!(group_again.status, 409);
    let property = sim.get("/crm/properties/2026-03/deals/crmsync_id").await;
    assert_eq!(property.body["hasUniqueValue"], true);
    assert_eq!(property.body["groupName"], "b2g");
    let listed = sim.get("/crm/properties/2026-03/deals").await;
    assert!(
        listed.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "b2g_match_score")
    );
    let groups = sim.get("/crm/v3/properties/deals/groups").await;
    assert!(
        groups.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "b2g" && g["label"] == "B2G")
    );
    assert_eq!(sim.get("/crm/v3/properties/deals/groups/b2g").await.status, 200);
    let no_group = sim
        .post(
            "/crm/v3/properties/deals",
            json!({"name": "x", "label": "x", "type": "string", "fieldType": "text", "groupName": "nope"}),
        )
        .await;
    assert_eq!(no_group.status, 400);
    assert!(no_group.body["message"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn the_default_pipeline_exists_and_a_custom_one_gets_generated_stage_ids() {
    let sim = TestSim::start().await;
    let pipelines = sim.get("/crm/pipelines/2026-03/deals").await;
    let default = &pipelines.body["results"][0];
    assert_eq!(default["id"], "default");
    assert_eq!(default["stages"][0]["id"], "appointmentscheduled");
    assert_eq!(default["stages"][0]["metadata"]["probability"], "0.2");
    let stages = [
        ("New Match", 0.1, false),
        ("Closed Won", 1.0, true),
        ("Closed Lost", 0.0, true),
    ];
    let input = json!({"label": "B2G Opportunities", "displayOrder": 1, "stages": stages.iter().enumerate().map(|(i, (label, p, closed))| json!({
        "label": label, "displayOrder": i, "metadata": {"probability": p, "isClosed": closed}
    })).collect::<Vec<_>>()});
    let created = sim.post("/crm/v3/pipelines/deals", input.clone()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let pipeline_id = created.body["id"].as_str().unwrap().to_string();
    assert!(pipeline_id.parse::<u64>().is_ok());
    let won = &created.body["stages"][1];
    assert_eq!(won["metadata"], json!({"isClosed": "true", "probability": "1.0"}));
    assert_eq!(sim.post("/crm/v3/pipelines/deals", input).await.status, 409);
    let got = sim
        .get(&format!("/crm/pipelines/2026-03/deals/{pipeline_id}/stages"))
        .await;
    assert_eq!(got.body["results"].as_array().unwrap().len(), 3);
    let won_id = won["id"].as_str().unwrap();
    let deal = sim
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "pipeline": pipeline_id, "dealstage": won_id}}),
        )
        .await;
    assert_eq!(deal.status, 201, "{:?}", deal.body);
    let deal_id = deal.body["id"].as_str().unwrap();
    let read = sim
        .get(&format!(
            "/crm/v3/objects/deals/{deal_id}?properties=hs_is_closed_won,hs_deal_stage_probability"
        ))
        .await;
    assert_eq!(read.body["properties"]["hs_is_closed_won"], "true");
    // A default-pipeline stage is not a stage of the custom pipeline.
    let moved = sim
        .patch(
            &format!("/crm/v3/objects/deals/{deal_id}"),
            json!({"properties": {"dealstage": "closedwon"}}),
        )
        .await;
    assert_eq!(moved.status, 400);
}

#[tokio::test]
async fn stages_are_added_patched_and_deleted_and_pipelines_patched_through_the_pipelines_api() {
    let sim = TestSim::start().await;
    let base = "/crm/pipelines/2026-03/deals/default";
    let added = sim
        .post(
            &format!("{base}/stages"),
            json!({"label": "Verbal Yes", "displayOrder": 7, "metadata": {"probability": "0.9", "isClosed": "false"}}),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let stage_id = added.body["id"].as_str().unwrap().to_string();
    assert!(stage_id.parse::<u64>().is_ok(), "{stage_id}");
    assert_eq!(
        added.body["metadata"],
        json!({"isClosed": "false", "probability": "0.9"})
    );
    assert_eq!(
        sim.post(&format!("{base}/stages"), added.body.clone()).await.status,
        409,
        "labels are unique within a pipeline"
    );
    let no_probability = sim
        .post(&format!("{base}/stages"), json!({"label": "Maybe", "metadata": {}}))
        .await;
    assert_eq!(no_probability.status, 400);

    let patched = sim
        .patch(
            &format!("{base}/stages/{stage_id}"),
            json!({"metadata": {"probability": "0.7", "isClosed": "false"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["label"], "Verbal Yes");
    assert_eq!(patched.body["metadata"]["probability"], "0.7");
    let out_of_range = sim
        .patch(
            &format!("{base}/stages/{stage_id}"),
            json!({"metadata": {"probability": 2}}),
        )
        .await;
    assert_eq!(out_of_range.status, 400);
    assert_eq!(out_of_range.body["category"], "VALIDATION_ERROR");

    let renamed = sim.patch(base, json!({"label": "Sales", "displayOrder": 2})).await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(
        (renamed.body["label"].as_str(), renamed.body["displayOrder"].as_i64()),
        (Some("Sales"), Some(2))
    );

    // A stage holding a deal cannot go; an empty one can.
    let deal = sim.deal("In use").await;
    let in_use = sim.delete(&format!("{base}/stages/appointmentscheduled")).await;
    assert_eq!(in_use.status, 400, "{:?}", in_use.body);
    assert!(sim.stored("deals", &deal).await.is_some());
    assert_eq!(sim.delete(&format!("{base}/stages/{stage_id}")).await.status, 204);
    assert_eq!(sim.delete(&format!("{base}/stages/{stage_id}")).await.status, 404);
    let stages = sim.get(&format!("{base}/stages")).await;
    assert_eq!(stages.body["results"].as_array().unwrap().len(), 7);
}
