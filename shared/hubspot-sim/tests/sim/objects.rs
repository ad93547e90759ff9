//! Objects API: shapes, validation, unique values, batch semantics (207 and whole-batch errors),
//! merges and both path families.

use serde_json::json;

use crate::harness::TestSim;

fn deal_input(key: &str, trace: Option<&str>) -> serde_json::Value {
    let mut input = json!({
        "idProperty": "crmsync_id",
        "id": key,
        "properties": {"dealname": format!("Deal {key}"), "pipeline": "default", "dealstage": "qualifiedtobuy"},
    });
    if let Some(trace) = trace {
        input["objectWriteTraceId"] = json!(trace);
    }
    input
}

#[tokio::test]
async fn a_created_record_has_a_numeric_string_id_timestamps_and_string_values() {
    let sim = TestSim::start().await;
    let created = sim
        .post(
            "/crm/objects/2026-03/companies",
            json!({"properties": {"name": "Acme", "numberofemployees": 250}}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().expect("string id");
    assert!(id.parse::<u64>().is_ok(), "{id}");
    assert_eq!(created.body["properties"]["numberofemployees"], "250");
    assert_eq!(created.body["properties"]["hs_object_id"], id);
    assert_eq!(created.body["archived"], false);
    assert!(created.body["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let read = sim
        .get(&format!("/crm/v3/objects/companies/{id}?properties=name,domain"))
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["properties"]["name"], "Acme");
    assert_eq!(read.body["properties"]["domain"], serde_json::Value::Null);
    assert_eq!(read.body["updatedAt"], created.body["updatedAt"]);
}

#[tokio::test]
async fn a_request_without_the_bearer_token_gets_hubspots_401() {
    let sim = TestSim::start().await;
    let response = sim.http.get(sim.url("/crm/v3/objects/deals")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(body["status"], "error");
    let wrong = sim
        .http
        .get(sim.url("/crm/v3/objects/deals"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn an_unknown_api_version_is_not_found() {
    let sim = TestSim::start().await;
    assert_eq!(sim.get("/crm/objects/v9/deals").await.status, 404);
    assert_eq!(sim.get("/crm/objects/2026-03/deals").await.status, 200);
}

#[tokio::test]
async fn batch_upsert_creates_then_updates_by_the_unique_property() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let first = sim
        .post(
            "/crm/objects/2026-03/deals/batch/upsert",
            json!({"inputs": [deal_input("k1", None)]}),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["status"], "COMPLETE");
    let result = &first.body["results"][0];
    assert_eq!(result["new"], true);
    assert_eq!(result["properties"]["crmsync_id"], "k1");
    let id = result["id"].as_str().unwrap().to_string();

    let mut again = deal_input("k1", None);
    again["properties"]["dealname"] = json!("Renamed");
    let second = sim
        .post("/crm/v3/objects/deals/batch/upsert", json!({"inputs": [again]}))
        .await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["results"][0]["new"], false);
    assert_eq!(second.body["results"][0]["id"], id);
    assert_eq!(
        sim.stored("deals", &id).await.unwrap()["properties"]["dealname"],
        "Renamed"
    );
    let state = sim.admin_get("/__sim/state?type=deals").await;
    assert_eq!(state.body["objects"]["deals"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn two_upsert_inputs_with_the_same_key_reject_the_whole_batch() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let answer = sim
        .post(
            "/crm/v3/objects/deals/batch/upsert",
            json!({"inputs": [deal_input("k1", None), deal_input("k1", None)]}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["category"], "VALIDATION_ERROR");
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("Duplicate IDs found in batch input: [k1]")
    );
    assert!(
        sim.admin_get("/__sim/state?type=deals").await.body["objects"]["deals"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn upserting_by_a_property_that_is_not_unique_is_refused() {
    let sim = TestSim::start().await;
    let input =
        json!({"idProperty": "dealname", "id": "x", "properties": {"pipeline": "default", "dealstage": "closedwon"}});
    let answer = sim
        .post("/crm/v3/objects/deals/batch/upsert", json!({"inputs": [input]}))
        .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to perform update/upsert by non-unique 0-3 property dealname"),
        "{:?}",
        answer.body
    );
}

#[tokio::test]
async fn a_second_record_with_a_taken_unique_value_is_refused_naming_the_holder() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let create = |key: &str| json!({"properties": {"name": "Acme", "crmsync_id": key}});
    let first = sim.post("/crm/v3/objects/companies", create("c-1")).await;
    assert_eq!(first.status, 201);
    let holder = first.body["id"].as_str().unwrap();
    let second = sim.post("/crm/v3/objects/companies", create("c-1")).await;
    assert_eq!(second.status, 400, "{:?}", second.body);
    let message = second.body["message"].as_str().unwrap();
    assert!(message.starts_with("Property values were not valid: ["), "{message}");
    assert!(message.contains(&format!("Existing ID: {holder}")), "{message}");
    // Emails dedupe contacts with HubSpot's documented 409.
    let contact = sim
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "jo@acme.gov"}}),
        )
        .await;
    let dup = sim
        .post(
            "/crm/v3/objects/contacts",
            json!({"properties": {"email": "JO@acme.gov"}}),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["category"], "CONFLICT");
    assert_eq!(
        dup.body["message"],
        format!(
            "Contact already exists. Existing ID: {}",
            contact.body["id"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn a_batch_with_trace_ids_applies_the_good_inputs_and_answers_207_for_the_bad() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let mut bad = deal_input("k2", Some("trace-2"));
    bad["properties"]["closedate"] = json!("2026-03-31T15:30:00.250Z");
    let inputs = json!({"inputs": [deal_input("k1", Some("trace-1")), bad, deal_input("k3", Some("trace-3"))]});
    let answer = sim.post("/crm/v3/objects/deals/batch/upsert", inputs).await;
    assert_eq!(answer.status, 207, "{:?}", answer.body);
    assert_eq!(answer.body["numErrors"], 1);
    assert_eq!(answer.body["results"].as_array().unwrap().len(), 2);
    let error = &answer.body["errors"][0];
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["trace-2"]));
    assert_eq!(error["category"], "VALIDATION_ERROR");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("is at 15:30:00.250 UTC, not midnight!") && message.contains("INVALID_DATE"),
        "{message}"
    );
    let keys: Vec<&str> = answer.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["crmsync_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["k1", "k3"]);
}

#[tokio::test]
async fn batch_results_echo_their_inputs_trace_ids_and_each_error_has_its_own_correlation_id() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let note = |trace: &str, timestamp: Option<&str>| {
        let mut input = json!({"properties": {"hs_note_body": trace}, "objectWriteTraceId": trace});
        if let Some(at) = timestamp {
            input["properties"]["hs_timestamp"] = json!(at);
        }
        input
    };
    let created = sim
        .post(
            "/crm/objects/2026-03/notes/batch/create",
            json!({"inputs": [
                note("n-0", Some("2026-03-30T10:00:00.000Z")),
                note("n-1", None),
                note("n-2", Some("2026-03-30T11:00:00.000Z")),
                note("n-3", None),
            ]}),
        )
        .await;
    assert_eq!(created.status, 207, "{:?}", created.body);
    let traces: Vec<(&str, &str)> = created.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["objectWriteTraceId"].as_str().unwrap(),
                r["properties"]["hs_note_body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(traces, [("n-0", "n-0"), ("n-2", "n-2")]);
    let errors = created.body["errors"].as_array().unwrap();
    let correlation: Vec<&str> = errors.iter().map(|e| e["correlationId"].as_str().unwrap()).collect();
    assert_eq!(correlation.len(), 2);
    assert!(correlation.iter().all(|c| c.len() == 36), "{correlation:?}");
    assert_ne!(correlation[0], correlation[1]);

    let upserted = sim
        .post(
            "/crm/objects/2026-03/deals/batch/upsert",
            json!({"inputs": [deal_input("k1", Some("u-1"))]}),
        )
        .await;
    assert_eq!(upserted.status, 200, "{:?}", upserted.body);
    assert_eq!(upserted.body["results"][0]["objectWriteTraceId"], "u-1");
    let id = upserted.body["results"][0]["id"].clone();
    let updated = sim
        .post(
            "/crm/objects/2026-03/deals/batch/update",
            json!({"inputs": [{"id": id, "properties": {"amount": "5"}, "objectWriteTraceId": "p-1"}]}),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["results"][0]["objectWriteTraceId"], "p-1");
    // Without a trace id in the input, the result has none either.
    let untraced = sim
        .post(
            "/crm/objects/2026-03/companies/batch/create",
            json!({"inputs": [{"properties": {"name": "Plain"}}]}),
        )
        .await;
    assert_eq!(untraced.status, 201, "{:?}", untraced.body);
    assert!(untraced.body["results"][0].get("objectWriteTraceId").is_none());
}

#[tokio::test]
async fn a_batch_without_trace_ids_fails_whole_on_one_bad_input_and_applies_nothing() {
    let sim = TestSim::start().await;
    let good = json!({"properties": {"name": "Good"}});
    let bad = json!({"properties": {"name": "Bad", "favourite_colour": "red"}});
    let answer = sim
        .post("/crm/v3/objects/companies/batch/create", json!({"inputs": [good, bad]}))
        .await;
    assert_eq!(answer.status, 400);
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("PROPERTY_DOESNT_EXIST")
            && message.contains(r#"Property \"favourite_colour\" does not exist"#),
        "{message}"
    );
    assert!(
        sim.admin_get("/__sim/state?type=companies").await.body["objects"]["companies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn batch_create_of_more_than_100_inputs_is_refused() {
    let sim = TestSim::start().await;
    let inputs: Vec<_> = (0..101)
        .map(|i| json!({"properties": {"name": format!("C{i}")}}))
        .collect();
    let answer = sim
        .post("/crm/v3/objects/companies/batch/create", json!({"inputs": inputs}))
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["message"].as_str().unwrap().contains("at most 100"));
}

#[tokio::test]
async fn deals_need_their_required_properties_a_stage_of_their_pipeline_and_valid_numbers() {
    let sim = TestSim::start().await;
    let missing = sim
        .post("/crm/v3/objects/deals", json!({"properties": {"dealname": "D"}}))
        .await;
    assert_eq!(missing.status, 400);
    let message = missing.body["message"].as_str().unwrap();
    assert!(
        message.contains("dealstage") && message.contains("pipeline"),
        "{message}"
    );
    let wrong_stage = sim
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "pipeline": "default", "dealstage": "nope"}}),
        )
        .await;
    assert!(wrong_stage.body["message"].as_str().unwrap().contains("INVALID_OPTION"));
    let bad_amount = sim
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "pipeline": "default", "dealstage": "closedwon", "amount": "lots"}}),
        )
        .await;
    assert_eq!(bad_amount.status, 400);
    assert!(bad_amount.body["message"].as_str().unwrap().contains("INVALID_FLOAT"));
    let good = sim
        .post(
            "/crm/v3/objects/deals",
            json!({"properties": {"dealname": "D", "pipeline": "default", "dealstage": "closedwon", "amount": "1200.50", "closedate": "2026-03-31"}}),
        )
        .await;
    assert_eq!(good.status, 201, "{:?}", good.body);
    assert_eq!(good.body["properties"]["closedate"], "2026-03-31");
}

