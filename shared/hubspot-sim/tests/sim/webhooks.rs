//! Webhook delivery to a real receiver on port 0: signatures verified with the client crate's
//! `Verifier`, HubSpot's event fields, CRM_UI acts, retries, batch size and ordering.

use std::collections::BTreeSet;

use crmsync_hubspot::signature::{SignatureVersion, SignedRequest, Verifier};
use crmsync_hubspot_sim::WebhookDelivery;
use serde_json::{Value, json};

use crate::harness::{Received, Receiver, TestSim, drain, webhook_config};

const SECRET: &str = "test-client-secret";

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).and_then(|v| v.to_str().ok())
}

fn verify(received: &Received, url: &str, accept_v1: bool, use_v3: bool) -> Result<SignatureVersion, String> {
    let request = SignedRequest {
        method: "POST",
        uri: url,
        body: &received.body,
        signature_v3: if use_v3 {
            header(received, "x-hubspot-signature-v3")
        } else {
            None
        },
        timestamp: header(received, "x-hubspot-request-timestamp"),
        signature_v1: header(received, "x-hubspot-signature"),
        signature_version: header(received, "x-hubspot-signature-version"),
    };
    Verifier::new([SECRET.to_string()], accept_v1)
        .verify(&request, chrono::Utc::now().timestamp_millis())
        .map_err(|e| e.to_string())
}

fn of_type<'a>(events: &'a [Value], subscription_type: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["subscriptionType"] == subscription_type)
        .collect()
}

#[tokio::test]
async fn api_writes_arrive_signed_with_v3_and_v1_and_carry_hubspots_fields() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, true)).await;
    let company = sim.company("Acme").await;
    drain(&sim).await;
    let received = receiver.received();
    assert!(!received.is_empty());
    for request in &received {
        assert_eq!(verify(request, &receiver.url, false, true), Ok(SignatureVersion::V3));
        assert_eq!(verify(request, &receiver.url, true, false), Ok(SignatureVersion::V1));
        assert_eq!(header(request, "content-type"), Some("application/json"));
    }
    let tampered = Received {
        body: axum::body::Bytes::from_static(b"[]"),
        ..received[0].clone()
    };
    assert!(verify(&tampered, &receiver.url, false, true).is_err());

    let events = receiver.accepted_events();
    let creation = of_type(&events, "company.creation");
    assert_eq!(creation.len(), 1);
    let event = creation[0];
    assert_eq!(event["objectId"], json!(company.parse::<u64>().unwrap()));
    assert_eq!(event["portalId"], 62515);
    assert_eq!(event["appId"], 54321);
    assert_eq!(event["changeSource"], "INTEGRATION");
    assert_eq!(event["sourceId"], "54321");
    assert_eq!(event["attemptNumber"], 0);
    assert!(event["eventId"].is_u64() && event["subscriptionId"].is_u64() && event["occurredAt"].is_i64());
    let change = of_type(&events, "company.propertyChange");
    assert_eq!(change.len(), 1);
    assert_eq!(
        (change[0]["propertyName"].as_str(), change[0]["propertyValue"].as_str()),
        (Some("name"), Some("Acme"))
    );
}

