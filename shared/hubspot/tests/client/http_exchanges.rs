//! Exact HTTP exchanges against wiremock: method, path, Authorization, Content-Type and body shapes as in
//! HubSpot's documented request and response examples, plus every error class, 207 mapping, chunking and
//! retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crmsync_hubspot::associations::{AssociationInput, AssociationPair, AssociationSpec, type_ids};
use crmsync_hubspot::pipelines::{PipelineInput, StageInput};
use crmsync_hubspot::properties::{PropertyCreate, PropertyType};
use crmsync_hubspot::search::{Direction, Filter, FilterGroup, Operator, SearchRequest, Sort};
use crmsync_hubspot::{
    CreateInput, ErrorClass, HubSpotClient, HubSpotError, ObjectType, PermanentKind, UpdateInput, UpsertInput,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::{EchoAssociations, EchoUpsert, TOKEN, body_of, client, error_body, fast_config};

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn upsert(id: &str, pairs: &[(&str, &str)]) -> UpsertInput {
    UpsertInput {
        id: id.to_owned(),
        properties: props(pairs),
    }
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording on")
}

#[tokio::test]
async fn batch_upsert_sends_the_documented_request_and_reads_the_documented_answer() {
    let server = MockServer::start().await;
    // Request and response shapes: https://developers.hubspot.com/docs/api-reference/latest/crm/objects/contacts/batch/upsert-contacts
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/batch/upsert"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "inputs": [{
                "id": "3f0c2a8e-0000-4000-8000-000000000001",
                "idProperty": "crmsync_id",
                "properties": {
                    "amount": "250000.5",
                    "closedate": "2026-06-30",
                    "crmsync_id": "3f0c2a8e-0000-4000-8000-000000000001",
                    "dealname": "Cyber range support",
                },
                "objectWriteTraceId": "0",
            }]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "completedAt": "2026-03-30T10:00:00.120Z",
            "requestedAt": "2026-03-30T10:00:00.000Z",
            "startedAt": "2026-03-30T10:00:00.010Z",
            "links": {},
            "results": [{
                "archived": false,
                "createdAt": "2026-03-30T10:00:00.100Z",
                "id": "512",
                "new": true,
                "properties": {"dealname": "Cyber range support", "crmsync_id": "3f0c2a8e-0000-4000-8000-000000000001", "hs_object_id": "512"},
                "updatedAt": "2026-03-30T10:00:00.100Z",
                "objectWriteTraceId": "0",
            }],
            "status": "COMPLETE",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let amount = Decimal::new(25_000_050, 2);
    let close = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let input = UpsertInput {
        id: "3f0c2a8e-0000-4000-8000-000000000001".into(),
        properties: props(&[
            ("dealname", "Cyber range support"),
            ("amount", &crmsync_hubspot::values::decimal(amount)),
            ("closedate", &crmsync_hubspot::values::date(close)),
        ]),
    };
    let outcome = client(&server.uri())
        .batch_upsert(ObjectType::Deals, "crmsync_id", &[input])
        .await
        .expect("upsert");
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let (index, upserted) = &outcome.succeeded[0];
    assert_eq!(*index, 0);
    assert_eq!(upserted.object.id, "512");
    assert!(upserted.created);
    assert_eq!(upserted.object.property("dealname"), Some("Cyber range support"));
}

#[tokio::test]
async fn two_hundred_fifty_upserts_go_out_as_three_calls_with_outcomes_in_input_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/companies/batch/upsert"))
        .respond_with(EchoUpsert)
        .expect(3)
        .mount(&server)
        .await;
    let inputs: Vec<UpsertInput> = (0..250)
        .map(|i| upsert(&format!("company-{i}"), &[("name", &format!("Company {i}"))]))
        .collect();
    let client = client(&server.uri());
    let outcome = client
        .batch_upsert(ObjectType::Companies, "crmsync_id", &inputs)
        .await
        .expect("upsert");
    assert_eq!(outcome.succeeded.len(), 250);
    for (position, (index, upserted)) in outcome.succeeded.iter().enumerate() {
        assert_eq!(position, *index);
        assert_eq!(
            upserted.object.property("crmsync_id"),
            Some(format!("company-{index}").as_str())
        );
    }
    let mut sizes: Vec<usize> = requests(&server)
        .await
        .iter()
        .map(|r| body_of(r)["inputs"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![50, 100, 100]);
    assert_eq!(client.stats().requests_sent, 3);
}

