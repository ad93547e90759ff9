//! Contract tests: the client against the simulator over real HTTP on 127.0.0.1 (port 0), with both sides
//! configured alike. Every operation, every error class the simulator can produce, chunking, 207 mapping,
//! the limiter under a burst, and setup idempotency.

use std::collections::BTreeMap;
use std::time::Duration;

use crmsync_hubspot::associations::{AssociationInput, AssociationPair, AssociationSpec, type_ids};
use crmsync_hubspot::objects::NewAssociation;
use crmsync_hubspot::search::{Filter, FilterGroup, Operator, SearchRequest};
use crmsync_hubspot::setup::{LOCAL_ID_PROPERTY, PIPELINE_LABEL, STAGES};
use crmsync_hubspot::{
    CreateInput, ErrorClass, HubSpotClient, HubSpotConfig, HubSpotError, ObjectType, PermanentKind, RateLimitConfig,
    SetupReport, UpdateInput, UpsertInput, ensure_b2g_setup,
};
use crmsync_hubspot_sim::{FaultConfig, FaultKind, HubSpotSim, RunningSim, SimConfig};
use secrecy::SecretString;
use serde_json::Value;

const UPSERT: &str = "POST /crm/objects/{version}/{object_type}/batch/upsert";

/// A simulator on port 0 and a client configured with the same limits.
struct SimApp {
    sim: RunningSim,
    client: HubSpotClient,
}

impl SimApp {
    async fn start() -> Self {
        Self::with(SimConfig::default(), |_| {}).await
    }

    /// Starts the simulator with `sim_config`; the client gets the same window limits, then `tweak`.
    async fn with(sim_config: SimConfig, tweak: impl FnOnce(&mut HubSpotConfig)) -> Self {
        let mut rate_limit = RateLimitConfig::new(sim_config.requests_per_window, sim_config.rate_window);
        rate_limit.search_per_second = sim_config.search_per_second;
        let sim = HubSpotSim::start(sim_config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        let mut config = HubSpotConfig::new(sim.base_url(), SecretString::from(sim.access_token().to_owned()));
        config.rate_limit = rate_limit;
        config.retry_min_delay = Duration::from_millis(5);
        config.retry_max_delay = Duration::from_millis(100);
        config.request_timeout = Duration::from_secs(5);
        tweak(&mut config);
        let client = HubSpotClient::new(config).expect("valid config");
        SimApp { sim, client }
    }

    async fn admin(&self, path: &str) -> Value {
        reqwest::get(format!("{}/__sim/{path}", self.sim.base_url()))
            .await
            .expect("admin answers")
            .json()
            .await
            .expect("admin JSON")
    }

    /// Write requests (POST, PATCH, PUT, DELETE) the simulator received, any outcome.
    async fn write_requests(&self) -> u64 {
        let requests = self.admin("requests").await;
        requests["byEndpoint"]
            .as_object()
            .expect("byEndpoint")
            .iter()
            .filter(|(endpoint, _)| {
                ["POST ", "PATCH ", "PUT ", "DELETE "]
                    .iter()
                    .any(|m| endpoint.starts_with(m))
            })
            .flat_map(|(_, outcomes)| outcomes.as_object().expect("outcomes").values())
            .map(|n| n.as_u64().expect("count"))
            .sum()
    }

    /// Records of one type in the simulator's state (archived included).
    async fn records(&self, object_type: ObjectType) -> Vec<Value> {
        let state = self.admin(&format!("state?type={object_type}")).await;
        state["objects"][object_type.as_str()]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn setup(&self) -> SetupReport {
        ensure_b2g_setup(&self.client).await.expect("setup")
    }
}

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn deal(key: &str, report: &SetupReport, extra: &[(&str, &str)]) -> UpsertInput {
    let mut properties = props(&[
        ("dealname", &format!("Deal {key}")),
        ("pipeline", &report.pipeline_id),
        ("dealstage", &report.stage_ids["new_match"]),
    ]);
    properties.extend(props(extra));
    UpsertInput {
        id: key.to_owned(),
        properties,
    }
}

#[tokio::test]
async fn setup_creates_the_contract_and_a_second_run_changes_nothing() {
    let app = SimApp::start().await;
    let first = app.setup().await;
    assert_eq!(first.stage_ids.len(), STAGES.len());
    assert!(
        first
            .created
            .iter()
            .any(|c| c == &format!("deals pipeline {PIPELINE_LABEL}"))
    );
    assert!(first.created.iter().any(|c| c == "property deals.crmsync_id"));
    assert!(first.created.iter().any(|c| c == "property group companies.b2g"));
    let state = app.admin("state").await;
    let pipeline = state["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["label"] == PIPELINE_LABEL)
        .expect("pipeline in the simulator")
        .clone();
    assert_eq!(pipeline["id"], Value::from(first.pipeline_id.clone()));
    let unique = app
        .client
        .get_property(ObjectType::Companies, LOCAL_ID_PROPERTY)
        .await
        .unwrap();
    assert!(unique.has_unique_value);
    let stage = app
        .client
        .get_pipeline(ObjectType::Deals, &first.pipeline_id)
        .await
        .unwrap()
        .stages
        .into_iter()
        .find(|s| s.id == first.stage_ids["closed_won"])
        .unwrap();
    assert_eq!((stage.label.as_str(), stage.is_closed()), ("Closed Won", Some(true)));

    let writes_before = app.write_requests().await;
    let second = app.setup().await;
    assert!(second.created.is_empty(), "{:?}", second.created);
    assert!(second.updated.is_empty(), "{:?}", second.updated);
    assert_eq!(second.pipeline_id, first.pipeline_id);
    assert_eq!(second.stage_ids, first.stage_ids);
    assert_eq!(app.write_requests().await, writes_before, "the second run sent writes");
}

#[tokio::test]
async fn upserts_are_chunked_and_a_second_upsert_updates_without_duplicating() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let inputs: Vec<UpsertInput> = (0..250)
        .map(|i| {
            deal(
                &format!("3f0c2a8e-0000-4000-8000-{i:012}"),
                &report,
                &[("amount", "1000.5")],
            )
        })
        .collect();
    let first = app
        .client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &inputs)
        .await
        .unwrap();
    assert!(first.is_complete(), "{:?}", first.failed);
    assert_eq!(first.succeeded.len(), 250);
    assert!(first.succeeded.iter().all(|(_, u)| u.created));
    assert_eq!(app.sim.request_count(UPSERT, "200"), 3);
    let again = app
        .client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &inputs)
        .await
        .unwrap();
    assert!(again.succeeded.iter().all(|(_, u)| !u.created));
    for ((i, a), (j, b)) in first.succeeded.iter().zip(&again.succeeded) {
        assert_eq!((i, &a.object.id), (j, &b.object.id), "same record for the same key");
    }
    assert_eq!(app.records(ObjectType::Deals).await.len(), 250);
}