#[tokio::test]
async fn user_acts_arrive_with_the_crm_ui_source() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, false)).await;
    let deal = sim.deal("D").await;
    let (primary, merged) = (sim.company("Acme").await, sim.company("ACME Inc").await);
    drain(&sim).await;
    let before = receiver.accepted_events().len();

    let moved = sim
        .admin_post(
            "/__sim/act/move-deal-stage",
            json!({"dealId": deal, "stage": "closedwon"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["properties"]["hs_is_closed_won"], "true");
    let edited = sim
        .admin_post(
            "/__sim/act/edit-company",
            json!({"companyId": primary, "properties": {"city": "Reston"}}),
        )
        .await;
    assert_eq!(edited.status, 200);
    let contact = sim
        .admin_post(
            "/__sim/act/create-contact",
            json!({"properties": {"email": "jo@acme.gov"}, "companyId": primary}),
        )
        .await;
    assert_eq!(contact.status, 201, "{:?}", contact.body);
    let linked = sim
        .admin_post(
            "/__sim/act/associate",
            json!({"fromType": "deals", "fromId": deal, "toType": "companies", "toId": primary, "primary": true}),
        )
        .await;
    assert_eq!(linked.status, 204, "{:?}", linked.body);
    assert_eq!(
        sim.admin_post(
            "/__sim/act/merge-companies",
            json!({"primaryId": primary, "mergedId": merged})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        sim.admin_post("/__sim/act/delete-deal", json!({"dealId": deal}))
            .await
            .status,
        204
    );
    assert_eq!(
        sim.admin_post("/__sim/act/restore-deal", json!({"dealId": deal}))
            .await
            .status,
        200
    );
    drain(&sim).await;

    let events: Vec<Value> = receiver.accepted_events().into_iter().skip(before).collect();
    assert!(
        events
            .iter()
            .all(|e| e["changeSource"] == "CRM_UI" && e["sourceId"] == "userId:74322246"),
        "{events:#?}"
    );
    let stage = of_type(&events, "deal.propertyChange");
    assert!(
        stage
            .iter()
            .any(|e| e["propertyName"] == "dealstage" && e["propertyValue"] == "closedwon")
    );
    assert!(
        of_type(&events, "company.propertyChange")
            .iter()
            .any(|e| e["propertyName"] == "city")
    );
    assert_eq!(of_type(&events, "contact.creation").len(), 1);
    let association = of_type(&events, "deal.associationChange");
    assert!(association.iter().any(|e| e["associationType"] == "DEAL_TO_COMPANY"
        && e["fromObjectId"] == json!(deal.parse::<u64>().unwrap())
        && e["toObjectId"] == json!(primary.parse::<u64>().unwrap())
        && e["associationRemoved"] == false
        && e["isPrimaryAssociation"] == true));
    assert!(
        of_type(&events, "contact.associationChange")
            .iter()
            .any(|e| e["associationType"] == "CONTACT_TO_COMPANY")
    );
    let merge = of_type(&events, "company.merge");
    assert_eq!(merge.len(), 1);
    assert_eq!(merge[0]["primaryObjectId"], json!(primary.parse::<u64>().unwrap()));
    assert_eq!(merge[0]["mergedObjectIds"], json!([merged.parse::<u64>().unwrap()]));
    assert_eq!(merge[0]["newObjectId"], json!(primary.parse::<u64>().unwrap()));
    assert!(
        of_type(&events, "company.deletion")
            .iter()
            .any(|e| e["objectId"] == json!(merged.parse::<u64>().unwrap()))
    );
    assert_eq!(of_type(&events, "deal.deletion").len(), 1);
    assert_eq!(of_type(&events, "deal.restore").len(), 1);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_a_rising_attempt_number_and_fresh_signatures() {
    let receiver = Receiver::start(2).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, false)).await;
    sim.company("Acme").await;
    drain(&sim).await;
    let received = receiver.received();
    assert_eq!(received.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
    for (attempt, request) in received.iter().enumerate() {
        assert!(
            request.events().iter().all(|e| e["attemptNumber"] == attempt),
            "attempt {attempt}"
        );
        assert_eq!(verify(request, &receiver.url, false, true), Ok(SignatureVersion::V3));
    }
    let outbox = sim.admin_get("/__sim/webhooks").await.body;
    assert_eq!(
        (outbox["failedAttempts"].as_u64(), outbox["deliveredBatches"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(outbox["pending"], 0);
    assert_eq!(outbox["deliveries"][0]["attemptNumber"], 2);
}

#[tokio::test]
async fn a_batch_is_abandoned_after_its_last_attempt() {
    let receiver = Receiver::start(usize::MAX).await;
    let mut config = webhook_config(&receiver, SECRET, false);
    config.webhook_delivery.max_attempts = 3;
    let sim = TestSim::with(config).await;
    sim.company("Acme").await;
    drain(&sim).await;
    assert_eq!(receiver.received().len(), 3);
    let outbox = sim.admin_get("/__sim/webhooks?payloads=false").await.body;
    assert_eq!(outbox["abandonedEvents"], 2);
    assert_eq!(outbox["deliveredEvents"], 0);
}

#[tokio::test]
async fn deliveries_hold_at_most_100_events_and_every_event_arrives_once() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, false)).await;
    for chunk in 0..3 {
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {"name": format!("C{chunk}-{i}")}}))
            .collect();
        assert_eq!(
            sim.post("/crm/v3/objects/companies/batch/create", json!({"inputs": inputs}))
                .await
                .status,
            201
        );
    }
    drain(&sim).await;
    let received = receiver.received();
    assert!(
        received.iter().all(|r| r.events().len() <= 100),
        "{:?}",
        received.iter().map(|r| r.events().len()).collect::<Vec<_>>()
    );
    let events = receiver.accepted_events();
    assert_eq!(events.len(), 600, "300 creations and 300 name changes");
    let ids: BTreeSet<u64> = events.iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 600);
}