#[tokio::test]
async fn a_207_answer_maps_each_error_back_to_its_input_by_trace_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/batch/upsert"))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [
                {"id": "11", "properties": {"crmsync_id": "c"}, "new": false, "archived": false,
                 "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-03-30T10:00:00Z", "objectWriteTraceId": "2"},
                {"id": "10", "properties": {"crmsync_id": "a"}, "new": true, "archived": false,
                 "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:00Z", "objectWriteTraceId": "0"},
            ],
            "numErrors": 1,
            "errors": [{
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"2026-06-30T15:00:00Z is at 15:00:00 UTC, not midnight!\",\"error\":\"INVALID_DATE\",\"name\":\"closedate\"}]",
                "context": {"objectWriteTraceId": ["1"]},
                "errors": [],
                "links": {},
                "subCategory": {},
            }],
            "startedAt": "2026-03-30T10:00:00Z",
            "completedAt": "2026-03-30T10:00:01Z",
        })))
        .mount(&server)
        .await;
    let inputs = [
        upsert("a", &[("dealname", "A")]),
        upsert("b", &[("closedate", "2026-06-30T15:00:00Z")]),
        upsert("c", &[("dealname", "C")]),
    ];
    let outcome = client(&server.uri())
        .batch_upsert(ObjectType::Deals, "crmsync_id", &inputs)
        .await
        .expect("a 207 is not a whole-call failure");
    let ids: Vec<(usize, &str, bool)> = outcome
        .succeeded
        .iter()
        .map(|(i, u)| (*i, u.object.id.as_str(), u.created))
        .collect();
    assert_eq!(ids, vec![(0, "10", true), (2, "11", false)]);
    assert_eq!(outcome.failed.len(), 1);
    let (index, error) = &outcome.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(error.class(), ErrorClass::Permanent(PermanentKind::Validation));
    let api = error.api().expect("api error");
    assert_eq!(api.object_write_trace_id.as_deref(), Some("1"));
    assert_eq!(api.category.as_deref(), Some("VALIDATION_ERROR"));
    assert!(api.message.contains("not midnight"));
}

#[tokio::test]
async fn repeated_upsert_keys_fail_locally_and_are_not_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/batch/upsert"))
        .respond_with(EchoUpsert)
        .expect(1)
        .mount(&server)
        .await;
    let inputs = [upsert("x", &[]), upsert("y", &[]), upsert("x", &[])];
    let outcome = client(&server.uri())
        .batch_upsert(ObjectType::Deals, "crmsync_id", &inputs)
        .await
        .unwrap();
    assert_eq!(
        outcome.succeeded.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, 2);
    assert!(
        outcome.failed[0].1.to_string().contains("input 0"),
        "{}",
        outcome.failed[0].1
    );
    let sent = body_of(&requests(&server).await[0]);
    assert_eq!(sent["inputs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn batch_create_sends_associations_and_trace_ids_and_maps_results() {
    let server = MockServer::start().await;
    // Shape: https://developers.hubspot.com/docs/api-reference/latest/crm/objects/partner-clients/batch/create-partner-clients
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/notes/batch/create"))
        .and(body_json(json!({"inputs": [{
            "properties": {"hs_note_body": "Called the contracting officer", "hs_timestamp": "2026-03-30T14:05:09.120Z"},
            "associations": [{"to": {"id": "512"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}],
            "objectWriteTraceId": "0",
        }]})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"id": "77", "properties": {"hs_note_body": "Called the contracting officer"},
                          "createdAt": "2026-03-30T14:05:10Z", "updatedAt": "2026-03-30T14:05:10Z", "archived": false,
                          "objectWriteTraceId": "0"}],
            "startedAt": "2026-03-30T14:05:10Z", "completedAt": "2026-03-30T14:05:10Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-30T14:05:09.120Z")
        .unwrap()
        .to_utc();
    let input = CreateInput {
        properties: props(&[
            ("hs_note_body", "Called the contracting officer"),
            ("hs_timestamp", &crmsync_hubspot::values::datetime(at)),
        ]),
        associations: vec![crmsync_hubspot::objects::NewAssociation {
            to_id: "512".into(),
            types: vec![AssociationSpec::hubspot_defined(type_ids::NOTE_TO_DEAL)],
        }],
    };
    let outcome = client(&server.uri())
        .batch_create(ObjectType::Notes, &[input])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    assert_eq!(outcome.succeeded[0].1.id, "77");
}

#[tokio::test]
async fn batch_read_by_unique_property_reports_missing_records_as_not_found() {
    let server = MockServer::start().await;
    // Shape: BatchReadInputSimplePublicObjectId in the 2026-03 deals spec.
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/batch/read"))
        .and(body_json(json!({
            "inputs": [{"id": "u1"}, {"id": "u2"}],
            "properties": ["dealname", "crmsync_id"],
            "propertiesWithHistory": [],
            "idProperty": "crmsync_id",
        })))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"id": "5", "properties": {"dealname": "D", "crmsync_id": "u2"}, "archived": false,
                          "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:00Z"}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid.",
                        "context": {"ids": ["u1"]}}],
            "startedAt": "2026-03-30T10:00:00Z", "completedAt": "2026-03-30T10:00:00Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = client(&server.uri())
        .batch_read(ObjectType::Deals, &["u1", "u2"], Some("crmsync_id"), &["dealname"])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    assert_eq!(outcome.succeeded[0].0, 1);
    assert_eq!(outcome.succeeded[0].1.id, "5");
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, 0);
    assert!(outcome.failed[0].1.is_not_found());
}