#[tokio::test]
async fn a_207_from_the_simulator_fails_only_the_offending_input() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let inputs = [
        deal("k-0", &report, &[("closedate", "2026-06-30")]),
        deal("k-1", &report, &[("closedate", "1635535135865")]),
        deal("k-2", &report, &[]),
    ];
    let outcome = app
        .client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &inputs)
        .await
        .unwrap();
    assert_eq!(
        outcome.succeeded.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(outcome.failed.len(), 1);
    let (index, error) = &outcome.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(error.class(), ErrorClass::Permanent(PermanentKind::Validation));
    assert!(error.to_string().contains("not midnight"), "{error}");
    assert_eq!(error.api().unwrap().object_write_trace_id.as_deref(), Some("1"));
}

#[tokio::test]
async fn records_can_be_created_read_updated_searched_and_archived() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let companies = app
        .client
        .batch_upsert(
            ObjectType::Companies,
            LOCAL_ID_PROPERTY,
            &[UpsertInput {
                id: "company-1".into(),
                properties: props(&[("name", "Acme Federal"), ("b2g_uei", "ABCDEF123456")]),
            }],
        )
        .await
        .unwrap();
    let company_id = companies.succeeded[0].1.object.id.clone();
    let deals = app
        .client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &[deal("deal-1", &report, &[])])
        .await
        .unwrap();
    let deal_id = deals.succeeded[0].1.object.id.clone();

    // Batch create an activity associated with the deal.
    let note = CreateInput {
        properties: props(&[
            ("hs_note_body", "Kickoff"),
            ("hs_timestamp", "2026-03-30T10:00:00.000Z"),
        ]),
        associations: vec![NewAssociation {
            to_id: deal_id.clone(),
            types: vec![AssociationSpec::hubspot_defined(type_ids::NOTE_TO_DEAL)],
        }],
    };
    let notes = app.client.batch_create(ObjectType::Notes, &[note]).await.unwrap();
    assert!(notes.is_complete(), "{:?}", notes.failed);
    let note_id = notes.succeeded[0].1.id.clone();
    let linked = app
        .client
        .batch_read_associations(ObjectType::Notes, ObjectType::Deals, &[note_id.as_str()])
        .await
        .unwrap();
    assert_eq!(
        linked.succeeded[0]
            .1
            .iter()
            .map(|r| r.to_id.as_str())
            .collect::<Vec<_>>(),
        vec![deal_id.as_str()]
    );

    // Batch read by unique value and by id; unknown values are not found.
    let read = app
        .client
        .batch_read(
            ObjectType::Companies,
            &["company-1", "company-404"],
            Some(LOCAL_ID_PROPERTY),
            &["name"],
        )
        .await
        .unwrap();
    assert_eq!(read.succeeded.len(), 1);
    assert_eq!(read.succeeded[0].1.property("name"), Some("Acme Federal"));
    assert_eq!(read.failed[0].0, 1);
    assert!(read.failed[0].1.is_not_found());
    let by_id = app
        .client
        .batch_read(ObjectType::Deals, &[deal_id.as_str()], None, &["dealname"])
        .await
        .unwrap();
    assert_eq!(by_id.succeeded[0].1.property("dealname"), Some("Deal deal-1"));

    // Batch update by id, then single read by unique value.
    let updated = app
        .client
        .batch_update(
            ObjectType::Companies,
            None,
            &[UpdateInput {
                id: company_id.clone(),
                properties: props(&[("b2g_cage_code", "1ABC2")]),
            }],
        )
        .await
        .unwrap();
    assert!(updated.is_complete(), "{:?}", updated.failed);
    let company = app
        .client
        .get_object(
            ObjectType::Companies,
            "company-1",
            Some(LOCAL_ID_PROPERTY),
            &["b2g_cage_code"],
        )
        .await
        .unwrap();
    assert_eq!(company.property("b2g_cage_code"), Some("1ABC2"));

    // Search (own lane).
    let request = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![Filter::new("b2g_uei", Operator::Eq, "ABCDEF123456")],
        }],
        properties: vec!["name".into()],
        ..SearchRequest::default()
    };
    let found = app.client.search_all(ObjectType::Companies, &request).await.unwrap();
    assert_eq!(
        found.results.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        vec![company_id.as_str()]
    );
    assert_eq!(app.client.stats().search_requests, 1);

    // Archive, then the single read is a 404.
    app.client.archive_object(ObjectType::Deals, &deal_id).await.unwrap();
    let gone = app
        .client
        .get_object(ObjectType::Deals, &deal_id, None, &[])
        .await
        .unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn search_pages_through_results_in_pages_of_the_requested_size() {
    let app = SimApp::start().await;
    let inputs: Vec<UpsertInput> = (0..7)
        .map(|i| UpsertInput {
            id: format!("c-{i}"),
            properties: props(&[("name", &format!("Company {i}")), ("b2g_primary_naics", "541512")]),
        })
        .collect();
    app.setup().await;
    app.client
        .batch_upsert(ObjectType::Companies, LOCAL_ID_PROPERTY, &inputs)
        .await
        .unwrap();
    let request = SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![Filter::new("b2g_primary_naics", Operator::Eq, "541512")],
        }],
        limit: 3,
        ..SearchRequest::default()
    };
    let all = app.client.search_all(ObjectType::Companies, &request).await.unwrap();
    assert_eq!(all.results.len(), 7);
    assert_eq!(all.total, 7);
    assert!(!all.capped);
    assert_eq!(app.client.stats().search_requests, 3);
}