#[tokio::test]
async fn with_shuffling_on_events_do_not_arrive_in_the_order_they_happened() {
    let receiver = Receiver::start(0).await;
    let mut config = webhook_config(&receiver, SECRET, false);
    config.webhook_delivery = WebhookDelivery {
        shuffle: true,
        ..config.webhook_delivery
    };
    config.seed = 7;
    let sim = TestSim::with(config).await;
    let inputs: Vec<Value> = (0..50)
        .map(|i| json!({"properties": {"name": format!("C{i}")}}))
        .collect();
    sim.post("/crm/v3/objects/companies/batch/create", json!({"inputs": inputs}))
        .await;
    drain(&sim).await;
    let ids: Vec<u64> = receiver
        .accepted_events()
        .iter()
        .map(|e| e["eventId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 100);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_ne!(ids, sorted);
}

#[tokio::test]
async fn a_target_set_through_the_admin_api_receives_later_changes() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::start().await;
    sim.company("Before").await;
    let set = sim
        .admin_post(
            "/__sim/webhooks/target",
            json!({"url": receiver.url, "clientSecret": SECRET, "sendV1": false}),
        )
        .await;
    assert_eq!(set.status, 204);
    sim.company("After").await;
    drain(&sim).await;
    let values: Vec<Value> = receiver
        .accepted_events()
        .iter()
        .map(|e| e["propertyValue"].clone())
        .collect();
    assert!(
        values.contains(&json!("After")) && !values.contains(&json!("Before")),
        "{values:?}"
    );
}

#[tokio::test]
async fn while_dropping_webhooks_no_event_is_delivered_and_each_is_counted() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, false)).await;
    let dropped = sim.admin_post("/__sim/webhooks/drop", json!({"drop": true})).await;
    assert_eq!(dropped.status, 204);
    sim.company("Lost").await;
    drain(&sim).await;
    assert!(
        receiver.accepted_events().is_empty(),
        "nothing is delivered while dropping"
    );
    let outbox = sim.admin_get("/__sim/webhooks?payloads=false").await.body;
    assert_eq!(outbox["dropping"], true);
    assert_eq!(outbox["droppedEvents"], 2, "the creation and its name: {outbox}");

    assert_eq!(
        sim.admin_post("/__sim/webhooks/drop", json!({"drop": "yes"}))
            .await
            .status,
        400,
        "drop must be a boolean"
    );
    sim.admin_post("/__sim/webhooks/drop", json!({"drop": false})).await;
    sim.company("Found").await;
    drain(&sim).await;
    let values: Vec<Value> = receiver
        .accepted_events()
        .iter()
        .map(|e| e["propertyValue"].clone())
        .collect();
    assert!(
        values.contains(&json!("Found")) && !values.contains(&json!("Lost")),
        "{values:?}"
    );
}