#[tokio::test]
async fn batch_update_by_id_sends_each_input_with_its_trace_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/companies/batch/update"))
        .and(body_json(json!({"inputs": [
            {"id": "101", "properties": {"b2g_uei": "ABCDEF123456"}, "objectWriteTraceId": "0"},
        ]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"id": "101", "properties": {"b2g_uei": "ABCDEF123456"}, "archived": false,
                          "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:01Z"}],
            "startedAt": "2026-03-30T10:00:00Z", "completedAt": "2026-03-30T10:00:01Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let input = UpdateInput {
        id: "101".into(),
        properties: props(&[("b2g_uei", "ABCDEF123456")]),
    };
    let outcome = client(&server.uri())
        .batch_update(ObjectType::Companies, None, &[input])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded[0].1.property("b2g_uei"), Some("ABCDEF123456"));
}

#[tokio::test]
async fn single_read_and_archive_use_the_record_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/objects/2026-03/contacts/u-7"))
        .and(query_param("idProperty", "crmsync_id"))
        .and(query_param("properties", "email,firstname"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "7", "properties": {"email": "a@example.gov", "firstname": null}, "archived": false,
            "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:00Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/crm/objects/2026-03/contacts/7"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let contact = client
        .get_object(ObjectType::Contacts, "u-7", Some("crmsync_id"), &["email", "firstname"])
        .await
        .unwrap();
    assert_eq!(contact.property("email"), Some("a@example.gov"));
    assert_eq!(contact.property("firstname"), None);
    client.archive_object(ObjectType::Contacts, "7").await.unwrap();
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(EchoUpsert)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let outcome = client
        .batch_upsert(ObjectType::Deals, "crmsync_id", &[upsert("a", &[])])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    let stats = client.stats();
    assert_eq!(stats.requests_sent, 3);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.responses_5xx, 2);
}

#[tokio::test]
async fn a_ten_secondly_429_is_retried_after_the_window_hubspot_names() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "150")
                .insert_header("X-HubSpot-RateLimit-Max", "10000")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0")
                .set_body_json(json!({
                    "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "correlationId": "c", "policyName": "TEN_SECONDLY_ROLLING",
                    "groupName": "publicapi:hapikey-api-calls-ten-secondly:6748263",
                })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(EchoUpsert)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let started = Instant::now();
    let outcome = client
        .batch_upsert(ObjectType::Deals, "crmsync_id", &[upsert("a", &[])])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    // The retry waited at least the 150 ms window HubSpot named (a lower bound, independent of machine speed).
    assert!(started.elapsed() >= Duration::from_millis(150));
    let stats = client.stats();
    assert_eq!((stats.responses_429, stats.retries, stats.requests_sent), (1, 1, 2));
}

#[tokio::test]
async fn a_daily_429_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
            "correlationId": "c", "policyName": "DAILY", "requestId": "r",
        })))
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let err = client
        .batch_upsert(ObjectType::Deals, "crmsync_id", &[upsert("a", &[])])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Daily);
    assert_eq!(requests(&server).await.len(), 1);
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn after_a_daily_429_the_remaining_chunks_are_not_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EchoUpsert)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "status": "error", "message": "You have reached your daily limit.", "policyName": "DAILY",
        })))
        .mount(&server)
        .await;
    let mut config = fast_config(&server.uri());
    config.max_concurrency = 1;
    let client = HubSpotClient::new(config).unwrap();
    let inputs: Vec<UpsertInput> = (0..350).map(|i| upsert(&format!("k{i}"), &[])).collect();
    let outcome = client
        .batch_upsert(ObjectType::Deals, "crmsync_id", &inputs)
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 100);
    assert_eq!(outcome.failed.len(), 250);
    assert!(outcome.failed.iter().all(|(_, e)| e.class() == ErrorClass::Daily));
    // First chunk answered, second hit DAILY, the last two were never sent.
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_timeout_is_classified_retryable_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({"id": "1", "properties": {}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "properties": {}})))
        .mount(&server)
        .await;
    let mut config = fast_config(&server.uri());
    config.request_timeout = Duration::from_millis(300);
    config.max_retries = 0;
    let no_retry = HubSpotClient::new(config.clone()).unwrap();
    let err = no_retry
        .get_object(ObjectType::Deals, "1", None, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, HubSpotError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { suggested_wait: None });
    assert_eq!(no_retry.stats().timeouts, 1);

    config.max_retries = 2;
    let retrying = HubSpotClient::new(config).unwrap();
    let record = retrying.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap();
    assert_eq!(record.id, "1");
}

#[tokio::test]
async fn a_create_is_not_resent_after_an_ambiguous_server_error_but_is_after_a_429() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/notes/batch/create"))
        .respond_with(ResponseTemplate::new(504).set_body_string("gateway timeout"))
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let err = client
        .batch_create(ObjectType::Notes, &[CreateInput::default()])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(504));
    assert!(err.class().is_retryable());
    assert_eq!(
        requests(&server).await.len(),
        1,
        "a 504 may have been applied: not resent"
    );

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({
                    "status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "policyName": "TEN_SECONDLY_ROLLING",
                }))
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "10"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "status": "COMPLETE", "results": [{"id": "1", "properties": {}, "objectWriteTraceId": "0"}],
        })))
        .mount(&server)
        .await;
    let outcome = client
        .batch_create(ObjectType::Notes, &[CreateInput::default()])
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 1);
    assert_eq!(requests(&server).await.len(), 2, "a 429 was not applied: resent once");
}