#[tokio::test]
async fn associations_are_created_read_defaulted_and_archived() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let company = app
        .client
        .batch_upsert(
            ObjectType::Companies,
            LOCAL_ID_PROPERTY,
            &[UpsertInput {
                id: "co".into(),
                properties: props(&[("name", "Co")]),
            }],
        )
        .await
        .unwrap()
        .succeeded[0]
        .1
        .object
        .id
        .clone();
    let deals = app
        .client
        .batch_upsert(
            ObjectType::Deals,
            LOCAL_ID_PROPERTY,
            &[deal("d1", &report, &[]), deal("d2", &report, &[])],
        )
        .await
        .unwrap();
    let deal_ids: Vec<String> = deals.succeeded.iter().map(|(_, u)| u.object.id.clone()).collect();
    let inputs: Vec<AssociationInput> = deal_ids
        .iter()
        .map(|d| AssociationInput {
            from_id: d.clone(),
            to_id: company.clone(),
            types: vec![AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY_PRIMARY)],
        })
        .collect();
    let made = app
        .client
        .batch_create_associations(ObjectType::Deals, ObjectType::Companies, &inputs)
        .await
        .unwrap();
    assert!(made.is_complete(), "{:?}", made.failed);
    let read = app
        .client
        .batch_read_associations(ObjectType::Deals, ObjectType::Companies, &deal_ids)
        .await
        .unwrap();
    for (_, records) in &read.succeeded {
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].to_id, company);
        assert!(
            records[0]
                .types
                .iter()
                .any(|t| t.type_id == type_ids::DEAL_TO_COMPANY_PRIMARY)
        );
    }

    let contact = app
        .client
        .batch_create(
            ObjectType::Contacts,
            &[CreateInput {
                properties: props(&[("email", "officer@agency.gov")]),
                associations: vec![],
            }],
        )
        .await
        .unwrap()
        .succeeded[0]
        .1
        .id
        .clone();
    let pair = AssociationPair {
        from_id: contact.clone(),
        to_id: company.clone(),
    };
    let defaulted = app
        .client
        .batch_associate_default(ObjectType::Contacts, ObjectType::Companies, std::slice::from_ref(&pair))
        .await
        .unwrap();
    assert!(defaulted.is_complete(), "{:?}", defaulted.failed);
    let archived = app
        .client
        .batch_archive_associations(ObjectType::Contacts, ObjectType::Companies, &[pair])
        .await
        .unwrap();
    assert!(archived.is_complete(), "{:?}", archived.failed);
    let after = app
        .client
        .batch_read_associations(ObjectType::Contacts, ObjectType::Companies, &[contact.as_str()])
        .await
        .unwrap();
    assert!(after.succeeded[0].1.is_empty());
}