#[tokio::test]
async fn batch_read_finds_records_by_id_or_unique_property_and_lists_the_missing() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let upserted = sim
        .post(
            "/crm/v3/objects/deals/batch/upsert",
            json!({"inputs": [deal_input("k1", None)]}),
        )
        .await;
    let id = upserted.body["results"][0]["id"].as_str().unwrap().to_string();
    let by_id = sim
        .post(
            "/crm/v3/objects/deals/batch/read",
            json!({"properties": ["dealname", "crmsync_id"], "inputs": [{"id": id}, {"id": "999999"}]}),
        )
        .await;
    assert_eq!(by_id.status, 207);
    assert_eq!(by_id.body["results"][0]["properties"]["crmsync_id"], "k1");
    assert_eq!(by_id.body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(by_id.body["errors"][0]["context"]["ids"], json!(["999999"]));
    let by_key = sim
        .post(
            "/crm/objects/2026-03/deals/batch/read",
            json!({"idProperty": "crmsync_id", "properties": [], "inputs": [{"id": "k1"}]}),
        )
        .await;
    assert_eq!(by_key.status, 200);
    assert_eq!(by_key.body["results"][0]["id"], id);
}

#[tokio::test]
async fn archived_records_leave_reads_and_come_back_with_archived_true() {
    let sim = TestSim::start().await;
    let id = sim.company("Gone").await;
    assert_eq!(sim.delete(&format!("/crm/v3/objects/companies/{id}")).await.status, 204);
    assert_eq!(sim.get(&format!("/crm/v3/objects/companies/{id}")).await.status, 404);
    let archived = sim.get(&format!("/crm/v3/objects/companies/{id}?archived=true")).await;
    assert_eq!(archived.status, 200);
    assert_eq!(archived.body["archived"], true);
    assert!(archived.body["archivedAt"].is_string());
    let listed = sim.get("/crm/v3/objects/companies?archived=true").await;
    assert_eq!(listed.body["results"][0]["id"], id);
}