#[tokio::test]
async fn client_errors_are_permanent_and_not_retried() {
    let cases = [
        (
            400,
            "VALIDATION_ERROR",
            "Property values were not valid",
            PermanentKind::Validation,
        ),
        (
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
            PermanentKind::Unauthorized,
        ),
        (
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes",
            PermanentKind::Forbidden,
        ),
        (404, "OBJECT_NOT_FOUND", "resource not found", PermanentKind::NotFound),
    ];
    for (status, category, message, kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(error_body(category, message)))
            .mount(&server)
            .await;
        let err = client(&server.uri())
            .get_object(ObjectType::Companies, "1", None, &[])
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent(kind), "status {status}");
        let api = err.api().expect("api error");
        assert_eq!(api.category.as_deref(), Some(category));
        assert_eq!(
            api.correlation_id.as_deref(),
            Some("aeb5f871-7f07-4993-9211-075dc63e7cbf")
        );
        assert_eq!(requests(&server).await.len(), 1, "status {status} retried");
    }
}

#[tokio::test]
async fn a_conflict_carries_the_existing_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(error_body(
            "CONFLICT",
            "Contact already exists. Existing ID: 37765128953",
        )))
        .mount(&server)
        .await;
    let err = client(&server.uri())
        .batch_create(ObjectType::Contacts, &[CreateInput::default()])
        .await
        .unwrap_err();
    assert_eq!(
        err.class(),
        ErrorClass::Permanent(PermanentKind::Conflict {
            existing_id: Some("37765128953".into())
        })
    );
}

#[tokio::test]
async fn locked_and_migration_answers_are_retryable_with_their_waits() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crm/objects/2026-03/deals/1"))
        .respond_with(ResponseTemplate::new(423).set_body_json(error_body("LOCKED", "locked")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/objects/2026-03/deals/2"))
        .respond_with(
            ResponseTemplate::new(477)
                .insert_header("Retry-After", "7200")
                .set_body_json(error_body("MIGRATION_IN_PROGRESS", "Migration in progress")),
        )
        .mount(&server)
        .await;
    let mut config = fast_config(&server.uri());
    config.max_retries = 0;
    let client = HubSpotClient::new(config.clone()).unwrap();
    let locked = client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap_err();
    assert_eq!(
        locked.class(),
        ErrorClass::Retryable {
            suggested_wait: Some(Duration::from_secs(2))
        }
    );
    // A 2-hour Retry-After is beyond max_retry_wait: returned to the caller at once, not slept on.
    config.max_retries = 3;
    let client = HubSpotClient::new(config).unwrap();
    let migrating = client.get_object(ObjectType::Deals, "2", None, &[]).await.unwrap_err();
    assert_eq!(
        migrating.class(),
        ErrorClass::Retryable {
            suggested_wait: Some(Duration::from_secs(7200))
        }
    );
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_locked_record_is_retried_after_two_seconds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(423).set_body_json(error_body("LOCKED", "locked")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "1", "properties": {}})))
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let started = Instant::now();
    client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(client.stats().retries, 1);
}

/// Accepts connections and closes them without answering, like a server that dropped the request.
async fn closing_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_dropped_connection_is_retryable_but_may_have_been_applied() {
    let mut config = fast_config(&closing_server().await);
    config.max_retries = 2;
    let client = HubSpotClient::new(config).unwrap();
    let err = client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap_err();
    assert!(
        matches!(err, HubSpotError::Transport { not_sent: false, .. }),
        "{err:?}"
    );
    assert!(err.class().is_retryable());
    assert!(!err.request_not_applied());
    assert_eq!(client.stats().requests_sent, 3, "idempotent read retried twice");
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_surely_not_applied() {
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = fast_config(&format!("http://{address}"));
    config.max_retries = 0;
    let client = HubSpotClient::new(config).unwrap();
    let err = client
        .batch_create(ObjectType::Notes, &[CreateInput::default()])
        .await
        .unwrap_err();
    assert!(matches!(err, HubSpotError::Transport { not_sent: true, .. }), "{err:?}");
    assert!(err.request_not_applied());
}

/// Pages of 200 with increasing `after` cursors, forever, like a query with 25,000 matches; counts requests.
struct EndlessPages(Arc<AtomicUsize>);

impl Respond for EndlessPages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.fetch_add(1, Ordering::SeqCst);
        let body = body_of(request);
        let offset: usize = body["after"].as_str().map_or(0, |a| a.parse().unwrap());
        let results: Vec<Value> = (offset..offset + 200)
            .map(|i| json!({"id": i.to_string(), "properties": {}, "archived": false}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "total": 25_000,
            "results": results,
            "paging": {"next": {"after": (offset + 200).to_string(), "link": "?after="}},
        }))
    }
}