#[tokio::test]
async fn properties_groups_and_pipelines_are_listed() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let properties = app.client.list_properties(ObjectType::Deals).await.unwrap();
    assert!(properties.iter().any(|p| p.name == "b2g_match_score"));
    let groups = app.client.list_property_groups(ObjectType::Deals).await.unwrap();
    assert!(groups.iter().any(|g| g.name == "b2g"));
    let group = app.client.get_property_group(ObjectType::Deals, "b2g").await.unwrap();
    assert_eq!(group.label, "B2G");
    let pipelines = app.client.list_pipelines(ObjectType::Deals).await.unwrap();
    assert!(
        pipelines.iter().any(|p| p.id == "default"),
        "HubSpot's default pipeline"
    );
    assert!(pipelines.iter().any(|p| p.id == report.pipeline_id));
}

#[tokio::test]
async fn a_wrong_token_is_a_permanent_unauthorized_error() {
    let app = SimApp::with(SimConfig::default(), |c| c.access_token = SecretString::from("wrong")).await;
    let err = app.client.list_pipelines(ObjectType::Deals).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent(PermanentKind::Unauthorized));
    assert_eq!(app.sim.total_requests(), 1, "not retried");
}

#[tokio::test]
async fn injected_server_errors_and_locks_are_retried_to_success() {
    let app = SimApp::start().await;
    app.sim.set_faults(FaultConfig {
        next: vec![
            FaultKind::BadGateway,
            FaultKind::Unavailable,
            FaultKind::InternalError,
            FaultKind::Locked,
        ],
        ..FaultConfig::default()
    });
    let mut config = app.client.config().clone();
    config.max_retries = 5;
    let client = HubSpotClient::new(config).unwrap();
    let pipelines = client.list_pipelines(ObjectType::Deals).await.unwrap();
    assert!(!pipelines.is_empty());
    let stats = client.stats();
    assert_eq!((stats.retries, stats.responses_5xx, stats.requests_sent), (4, 3, 5));
}

#[tokio::test]
async fn a_write_dropped_after_it_was_applied_is_retried_without_a_duplicate() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    app.sim.set_faults(FaultConfig {
        next: vec![FaultKind::DropAfterWrite],
        ..FaultConfig::default()
    });
    let outcome = app
        .client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &[deal("once", &report, &[])])
        .await
        .unwrap();
    assert!(outcome.is_complete(), "{:?}", outcome.failed);
    assert_eq!(app.sim.request_count(UPSERT, "dropped"), 1);
    assert_eq!(app.client.stats().transport_errors, 1);
    assert_eq!(
        app.records(ObjectType::Deals).await.len(),
        1,
        "the upsert key prevented a duplicate"
    );
}