#[tokio::test]
async fn an_engagement_logged_as_a_user_arrives_as_generic_object_events_with_its_type_id() {
    let receiver = Receiver::start(0).await;
    let sim = TestSim::with(webhook_config(&receiver, SECRET, false)).await;
    let deal = sim.deal("D").await;
    drain(&sim).await;
    let before = receiver.accepted_events().len();
    let logged = sim
        .admin_post(
            "/__sim/act/log-engagement",
            json!({
                "objectType": "calls",
                "properties": {"hs_call_title": "Intro", "hubspot_owner_id": "41001"},
                "associations": [{"objectType": "deals", "id": deal}],
            }),
        )
        .await;
    assert_eq!(logged.status, 201, "{:?}", logged.body);
    assert!(
        logged.body["properties"]["hs_timestamp"].is_string(),
        "hs_timestamp defaults to now"
    );
    let call: u64 = logged.body["id"].as_str().unwrap().parse().unwrap();
    let refused = sim
        .admin_post(
            "/__sim/act/log-engagement",
            json!({"objectType": "deals", "properties": {}}),
        )
        .await;
    assert_eq!(refused.status, 400, "only engagement types");
    drain(&sim).await;
    let events: Vec<Value> = receiver.accepted_events().into_iter().skip(before).collect();
    let created = of_type(&events, "object.creation");
    assert_eq!(created.len(), 1, "{events:#?}");
    assert_eq!(created[0]["objectTypeId"], "0-48");
    assert_eq!(created[0]["objectId"], json!(call));
    assert_eq!(created[0]["changeSource"], "CRM_UI");
    let linked = of_type(&events, "object.associationChange");
    assert!(!linked.is_empty(), "{events:#?}");
    for event in &linked {
        assert_eq!(event["objectTypeId"], "0-48", "reported from the engagement's side");
        assert_eq!(event["fromObjectId"], json!(call));
        assert_eq!(event["toObjectId"], json!(deal.parse::<u64>().unwrap()));
        assert_eq!(
            (event["fromObjectTypeId"].as_str(), event["toObjectTypeId"].as_str()),
            (Some("0-48"), Some("0-3"))
        );
        assert_eq!(event["associationType"], "CALL_TO_DEAL");
    }
    assert!(
        of_type(&events, "call.creation").is_empty(),
        "no legacy subscription for engagements"
    );

    // While deliveries are dropped, an engagement's events are lost like any other.
    assert_eq!(
        sim.admin_post("/__sim/webhooks/drop", json!({"drop": true}))
            .await
            .status,
        204
    );
    let before = receiver.accepted_events().len();
    sim.admin_post(
        "/__sim/act/log-engagement",
        json!({"objectType": "notes", "properties": {"hs_note_body": "x"}, "associations": [{"objectType": "deals", "id": deal}]}),
    )
    .await;
    drain(&sim).await;
    assert_eq!(receiver.accepted_events().len(), before);
}

#[tokio::test]
async fn owners_are_listed_page_by_page_live_and_archived_apart_and_can_be_replaced() {
    let sim = TestSim::start().await;
    let first = sim.get("/crm/v3/owners?limit=1").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["results"][0]["id"], "41001");
    assert_eq!(first.body["results"][0]["firstName"], "Avery");
    let after = first.body["paging"]["next"]["after"].as_str().unwrap().to_owned();
    let second = sim.get(&format!("/crm/owners/2026-03?limit=1&after={after}")).await;
    assert_eq!(second.body["results"][0]["id"], "41002");
    assert!(
        second.body["paging"].is_null(),
        "the last live owner: {:?}",
        second.body
    );
    let archived = sim.get("/crm/v3/owners?archived=true").await;
    assert_eq!(archived.body["results"][0]["id"], "41003");
    assert_eq!(archived.body["results"][0]["archived"], true);
    assert_eq!(sim.get("/crm/v3/owners?limit=501").await.status, 400);
    assert_eq!(
        sim.get("/crm/v3/owners/41002").await.body["email"],
        "jordan.reyes@example.com"
    );
    assert_eq!(sim.get("/crm/v3/owners/99").await.status, 404);

    let replaced = sim
        .admin_post("/__sim/owners", json!([{"id": 7, "email": "x@example.com"}]))
        .await;
    assert_eq!(replaced.body["owners"], 1);
    let now = sim.get("/crm/v3/owners").await;
    assert_eq!(now.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(now.body["results"][0]["id"], "7");
}