#[tokio::test]
async fn search_sends_filters_sorts_and_paging_as_documented() {
    let server = MockServer::start().await;
    // Body shape: https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/search"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "filterGroups": [{"filters": [
                {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "2026-03-30T00:00:00.000Z"},
                {"propertyName": "pipeline", "operator": "EQ", "value": "default"},
            ]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["dealname", "dealstage"],
            "limit": 2,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 3,
            "results": [{"id": "1", "properties": {"dealname": "a"}}, {"id": "2", "properties": {"dealname": "b"}}],
            "paging": {"next": {"after": "2", "link": "?after=2"}},
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/deals/search"))
        .and(wiremock::matchers::body_partial_json(json!({"after": "2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 3,
            "results": [{"id": "3", "properties": {"dealname": "c"}}],
        })))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    let request = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![
                Filter::new("hs_lastmodifieddate", Operator::Gte, "2026-03-30T00:00:00.000Z"),
                Filter::new("pipeline", Operator::Eq, "default"),
            ],
        }],
        sorts: vec![Sort {
            property_name: "hs_lastmodifieddate".into(),
            direction: Direction::Ascending,
        }],
        properties: vec!["dealname".into(), "dealstage".into()],
        query: None,
        limit: 2,
    };
    let client = client(&server.uri());
    let all = client.search_all(ObjectType::Deals, &request).await.unwrap();
    assert_eq!(
        all.results.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        vec!["1", "2", "3"]
    );
    assert_eq!(all.total, 3);
    assert!(!all.capped);
    let stats = client.stats();
    assert_eq!((stats.search_requests, stats.requests_sent), (2, 2));
}

#[tokio::test]
async fn search_stops_cleanly_at_the_ten_thousand_result_cap() {
    let server = MockServer::start().await;
    let pages = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/crm/objects/2026-03/companies/search"))
        .respond_with(EndlessPages(Arc::clone(&pages)))
        .mount(&server)
        .await;
    let all = client(&server.uri())
        .search_all(ObjectType::Companies, &SearchRequest::default())
        .await
        .expect("the cap is not an error");
    assert_eq!(all.results.len(), 10_000);
    assert!(all.capped);
    assert_eq!(all.total, 25_000);
    assert_eq!(pages.load(Ordering::SeqCst), 50, "no request past offset 10,000");
}

#[tokio::test]
async fn a_page_size_over_two_hundred_is_rejected_before_sending() {
    let server = MockServer::start().await;
    let request = SearchRequest {
        limit: 201,
        ..SearchRequest::default()
    };
    let err = client(&server.uri())
        .search_page(ObjectType::Deals, &request, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn association_batch_create_sends_typed_pairs_in_chunks_of_two_thousand() {
    let server = MockServer::start().await;
    // Shape: PublicAssociationMultiPost in the 2026-03 associations spec.
    Mock::given(method("POST"))
        .and(path("/crm/associations/2026-03/deals/companies/batch/create"))
        .and(header("content-type", "application/json"))
        .respond_with(EchoAssociations)
        .expect(2)
        .mount(&server)
        .await;
    let inputs: Vec<AssociationInput> = (0..2_500)
        .map(|i| AssociationInput {
            from_id: format!("{}", 1_000 + i),
            to_id: "42".into(),
            types: vec![AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY_PRIMARY)],
        })
        .collect();
    let outcome = client(&server.uri())
        .batch_create_associations(ObjectType::Deals, ObjectType::Companies, &inputs)
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.len(), 2_500);
    let sent = requests(&server).await;
    let mut sizes: Vec<usize> = sent
        .iter()
        .map(|r| body_of(r)["inputs"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![500, 2_000]);
    let first = body_of(&sent[0])["inputs"][0].clone();
    assert_eq!(
        first["types"],
        json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}])
    );
    assert!(first["from"]["id"].is_string() && first["to"]["id"] == json!("42"));
}