#[tokio::test]
async fn a_create_dropped_after_it_was_applied_is_reported_not_resent() {
    let app = SimApp::start().await;
    app.sim.set_faults(FaultConfig {
        next: vec![FaultKind::DropAfterWrite],
        ..FaultConfig::default()
    });
    let err = app
        .client
        .batch_create(
            ObjectType::Notes,
            &[CreateInput {
                properties: props(&[("hs_timestamp", "2026-03-30T10:00:00.000Z")]),
                associations: vec![],
            }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, HubSpotError::Transport { not_sent: false, .. }),
        "{err:?}"
    );
    assert!(err.class().is_retryable());
    assert_eq!(
        app.records(ObjectType::Notes).await.len(),
        1,
        "applied once, not resent"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_as_a_retryable_error() {
    let app = SimApp::with(SimConfig::default(), |c| {
        c.request_timeout = Duration::from_millis(300);
        c.max_retries = 0;
    })
    .await;
    app.sim.set_faults(FaultConfig {
        slow_delay_ms: 2_000,
        next: vec![FaultKind::Slow],
        ..FaultConfig::default()
    });
    let err = app.client.list_pipelines(ObjectType::Deals).await.unwrap_err();
    assert!(matches!(err, HubSpotError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Retryable { suggested_wait: None });
}

#[tokio::test]
async fn the_daily_limit_stops_calls_without_retrying() {
    let app = SimApp::with(
        SimConfig {
            daily_limit: 2,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    app.client.list_pipelines(ObjectType::Deals).await.unwrap();
    app.client.list_pipelines(ObjectType::Deals).await.unwrap();
    // The second answer said X-HubSpot-RateLimit-Daily-Remaining: 0, so the third call is refused locally.
    let err = app.client.list_pipelines(ObjectType::Deals).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Daily);
    assert!(matches!(err, HubSpotError::DailyLimitSpent { .. }), "{err:?}");
    assert_eq!(app.sim.total_requests(), 2, "nothing sent once the budget was spent");
    assert_eq!(app.client.stats().retries, 0);
}

#[tokio::test]
async fn after_a_daily_429_later_calls_fail_locally_until_the_reset_without_sending() {
    let app = SimApp::with(
        SimConfig {
            daily_limit: 1,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    // Another process of the account spends the day's last request.
    app.client.list_pipelines(ObjectType::Deals).await.unwrap();
    let other = HubSpotClient::new(app.client.config().clone()).unwrap();
    assert_eq!(other.daily_limit_spent_until(), None);
    let first = other.list_pipelines(ObjectType::Deals).await.unwrap_err();
    assert_eq!(first.class(), ErrorClass::Daily);
    assert_eq!(first.api().unwrap().policy_name.as_deref(), Some("DAILY"));
    assert_eq!(app.sim.outcome_count("429"), 1);

    let until = other
        .daily_limit_spent_until()
        .expect("the client remembers the spent limit");
    let now = chrono::Utc::now();
    assert!(until > now && until - now <= chrono::Duration::days(1), "{until}");
    assert_eq!(until.time(), chrono::NaiveTime::MIN, "midnight UTC");
    for _ in 0..3 {
        let err = other.list_pipelines(ObjectType::Deals).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Daily);
        assert!(
            matches!(err, HubSpotError::DailyLimitSpent { until: u, .. } if u == until),
            "{err:?}"
        );
    }
    let inputs: Vec<UpsertInput> = (0..250)
        .map(|i| UpsertInput {
            id: format!("k-{i}"),
            properties: props(&[("name", "Co")]),
        })
        .collect();
    let upsert = other
        .batch_upsert(ObjectType::Companies, LOCAL_ID_PROPERTY, &inputs)
        .await
        .unwrap_err();
    assert_eq!(upsert.class(), ErrorClass::Daily);
    let search = other
        .search_page(ObjectType::Deals, &SearchRequest::default(), None)
        .await
        .unwrap_err();
    assert_eq!(search.class(), ErrorClass::Daily);
    assert_eq!(app.sim.total_requests(), 2, "the refused calls were never sent");
    assert_eq!(other.stats().requests_sent, 1);
}

#[tokio::test]
async fn two_processes_sharing_one_apps_window_stay_under_it_by_keeping_to_the_floor() {
    // Both clients believe they have the whole 100 per 10 s; only the server's Remaining tells them about each
    // other. Without the floor they would send about twice the limit.
    let app = SimApp::start().await;
    let other = HubSpotClient::new(app.client.config().clone()).unwrap();
    let mine = (0..150).map(|_| app.client.list_pipelines(ObjectType::Deals));
    let theirs = (0..150).map(|_| other.list_pipelines(ObjectType::Deals));
    let (mine, theirs) = tokio::join!(futures::future::join_all(mine), futures::future::join_all(theirs));
    assert!(mine.iter().chain(&theirs).all(Result::is_ok));
    assert_eq!(app.sim.outcome_count("429"), 0, "the shared window was never exceeded");
    let (a, b) = (app.client.stats(), other.stats());
    assert_eq!((a.responses_429, b.responses_429), (0, 0));
    assert_eq!(a.requests_sent + b.requests_sent, 300);
    assert!(a.limiter_pauses > 0 && b.limiter_pauses > 0, "{a:?} {b:?}");
}

#[tokio::test]
async fn a_client_configured_above_the_portal_limit_recovers_from_ten_secondly_429s() {
    // The simulator allows 5 per 2 s; the client believes 1,000 per second until HubSpot's headers tell it.
    let app = SimApp::with(
        SimConfig {
            requests_per_window: 5,
            rate_window: Duration::from_secs(2),
            ..SimConfig::default()
        },
        |c| c.rate_limit = RateLimitConfig::new(1_000, Duration::from_secs(1)),
    )
    .await;
    // Another process of the app spends the window first, so this client's first request meets a 429 before any
    // header has told it the real limit (the client slows down on the headers alone, so without this the first
    // 429 would depend on timing).
    let other = HubSpotClient::new(app.client.config().clone()).unwrap();
    for _ in 0..5 {
        other.list_pipelines(ObjectType::Deals).await.unwrap();
    }
    let calls = (0..20).map(|_| app.client.list_pipelines(ObjectType::Deals));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "every call retried to success");
    let stats = app.client.stats();
    assert!(stats.responses_429 >= 1, "the portal limit was hit: {stats:?}");
    assert_eq!(stats.retries, stats.responses_429);
    assert_eq!(app.sim.outcome_count("429"), stats.responses_429);
}

#[tokio::test]
async fn the_limiter_holds_a_burst_of_a_thousand_calls_without_a_single_429() {
    // 100 per 1 s on both sides, so the burst takes about 10 s rather than 100 s.
    let app = SimApp::with(
        SimConfig {
            requests_per_window: 100,
            rate_window: Duration::from_secs(1),
            ..SimConfig::default()
        },
        |c| {
            // Slack for arrival jitter on a loaded test machine (the default is 5 % of the window).
            c.rate_limit.latency_allowance = Duration::from_millis(100);
            c.max_concurrency = 8;
        },
    )
    .await;
    let calls = (0..1_000).map(|_| app.client.list_pipelines(ObjectType::Deals));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(app.sim.outcome_count("429"), 0);
    let stats = app.client.stats();
    assert_eq!((stats.responses_429, stats.requests_sent), (0, 1_000));
}

#[tokio::test]
async fn searches_keep_to_five_per_second_without_a_429() {
    let app = SimApp::start().await;
    let request = SearchRequest::default();
    let calls = (0..12).map(|_| app.client.search_page(ObjectType::Deals, &request, None));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(app.sim.outcome_count("429"), 0);
    assert_eq!(app.client.stats().search_requests, 12);
}

fn note(body: &str, timestamp: Option<&str>) -> CreateInput {
    let mut properties = props(&[("hs_note_body", body)]);
    if let Some(at) = timestamp {
        properties.insert("hs_timestamp".into(), at.into());
    }
    CreateInput {
        properties,
        associations: vec![],
    }
}

#[tokio::test]
async fn a_batch_create_with_one_invalid_note_maps_both_successes_and_the_error_to_their_inputs() {
    let app = SimApp::start().await;
    let inputs = [
        note("first", Some("2026-03-30T10:00:00.000Z")),
        note("no timestamp", None),
        note("third", Some("2026-03-30T11:00:00.000Z")),
    ];
    let outcome = app.client.batch_create(ObjectType::Notes, &inputs).await.unwrap();
    assert_eq!(
        app.sim
            .request_count("POST /crm/objects/{version}/{object_type}/batch/create", "207"),
        1
    );
    let succeeded: Vec<(usize, Option<&str>, Option<&str>)> = outcome
        .succeeded
        .iter()
        .map(|(i, o)| (*i, o.property("hs_note_body"), o.object_write_trace_id.as_deref()))
        .collect();
    assert_eq!(
        succeeded,
        vec![(0, Some("first"), Some("0")), (2, Some("third"), Some("2"))]
    );
    assert_eq!(outcome.failed.len(), 1, "{:?}", outcome.failed);
    let (index, error) = &outcome.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(error.class(), ErrorClass::Permanent(PermanentKind::Validation));
    let api = error.api().expect("HubSpot's per-input error");
    assert_eq!(api.object_write_trace_id.as_deref(), Some("1"));
    assert!(api.message.contains("hs_timestamp"), "{}", api.message);
    assert!(api.correlation_id.is_some(), "per-input errors carry a correlationId");
    assert_eq!(app.records(ObjectType::Notes).await.len(), 2);
}

#[tokio::test]
async fn association_errors_map_back_to_their_own_pairs() {
    let app = SimApp::start().await;
    let report = app.setup().await;
    let company = app
        .client
        .batch_upsert(
            ObjectType::Companies,
            LOCAL_ID_PROPERTY,
            &[UpsertInput {
                id: "co".into(),
                properties: props(&[("name", "Co")]),
            }],
        )
        .await
        .unwrap()
        .succeeded[0]
        .1
        .object
        .id
        .clone();
    let deals = app
        .client
        .batch_upsert(
            ObjectType::Deals,
            LOCAL_ID_PROPERTY,
            &[
                deal("a", &report, &[]),
                deal("b", &report, &[]),
                deal("c", &report, &[]),
            ],
        )
        .await
        .unwrap();
    let deal_ids: Vec<String> = deals.succeeded.iter().map(|(_, u)| u.object.id.clone()).collect();
    // Two different companies that do not exist, around one that does.
    let targets = ["990001", company.as_str(), "990002"];
    let inputs: Vec<AssociationInput> = deal_ids
        .iter()
        .zip(targets)
        .map(|(d, to)| AssociationInput {
            from_id: d.clone(),
            to_id: to.to_owned(),
            types: vec![AssociationSpec::hubspot_defined(type_ids::DEAL_TO_COMPANY)],
        })
        .collect();
    let made = app
        .client
        .batch_create_associations(ObjectType::Deals, ObjectType::Companies, &inputs)
        .await
        .unwrap();
    assert_eq!(made.succeeded.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    let failed: Vec<(usize, String)> = made
        .failed
        .iter()
        .map(|(i, e)| {
            (
                *i,
                e.api().map(|a| a.message.clone()).unwrap_or_else(|| format!("{e:?}")),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, 0);
    assert!(failed[0].1.contains("990001"), "{failed:?}");
    assert_eq!(failed[1].0, 2);
    assert!(failed[1].1.contains("990002"), "{failed:?}");
    assert!(made.failed.iter().all(|(_, e)| e.is_not_found()));

    // Default-associate reports its per-pair errors the same way.
    let pairs: Vec<AssociationPair> = deal_ids
        .iter()
        .zip(targets)
        .map(|(d, to)| AssociationPair {
            from_id: d.clone(),
            to_id: to.to_owned(),
        })
        .collect();
    let defaulted = app
        .client
        .batch_associate_default(ObjectType::Deals, ObjectType::Companies, &pairs)
        .await
        .unwrap();
    assert_eq!(defaulted.succeeded.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1]);
    assert_eq!(defaulted.failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
    assert!(
        defaulted.failed.iter().all(|(_, e)| e.is_not_found()),
        "{:?}",
        defaulted.failed
    );
}

#[tokio::test]
async fn a_duplicate_unique_value_in_a_batch_create_is_a_conflict_naming_the_existing_id() {
    let app = SimApp::start().await;
    let contact = |email: &str| CreateInput {
        properties: props(&[("email", email)]),
        associations: vec![],
    };
    let first = app
        .client
        .batch_create(ObjectType::Contacts, &[contact("officer@agency.gov")])
        .await
        .unwrap();
    let existing = first.succeeded[0].1.id.clone();
    let outcome = app
        .client
        .batch_create(
            ObjectType::Contacts,
            &[contact("new@agency.gov"), contact("Officer@Agency.gov")],
        )
        .await
        .unwrap();
    assert_eq!(outcome.succeeded.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0]);
    let (index, error) = &outcome.failed[0];
    assert_eq!(*index, 1);
    assert_eq!(
        error.class(),
        ErrorClass::Permanent(PermanentKind::Conflict {
            existing_id: Some(existing.clone())
        })
    );
    assert_eq!(error.api().unwrap().existing_id.as_deref(), Some(existing.as_str()));
    assert_eq!(app.records(ObjectType::Contacts).await.len(), 2);
}

#[tokio::test]
async fn archiving_an_unknown_record_succeeds_like_hubspots_204() {
    let app = SimApp::start().await;
    app.client.archive_object(ObjectType::Deals, "987654321").await.unwrap();
    assert_eq!(
        app.sim
            .request_count("DELETE /crm/objects/{version}/{object_type}/{object_id}", "204"),
        1
    );
}

#[tokio::test]
async fn injected_477_504_and_524_answers_are_retried_to_success() {
    let app = SimApp::with(SimConfig::default(), |c| c.max_retries = 5).await;
    app.sim.set_faults(FaultConfig {
        next: vec![
            FaultKind::MigrationInProgress,
            FaultKind::GatewayTimeout,
            FaultKind::OriginTimeout,
        ],
        migration_retry_after_secs: 1,
        ..FaultConfig::default()
    });
    let started = std::time::Instant::now();
    let pipelines = app.client.list_pipelines(ObjectType::Deals).await.unwrap();
    assert!(!pipelines.is_empty());
    let stats = app.client.stats();
    assert_eq!((stats.retries, stats.responses_5xx, stats.requests_sent), (3, 2, 4));
    for outcome in ["477", "504", "524", "200"] {
        assert_eq!(app.sim.outcome_count(outcome), 1, "{outcome}");
    }
    // The 477's Retry-After of 1 s was honoured (a lower bound, independent of machine speed).
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_403_missing_scopes_answer_is_permanent_and_not_retried() {
    let app = SimApp::start().await;
    app.sim.set_faults(FaultConfig {
        next: vec![FaultKind::Forbidden],
        ..FaultConfig::default()
    });
    let err = app.client.list_pipelines(ObjectType::Deals).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent(PermanentKind::Forbidden));
    assert_eq!(err.api().unwrap().category.as_deref(), Some("MISSING_SCOPES"));
    assert_eq!(app.sim.total_requests(), 1, "not retried");
    assert_eq!(app.client.stats().retries, 0);
}

#[tokio::test]
async fn setup_repairs_a_drifted_and_a_deleted_stage_and_a_third_run_changes_nothing() {
    use crmsync_hubspot::pipelines::{PipelinePatch, StagePatch};

    let app = SimApp::start().await;
    let first = app.setup().await;
    let pipeline = first.pipeline_id.clone();
    // A portal admin edits the pipeline: Qualified's probability changes, Negotiation is deleted, and the
    // pipeline moves in the list (which setup leaves alone).
    let drifted = app
        .client
        .update_pipeline_stage(
            ObjectType::Deals,
            &pipeline,
            &first.stage_ids["qualified"],
            &StagePatch {
                metadata: props(&[("probability", "0.9"), ("isClosed", "false")]),
                ..StagePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(drifted.probability(), Some("0.9".parse().unwrap()));
    let moved = app
        .client
        .update_pipeline(
            ObjectType::Deals,
            &pipeline,
            &PipelinePatch {
                display_order: Some(5),
                ..PipelinePatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((moved.label.as_str(), moved.display_order), (PIPELINE_LABEL, 5));
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/crm/pipelines/2026-03/deals/{pipeline}/stages/{}",
            app.sim.base_url(),
            first.stage_ids["negotiation"]
        ))
        .bearer_auth(app.sim.access_token())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    let second = app.setup().await;
    assert_eq!(second.updated, vec!["deals pipeline stage Qualified".to_owned()]);
    assert_eq!(second.created, vec!["deals pipeline stage Negotiation".to_owned()]);
    assert_eq!(second.pipeline_id, pipeline);
    assert_eq!(second.stage_ids["qualified"], first.stage_ids["qualified"]);
    assert_ne!(second.stage_ids["negotiation"], first.stage_ids["negotiation"]);
    let repaired = app.client.get_pipeline(ObjectType::Deals, &pipeline).await.unwrap();
    for spec in STAGES {
        let stage = repaired
            .stages
            .iter()
            .find(|s| s.id == second.stage_ids[spec.key])
            .unwrap_or_else(|| panic!("stage {} in the simulator", spec.label));
        assert_eq!(
            (stage.label.as_str(), stage.probability(), stage.is_closed()),
            (spec.label, Some(spec.probability()), Some(spec.closed))
        );
    }
    assert_eq!(repaired.stages.len(), STAGES.len());

    let writes_before = app.write_requests().await;
    let third = app.setup().await;
    assert!(third.created.is_empty() && third.updated.is_empty(), "{third:?}");
    assert_eq!(third.stage_ids, second.stage_ids);
    assert_eq!(app.write_requests().await, writes_before, "the third run sent writes");
}

#[tokio::test]
async fn two_setups_racing_each_other_both_succeed_with_one_pipeline() {
    let app = SimApp::start().await;
    let other = HubSpotClient::new(app.client.config().clone()).unwrap();
    let (a, b) = tokio::join!(ensure_b2g_setup(&app.client), ensure_b2g_setup(&other));
    let (a, b) = (a.expect("first setup"), b.expect("second setup"));
    assert_eq!(a.pipeline_id, b.pipeline_id);
    assert_eq!(a.stage_ids, b.stage_ids);
    let state = app.admin("state").await;
    let ours = state["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["label"] == PIPELINE_LABEL)
        .count();
    assert_eq!(ours, 1);
    let unique = app
        .client
        .get_property(ObjectType::Deals, LOCAL_ID_PROPERTY)
        .await
        .unwrap();
    assert!(unique.has_unique_value);
}

#[tokio::test]
async fn history_reads_go_50_per_call_and_archived_records_are_listed_page_by_page() {
    let app = SimApp::start().await;
    app.setup().await;
    let inputs: Vec<CreateInput> = (0..120)
        .map(|i| CreateInput {
            properties: props(&[("name", &format!("Company {i}"))]),
            associations: Vec::new(),
        })
        .collect();
    let created = app.client.batch_create(ObjectType::Companies, &inputs).await.unwrap();
    let ids: Vec<String> = created.succeeded.iter().map(|(_, o)| o.id.clone()).collect();
    let update = UpdateInput {
        id: ids[0].clone(),
        properties: props(&[("name", "Renamed")]),
    };
    app.client
        .batch_update(ObjectType::Companies, None, &[update])
        .await
        .unwrap();

    let read_calls = |app: &SimApp| {
        app.sim
            .request_count("POST /crm/objects/{version}/{object_type}/batch/read", "200")
    };
    let before = read_calls(&app);
    let read = app
        .client
        .batch_read_with_history(ObjectType::Companies, &ids, &["name"], &["name"])
        .await
        .unwrap();
    assert!(read.is_complete(), "{:?}", read.failed);
    assert_eq!(read_calls(&app) - before, 3, "120 records at most 50 per call");
    let first = read.succeeded.iter().find(|(_, o)| o.id == ids[0]).unwrap();
    let latest = first.1.latest_version("name").expect("history of name");
    assert_eq!(latest.value.as_deref(), Some("Renamed"));
    assert_eq!(latest.source_type.as_deref(), Some("INTEGRATION"));
    assert_eq!(first.1.properties_with_history["name"].len(), 2);
    assert!(latest.timestamp.is_some());

    for id in &ids[..3] {
        app.client.archive_object(ObjectType::Companies, id).await.unwrap();
    }
    let mut archived = Vec::new();
    let mut after = None;
    loop {
        let request = crmsync_hubspot::ListRequest {
            limit: 2,
            after: after.clone(),
            properties: vec!["name".into()],
            archived: true,
        };
        let page = app.client.list_page(ObjectType::Companies, &request).await.unwrap();
        archived.extend(page.results);
        after = page.after;
        if after.is_none() {
            break;
        }
    }
    let archived_ids: Vec<&str> = archived.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(archived_ids, ids[..3].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(archived.iter().all(|o| o.archived && o.archived_at.is_some()));
    let too_big = crmsync_hubspot::ListRequest {
        limit: 101,
        ..Default::default()
    };
    assert!(matches!(
        app.client.list_page(ObjectType::Companies, &too_big).await,
        Err(HubSpotError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn setup_whose_every_write_is_dropped_after_it_was_applied_reads_back_finishes_and_a_second_run_changes_nothing()
{
    let app = SimApp::start().await;
    app.sim.set_faults(FaultConfig {
        drop_after_write_rate: 1.0,
        ..FaultConfig::default()
    });
    let first = app.setup().await;
    assert!(
        app.sim.outcome_count("dropped") >= 3,
        "the writes' answers were dropped"
    );
    assert_eq!(first.stage_ids.len(), STAGES.len());
    assert!(
        first
            .created
            .iter()
            .any(|c| c == &format!("deals pipeline {PIPELINE_LABEL}")),
        "{first:?}"
    );
    let unique = app
        .client
        .get_property(ObjectType::Deals, LOCAL_ID_PROPERTY)
        .await
        .unwrap();
    assert!(unique.has_unique_value);

    app.sim.set_faults(FaultConfig::default());
    let second = app.setup().await;
    assert!(second.created.is_empty() && second.updated.is_empty(), "{second:?}");
    assert_eq!(
        (second.pipeline_id, second.stage_ids),
        (first.pipeline_id, first.stage_ids)
    );
    let state = app.admin("state").await;
    let ours = state["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["label"] == PIPELINE_LABEL)
        .count();
    assert_eq!(ours, 1, "no duplicate pipeline");
}