#[tokio::test]
async fn updates_follow_the_id_property_and_clear_values_with_an_empty_string() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    let created = sim
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "Acme", "domain": "acme.gov", "crmsync_id": "c-9"}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap();
    let patched = sim
        .patch(
            "/crm/v3/objects/companies/c-9?idProperty=crmsync_id",
            json!({"properties": {"domain": ""}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["id"], id);
    assert_eq!(patched.body["properties"]["domain"], serde_json::Value::Null);
    let read_only = sim
        .patch(
            &format!("/crm/v3/objects/companies/{id}"),
            json!({"properties": {"hs_object_id": "1"}}),
        )
        .await;
    assert!(read_only.body["message"].as_str().unwrap().contains("READ_ONLY_VALUE"));
}

#[tokio::test]
async fn lists_page_through_records_with_after() {
    let sim = TestSim::start().await;
    let inputs: Vec<_> = (0..25)
        .map(|i| json!({"properties": {"name": format!("C{i}")}}))
        .collect();
    assert_eq!(
        sim.post("/crm/v3/objects/companies/batch/create", json!({"inputs": inputs}))
            .await
            .status,
        201
    );
    let mut seen = 0;
    let mut path = "/crm/v3/objects/companies?limit=10".to_string();
    loop {
        let page = sim.get(&path).await;
        seen += page.body["results"].as_array().unwrap().len();
        match page.body["paging"]["next"]["after"].as_str() {
            Some(after) => path = format!("/crm/v3/objects/companies?limit=10&after={after}"),
            None => break,
        }
    }
    assert_eq!(seen, 25);
}

#[tokio::test]
async fn a_merged_record_resolves_to_the_survivor_on_single_reads_only() {
    let sim = TestSim::start().await;
    let primary = sim.company("Acme").await;
    let merged = sim
        .post(
            "/crm/v3/objects/companies",
            json!({"properties": {"name": "ACME", "domain": "acme.gov"}}),
        )
        .await;
    let merged = merged.body["id"].as_str().unwrap().to_string();
    let answer = sim
        .post(
            "/crm/v3/objects/companies/merge",
            json!({"primaryObjectId": primary, "objectIdToMerge": merged}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["properties"]["domain"], "acme.gov");
    let read = sim
        .get(&format!(
            "/crm/v3/objects/companies/{merged}?properties=hs_merged_object_ids"
        ))
        .await;
    assert_eq!(read.body["id"], primary);
    assert_eq!(read.body["properties"]["hs_merged_object_ids"], merged);
    let batch = sim
        .post(
            "/crm/v3/objects/companies/batch/read",
            json!({"properties": [], "inputs": [{"id": merged}]}),
        )
        .await;
    assert_eq!(batch.status, 207);
    assert_eq!(batch.body["errors"][0]["context"]["ids"], json!([merged]));
}

#[tokio::test]
async fn activities_need_a_timestamp_and_associate_inline_at_creation() {
    let sim = TestSim::start().await;
    let deal = sim.deal("D").await;
    let missing = sim
        .post("/crm/v3/objects/notes", json!({"properties": {"hs_note_body": "hi"}}))
        .await;
    assert!(missing.body["message"].as_str().unwrap().contains("hs_timestamp"));
    let note = sim
        .post(
            "/crm/v3/objects/notes",
            json!({"properties": {"hs_note_body": "hi", "hs_timestamp": "2026-03-30T10:00:00Z"},
                   "associations": [{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}]}),
        )
        .await;
    assert_eq!(note.status, 201, "{:?}", note.body);
    let note_id = note.body["id"].as_str().unwrap();
    let stored = sim.stored("notes", note_id).await.unwrap();
    assert_eq!(stored["associations"]["deals"], json!([deal]));
    assert_eq!(stored["properties"]["hs_timestamp"], "2026-03-30T10:00:00.000Z");
}

#[tokio::test]
async fn batch_read_with_history_lists_each_propertys_versions_newest_first_with_their_source() {
    let sim = TestSim::start().await;
    let id = sim.company("Acme").await;
    let edited = sim
        .admin_post(
            "/__sim/act/edit",
            json!({"objectType": "companies", "id": id, "properties": {"name": "Acme Federal"}}),
        )
        .await;
    assert_eq!(edited.status, 200, "{:?}", edited.body);
    let read = sim
        .post(
            "/crm/objects/2026-03/companies/batch/read",
            json!({"inputs": [{"id": id}], "properties": ["name"], "propertiesWithHistory": ["name", "city"]}),
        )
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    let record = &read.body["results"][0];
    let versions = record["propertiesWithHistory"]["name"]
        .as_array()
        .expect("name's history");
    let values: Vec<&str> = versions.iter().map(|v| v["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["Acme Federal", "Acme"]);
    assert_eq!(versions[0]["sourceType"], "CRM_UI");
    assert_eq!(versions[1]["sourceType"], "INTEGRATION");
    assert_eq!(versions[1]["sourceId"], "54321", "API writes carry the app id");
    assert_eq!(
        versions[0]["timestamp"], record["properties"]["hs_lastmodifieddate"],
        "the newest version is the record's last change"
    );
    assert_eq!(record["propertiesWithHistory"]["city"], json!([]), "never set");
}

#[tokio::test]
async fn a_merge_sets_hs_merged_object_ids_and_a_restore_bumps_the_modified_date() {
    let sim = TestSim::start().await;
    let (primary, merged) = (sim.company("Primary").await, sim.company("Merged").await);
    let answer = sim
        .admin_post(
            "/__sim/act/merge-companies",
            json!({"primaryId": primary, "mergedId": merged}),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let survivor = sim.stored("companies", &primary).await.unwrap();
    assert_eq!(survivor["properties"]["hs_merged_object_ids"], merged.as_str());

    let deal = sim.deal("Gone and back").await;
    sim.admin_post("/__sim/act/delete-deal", json!({"dealId": deal})).await;
    let before = sim.stored("deals", &deal).await.unwrap()["properties"]["hs_lastmodifieddate"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    sim.admin_post("/__sim/act/restore-deal", json!({"dealId": deal})).await;
    let after = sim.stored("deals", &deal).await.unwrap()["properties"]["hs_lastmodifieddate"].clone();
    assert!(after.as_str() > before.as_str(), "{before} → {after}");
}