#[tokio::test]
async fn default_association_read_and_archive_use_their_batch_paths() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/associations/2026-03/contacts/companies/batch/associate/default"))
        .and(body_json(json!({"inputs": [{"from": {"id": "7"}, "to": {"id": "42"}}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "COMPLETE",
            "results": [
                {"from": {"id": "7"}, "to": {"id": "42"}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}},
                {"from": {"id": "42"}, "to": {"id": "7"}, "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 280}},
            ],
            "startedAt": "2026-03-30T10:00:00Z", "completedAt": "2026-03-30T10:00:00Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/associations/2026-03/contacts/companies/batch/read"))
        .and(body_json(json!({"inputs": [{"id": "7"}, {"id": "8"}]})))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE",
            "results": [{"from": {"id": "7"}, "to": [{"toObjectId": "42", "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": null},
                {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"},
            ]}]}],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "message": "No company is associated with contact 8.", "context": {"ids": ["8"]}}],
            "startedAt": "2026-03-30T10:00:00Z", "completedAt": "2026-03-30T10:00:00Z",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/associations/2026-03/contacts/companies/batch/archive"))
        .and(body_json(
            json!({"inputs": [{"from": {"id": "7"}, "to": [{"id": "42"}]}]}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let pair = AssociationPair {
        from_id: "7".into(),
        to_id: "42".into(),
    };
    let made = client
        .batch_associate_default(ObjectType::Contacts, ObjectType::Companies, std::slice::from_ref(&pair))
        .await
        .unwrap();
    assert!(made.is_complete() && made.succeeded.len() == 1);
    let read = client
        .batch_read_associations(ObjectType::Contacts, ObjectType::Companies, &["7", "8"])
        .await
        .unwrap();
    assert!(read.is_complete());
    assert_eq!(read.succeeded[0].1[0].to_id, "42");
    assert_eq!(read.succeeded[0].1[0].types.len(), 2);
    assert!(read.succeeded[1].1.is_empty(), "no associations is an empty list");
    let removed = client
        .batch_archive_associations(ObjectType::Contacts, ObjectType::Companies, &[pair])
        .await
        .unwrap();
    assert!(removed.is_complete() && removed.succeeded.len() == 1);
}

#[tokio::test]
async fn pipeline_and_property_creation_send_the_documented_bodies() {
    let server = MockServer::start().await;
    // PipelineInput / PipelineStageInput in the 2026-03 pipelines spec.
    Mock::given(method("POST"))
        .and(path("/crm/pipelines/2026-03/deals"))
        .and(body_json(json!({
            "label": "B2G Opportunities",
            "displayOrder": 1,
            "stages": [{"label": "New Match", "displayOrder": 0, "metadata": {"isClosed": "false", "probability": "0.1"}}],
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "811", "label": "B2G Opportunities", "displayOrder": 1, "archived": false,
            "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:00Z",
            "stages": [{"id": "1201", "label": "New Match", "displayOrder": 0, "archived": false,
                        "metadata": {"isClosed": "false", "probability": "0.1"},
                        "createdAt": "2026-03-30T10:00:00Z", "updatedAt": "2026-03-30T10:00:00Z",
                        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}],
        })))
        .expect(1)
        .mount(&server)
        .await;
    // PropertyCreate in the 2026-03 properties spec.
    Mock::given(method("POST"))
        .and(path("/crm/properties/2026-03/deals"))
        .and(body_json(json!({
            "name": "crmsync_id", "label": "CRMSync ID", "type": "string", "fieldType": "text",
            "groupName": "b2g", "hasUniqueValue": true, "formField": false,
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "name": "crmsync_id", "label": "CRMSync ID", "type": "string", "fieldType": "text",
            "groupName": "b2g", "hasUniqueValue": true, "archived": false, "hubspotDefined": false,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let pipeline = client
        .create_pipeline(
            ObjectType::Deals,
            &PipelineInput {
                label: "B2G Opportunities".into(),
                display_order: 1,
                stages: vec![StageInput::deal_stage("New Match", 0, Decimal::new(1, 1), false)],
            },
        )
        .await
        .unwrap();
    assert_eq!(pipeline.stages[0].probability(), Some(Decimal::new(1, 1)));
    let property = client
        .create_property(
            ObjectType::Deals,
            &PropertyCreate {
                name: "crmsync_id".into(),
                label: "CRMSync ID".into(),
                property_type: PropertyType::String,
                field_type: "text".into(),
                group_name: "b2g".into(),
                description: String::new(),
                has_unique_value: true,
                form_field: false,
            },
        )
        .await
        .unwrap();
    assert!(property.has_unique_value);
}

#[tokio::test]
async fn the_legacy_version_setting_uses_v3_and_v4_paths() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/deals/batch/upsert"))
        .respond_with(EchoUpsert)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/v4/associations/deals/companies/batch/create"))
        .respond_with(EchoAssociations)
        .expect(1)
        .mount(&server)
        .await;
    let mut config = fast_config(&server.uri());
    config.api_version = "v3".into();
    let client = HubSpotClient::new(config).unwrap();
    client
        .batch_upsert(ObjectType::Deals, "crmsync_id", &[upsert("a", &[])])
        .await
        .unwrap();
    client
        .batch_create_associations(
            ObjectType::Deals,
            ObjectType::Companies,
            &[AssociationInput {
                from_id: "1".into(),
                to_id: "2".into(),
                types: vec![AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY)],
            }],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_spent_window_budget_in_the_headers_pauses_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-HubSpot-RateLimit-Max", "100")
                .insert_header("X-HubSpot-RateLimit-Remaining", "0")
                .insert_header("X-HubSpot-RateLimit-Interval-Milliseconds", "1000")
                .set_body_json(json!({"id": "1", "properties": {}})),
        )
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let sent = Instant::now();
    client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap();
    assert_eq!(client.stats().limiter_pauses, 1);
    client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap();
    // Nothing of the window is known to free before the one request this client sent leaves it, an interval
    // (1 s) after it was sent; other processes spent the rest.
    assert!(sent.elapsed() >= Duration::from_secs(1), "{:?}", sent.elapsed());
}

#[tokio::test]
async fn neither_the_client_nor_its_errors_print_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        )))
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let err = client.get_object(ObjectType::Deals, "1", None, &[]).await.unwrap_err();
    for printed in [
        format!("{client:?}"),
        format!("{err:?}"),
        err.to_string(),
        format!("{:?}", client.config()),
    ] {
        assert!(!printed.contains(TOKEN), "{printed}");
    }
}

#[tokio::test]
async fn setup_adds_a_missing_stage_and_corrects_a_wrong_probability_without_touching_the_rest() {
    use crmsync_hubspot::setup::{PROPERTIES, STAGES};
    use wiremock::matchers::path_regex;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+/groups$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"name": "b2g", "label": "B2G", "displayOrder": -1, "archived": false},
        ]})))
        .expect(8) // one list per object type: companies, contacts, deals and the five activity types
        .mount(&server)
        .await;
    let all_properties: Vec<Value> = PROPERTIES
        .iter()
        .map(|p| {
            json!({"name": p.name, "label": p.label, "type": p.property_type, "fieldType": "text",
                   "groupName": "b2g", "hasUniqueValue": p.unique})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": all_properties})))
        .expect(8) // one list per object type: companies, contacts, deals and the five activity types
        .mount(&server)
        .await;
    // The pipeline exists with every stage but "Closed Lost", and "Qualified" at 0.5 instead of 0.4.
    let stages: Vec<Value> = STAGES
        .iter()
        .zip(0..)
        .filter(|(s, _)| s.key != "closed_lost")
        .map(|(s, order)| {
            let probability = if s.key == "qualified" { "0.5" } else { s.probability };
            json!({"id": format!("st-{}", s.key), "label": s.label, "displayOrder": order, "archived": false,
                   "metadata": {"probability": probability, "isClosed": s.closed.to_string()}})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/crm/pipelines/2026-03/deals"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": [], "archived": false},
            {"id": "811", "label": "B2G Opportunities", "displayOrder": 1, "stages": stages, "archived": false},
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/pipelines/2026-03/deals/811/stages"))
        .and(body_json(json!({"label": "Closed Lost", "displayOrder": 7,
                              "metadata": {"isClosed": "true", "probability": "0.0"}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "st-new", "label": "Closed Lost", "displayOrder": 7, "archived": false,
            "metadata": {"isClosed": "true", "probability": "0.0"},
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/crm/pipelines/2026-03/deals/811/stages/st-qualified"))
        .and(body_json(
            json!({"metadata": {"isClosed": "false", "probability": "0.4"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "st-qualified", "label": "Qualified", "displayOrder": 3, "archived": false,
            "metadata": {"isClosed": "false", "probability": "0.4"},
        })))
        .expect(1)
        .mount(&server)
        .await;
    let report = crmsync_hubspot::ensure_b2g_setup(&client(&server.uri())).await.unwrap();
    assert_eq!(report.pipeline_id, "811");
    assert_eq!(report.created, vec!["deals pipeline stage Closed Lost".to_owned()]);
    assert_eq!(report.updated, vec!["deals pipeline stage Qualified".to_owned()]);
    assert_eq!(report.stage_ids["closed_lost"], "st-new");
    assert_eq!(report.stage_ids["new_match"], "st-new_match");
    assert_eq!(report.stage_ids.len(), 8);
}

#[tokio::test]
async fn setup_refuses_a_local_id_property_without_unique_values() {
    use wiremock::matchers::path_regex;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+/groups$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [{"name": "b2g", "label": "B2G"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"name": "crmsync_id", "label": "id", "type": "string", "fieldType": "text", "groupName": "b2g", "hasUniqueValue": false},
        ]})))
        .mount(&server)
        .await;
    let err = crmsync_hubspot::ensure_b2g_setup(&client(&server.uri()))
        .await
        .unwrap_err();
    assert!(matches!(err, HubSpotError::SetupConflict { .. }), "{err:?}");
    assert!(err.to_string().contains("companies.crmsync_id"), "{err}");
    let writes = requests(&server)
        .await
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .count();
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn pipeline_update_patches_only_the_given_fields() {
    let server = MockServer::start().await;
    // PipelinePatchInput in the 2026-03 pipelines spec.
    Mock::given(method("PATCH"))
        .and(path("/crm/pipelines/2026-03/deals/811"))
        .and(body_json(json!({"displayOrder": 3})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "811", "label": "B2G Opportunities", "displayOrder": 3, "stages": [], "archived": false,
        })))
        .expect(1)
        .mount(&server)
        .await;
    let patch = crmsync_hubspot::pipelines::PipelinePatch {
        display_order: Some(3),
        ..Default::default()
    };
    let pipeline = client(&server.uri())
        .update_pipeline(ObjectType::Deals, "811", &patch)
        .await
        .unwrap();
    assert_eq!(pipeline.display_order, 3);
}

/// Group lists that already hold "b2g" and property lists with every property setup needs, for all types.
async fn mount_complete_properties(server: &MockServer) {
    use crmsync_hubspot::setup::PROPERTIES;
    use wiremock::matchers::path_regex;

    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+/groups$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [{"name": "b2g", "label": "B2G"}]})))
        .mount(server)
        .await;
    let all_properties: Vec<Value> = PROPERTIES
        .iter()
        .map(|p| {
            json!({"name": p.name, "label": p.label, "type": p.property_type, "fieldType": "text",
                   "groupName": "b2g", "hasUniqueValue": p.unique})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path_regex(r"^/crm/properties/2026-03/[a-z]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": all_properties})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_property_another_setup_created_first_is_reread_and_refused_when_it_cannot_serve() {
    use wiremock::matchers::path_regex;

    for (wrong, reason) in [
        (json!({"type": "number", "hasUniqueValue": true}), "type"),
        (json!({"type": "string", "hasUniqueValue": false}), "hasUniqueValue"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/crm/properties/2026-03/[a-z]+/groups$"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"results": [{"name": "b2g", "label": "B2G"}]})),
            )
            .mount(&server)
            .await;
        // The list predates the other run's create ...
        Mock::given(method("GET"))
            .and(path("/crm/properties/2026-03/companies"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
            .mount(&server)
            .await;
        // ... so our create conflicts ...
        Mock::given(method("POST"))
            .and(path("/crm/properties/2026-03/companies"))
            .respond_with(ResponseTemplate::new(409).set_body_json(error_body(
                "OBJECT_ALREADY_EXISTS",
                "Property named 'crmsync_id' already exists.",
            )))
            .expect(1)
            .mount(&server)
            .await;
        // ... and the property it made is read back.
        let mut property =
            json!({"name": "crmsync_id", "label": "CRMSync ID", "fieldType": "text", "groupName": "b2g"});
        property
            .as_object_mut()
            .unwrap()
            .extend(wrong.as_object().unwrap().clone());
        Mock::given(method("GET"))
            .and(path("/crm/properties/2026-03/companies/crmsync_id"))
            .respond_with(ResponseTemplate::new(200).set_body_json(property))
            .expect(1)
            .mount(&server)
            .await;
        let err = crmsync_hubspot::ensure_b2g_setup(&client(&server.uri()))
            .await
            .unwrap_err();
        assert!(matches!(err, HubSpotError::SetupConflict { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("companies.crmsync_id") && text.contains(reason), "{text}");
    }
}

#[tokio::test]
async fn a_property_another_setup_created_first_with_the_right_shape_is_accepted() {
    let server = MockServer::start().await;
    mount_complete_properties(&server).await;
    // Our run's first list predates the other run's create of deals.crmsync_id.
    Mock::given(method("GET"))
        .and(path("/crm/properties/2026-03/deals"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"name": "b2g_match_score", "type": "number"}, {"name": "b2g_win_probability", "type": "number"},
            {"name": "b2g_notice_id", "type": "string"},
        ]})))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/crm/properties/2026-03/deals"))
        .respond_with(ResponseTemplate::new(409).set_body_json(error_body(
            "OBJECT_ALREADY_EXISTS",
            "Property named 'crmsync_id' already exists.",
        )))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/properties/2026-03/deals/crmsync_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "crmsync_id", "label": "CRMSync ID", "type": "string", "fieldType": "text",
            "groupName": "b2g", "hasUniqueValue": true,
        })))
        .expect(1)
        .mount(&server)
        .await;
    mount_complete_pipeline(&server, "811").await;
    let report = crmsync_hubspot::ensure_b2g_setup(&client(&server.uri())).await.unwrap();
    assert!(report.created.is_empty(), "{:?}", report.created);
}

/// The pipeline list holding "B2G Opportunities" with every stage right.
async fn mount_complete_pipeline(server: &MockServer, id: &str) {
    use crmsync_hubspot::setup::STAGES;
    let stages: Vec<Value> = STAGES
        .iter()
        .zip(0..)
        .map(|(s, order)| {
            json!({"id": format!("st-{}", s.key), "label": s.label, "displayOrder": order, "archived": false,
                   "metadata": {"probability": s.probability, "isClosed": s.closed.to_string()}})
        })
        .collect();
    Mock::given(method("GET"))
        .and(path("/crm/pipelines/2026-03/deals"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": [], "archived": false},
            {"id": id, "label": "B2G Opportunities", "displayOrder": 1, "stages": stages, "archived": false},
        ]})))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_pipeline_another_setup_created_first_is_found_by_listing_again() {
    let server = MockServer::start().await;
    mount_complete_properties(&server).await;
    // The first list predates the other run's pipeline; the list after the conflict shows it.
    Mock::given(method("GET"))
        .and(path("/crm/pipelines/2026-03/deals"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": [
            {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": [], "archived": false},
        ]})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_complete_pipeline(&server, "812").await;
    Mock::given(method("POST"))
        .and(path("/crm/pipelines/2026-03/deals"))
        .respond_with(ResponseTemplate::new(409).set_body_json(error_body(
            "CONFLICT",
            "A pipeline with label \"B2G Opportunities\" already exists.",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let report = crmsync_hubspot::ensure_b2g_setup(&client(&server.uri())).await.unwrap();
    assert_eq!(report.pipeline_id, "812");
    assert_eq!(report.stage_ids["closed_won"], "st-closed_won");
    assert!(report.created.is_empty() && report.updated.is_empty(), "{report:?}");
    let writes: Vec<String> = requests(&server)
        .await
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert_eq!(writes, vec!["POST /crm/pipelines/2026-03/deals".to_owned()]);
}
