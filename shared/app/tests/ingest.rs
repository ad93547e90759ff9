//! Match ingestion against a real PostgreSQL: a fresh database per test, cloned from a migrated template.

use std::ops::Deref;

use crmsync_app::ingest::ingest_matches;
use crmsync_db::PgMatchStore;
use crmsync_domain::ingest::{IngestReport, Rejection};
use crmsync_testkit::{Company, Deal, QueueRow, TestApp};
use serde_json::{Value, json};
use uuid::Uuid;

fn contractor(n: usize) -> Value {
    json!({
        "uei": format!("UEI{n:09}"),
        "name": format!("Contractor {n}"),
        "cage_code": format!("C{n:04}"),
        "city": "Arlington", "state": "VA", "primary_naics": "541512",
        "sam_registered": true,
        "readiness_score": if n.is_multiple_of(2) { json!(85) } else { json!(79.99) },
    })
}

fn opportunity(n: usize) -> Value {
    json!({
        "notice_id": format!("NOTICE-{n}"),
        "title": format!("Opportunity {n}: enterprise cloud modernization and support services"),
        "agency": "General Services Administration",
        "naics_code": "541512",
        "estimated_value": 100000 + n,
        "deadline": "2027-06-30",
        "priority_flag": if n.is_multiple_of(3) { "FAST_TRACK" } else { "STANDARD" },
    })
}

fn embedded(opportunity_n: usize, contractor_n: usize, score: f64) -> Value {
    json!({ "opportunity": opportunity(opportunity_n), "contractor": contractor(contractor_n), "match_score": score })
}

/// The app on a fresh database with the match store ingestion writes through.
struct IngestApp {
    app: TestApp,
    store: PgMatchStore,
}

impl Deref for IngestApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl IngestApp {
    async fn spawn() -> Self {
        let app = TestApp::new().await;
        let store = app.match_store();
        Self { app, store }
    }

    /// Ingests and returns the report's counts (round trips zeroed; a dedicated test checks them).
    async fn ingest(&self, event: Value) -> IngestReport {
        IngestReport {
            round_trips: 0,
            ..self.app.ingest(&event).await
        }
    }

    async fn client(&self) -> crmsync_db::Connection {
        self.pool().get().await.expect("client")
    }
}

#[tokio::test]
async fn a_new_match_creates_a_company_a_deal_and_two_queue_rows_by_the_guides_rules() {
    let app = IngestApp::spawn().await;
    let mut item = embedded(3, 2, 85.625);
    item["opportunity"]["title"] =
        json!("Système de gestion des données géospatiales pour l'agence fédérale — phase 2");
    let report = app.ingest(json!({ "matches": [item] })).await;
    assert_eq!(
        report,
        IngestReport {
            companies_created: 1,
            deals_created: 1,
            queued: 2,
            ..IngestReport::default()
        }
    );

    let company = app.single_company().await;
    assert_eq!(company.name, "Contractor 2");
    assert_eq!(company.uei.as_deref(), Some("UEI000000002"));
    assert_eq!(company.qualification_status, "qualified");
    assert_eq!(company.lifecycle_stage, "lead");
    assert_eq!(company.hubspot_sync_status, "pending");
    assert_eq!(company.readiness_score.as_deref(), Some("85.00"));
    let contractor: Uuid = app
        .scalar("SELECT id FROM contractors WHERE uei = 'UEI000000002'")
        .await;
    assert_eq!(
        company.contractor_id,
        Some(contractor),
        "the company is linked to its contractor"
    );

    let deal = app.single_deal().await;
    assert_eq!(
        deal.deal_name, "Système de gestion des données géospatiales pour l - Contractor 2",
        "50 characters of the title, not 50 bytes"
    );
    assert_eq!(deal.deal_value.as_deref(), Some("100003.00"));
    assert_eq!(deal.expected_close_date.as_deref(), Some("2027-06-30"));
    assert_eq!(deal.pipeline, "b2g_opportunities");
    assert_eq!(deal.stage, "new_match");
    assert_eq!(deal.match_score.as_deref(), Some("85.625"));
    assert_eq!(
        deal.win_probability,
        Some(69),
        "round(85.625 × 0.8 = 68.5) rounds half up"
    );
    assert_eq!(deal.priority, "high", "notice 3 is FAST_TRACK");
    assert_eq!(deal.hubspot_sync_status, "pending");
    assert!(deal.closed_at.is_none());
    let the_match = &app.rows("SELECT id, opportunity_id FROM matches").await[0];
    assert_eq!(
        (deal.match_id, deal.opportunity_id, deal.company_id),
        (Some(the_match.get(0)), Some(the_match.get(1)), Some(company.id)),
        "linked rows"
    );

    let queue = app.select::<QueueRow>("ORDER BY entity_type", &[]).await;
    assert_eq!(queue.len(), 2);
    assert_eq!(
        (queue[0].entity_type.as_str(), queue[0].operation.as_str()),
        ("company", "create")
    );
    assert_eq!(queue[0].entity_id, company.id);
    assert_eq!(
        (queue[1].entity_type.as_str(), queue[1].operation.as_str()),
        ("deal", "create")
    );
    assert_eq!(queue[1].status, "pending");
    assert_eq!(
        queue[1].payload,
        json!({ "deal_id": deal.id, "company_id": company.id, "opportunity_id": "NOTICE-3" }),
        "the guide's payload: the opportunity is named by its notice_id"
    );
    assert_eq!(
        app.count(
            "crmsync.ingest_deliveries WHERE source = 'test' AND rejected = 0 AND (summary->>'deals_created')::int = 1"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("workflow_logs").await,
        0,
        "workflow_logs is the upstream workflow's; crmsync keeps its records in its own schema"
    );
}

#[tokio::test]
async fn redelivering_a_batch_adds_no_rows_and_no_queue_entries() {
    let app = IngestApp::spawn().await;
    let event = json!({ "matches": (0..30).map(|i| embedded(i, i % 7, 60.0 + i as f64)).collect::<Vec<_>>() });
    let first = app.ingest(event.clone()).await;
    assert_eq!(
        (first.companies_created, first.deals_created, first.queued),
        (7, 30, 37)
    );
    let tables = "SELECT (SELECT count(*) FROM opportunities) + (SELECT count(*) FROM contractors) * 1000
                        + (SELECT count(*) FROM matches) * 1000000 + (SELECT count(*) FROM companies) * 1000000000
                        + (SELECT count(*) FROM deals) * 1000000000000 + (SELECT count(*) FROM sync_queue) * 1000000000000000";
    let before = app.scalar::<i64>(tables).await;
    let updated_before = app.count("deals WHERE updated_at = created_at").await;

    let second = app.ingest(event).await;
    assert_eq!(
        second,
        IngestReport {
            unchanged: 30,
            ..IngestReport::default()
        }
    );
    assert_eq!(app.scalar::<i64>(tables).await, before);
    assert_eq!(
        app.count("deals WHERE updated_at = created_at").await,
        updated_before,
        "no row touched"
    );
}

#[tokio::test]
async fn changed_contractor_data_updates_the_company_and_queues_one_update() {
    let app = IngestApp::spawn().await;
    app.ingest(json!({ "matches": [embedded(1, 1, 70.0), embedded(2, 1, 75.0)] }))
        .await;
    let mut changed = embedded(1, 1, 70.0);
    changed["contractor"]["readiness_score"] = json!(92);
    changed["contractor"]["phone"] = json!("+1 703 555 0100");
    let report = app.ingest(changed).await;
    assert_eq!(
        report,
        IngestReport {
            companies_updated: 1,
            queued: 1,
            ..IngestReport::default()
        }
    );
    let company = app.single_company().await;
    assert_eq!(company.qualification_status, "qualified", "79.99 became 92");
    assert_eq!(company.phone.as_deref(), Some("+1 703 555 0100"));
    let ops: Vec<String> = app
        .select::<QueueRow>("WHERE entity_type = 'company' ORDER BY created_at, operation", &[])
        .await
        .into_iter()
        .map(|row| row.operation)
        .collect();
    assert_eq!(ops, vec!["create", "update"]);
}

/// Applies HubSpot edits as the webhook applier does (crmsync_db::hubspot_records: the column, then the field's
/// change time and hash as HubSpot's), and marks everything synced: company website and phone, deal priority.
async fn apply_hubspot_edits(app: &IngestApp) -> (Uuid, Uuid) {
    use crmsync_db::property_changes::ChangeSet;
    use crmsync_domain::webhook::ObjectKind;
    let company_id = app.single_company().await.id;
    let deal_id = app.single_deal().await.id;
    let client = app.client().await;
    client
        .batch_execute(
            "UPDATE companies SET hubspot_company_id = 'hs-company-1', hubspot_sync_status = 'synced';
             UPDATE deals SET hubspot_deal_id = 'hs-deal-1', hubspot_sync_status = 'synced';
             UPDATE sync_queue SET status = 'completed';",
        )
        .await
        .unwrap();
    let at = chrono::Utc::now();
    let edits = [
        (
            ObjectKind::Company,
            company_id,
            "website",
            "website",
            "https://acme-from-hubspot.example",
        ),
        (ObjectKind::Company, company_id, "phone", "phone", "+1 202 555 0199"),
        (ObjectKind::Deal, deal_id, "priority", "hs_priority", "low"),
    ];
    let mut writes = ChangeSet::default();
    for (kind, id, column, property, value) in edits {
        writes
            .columns
            .entry((kind, column))
            .or_default()
            .insert(id, Some(value.to_owned()));
        writes.hubspot_changes.insert((kind, id, column), at);
        writes
            .hashes
            .insert((kind, id, property.to_owned()), Some("hash-from-hubspot".to_owned()));
    }
    writes.write(&client).await.unwrap();
    (company_id, deal_id)
}

#[tokio::test]
async fn redelivering_an_unchanged_match_keeps_hubspot_edits_and_queues_nothing() {
    let app = IngestApp::spawn().await;
    let mut event = embedded(1, 1, 70.0);
    event["contractor"]["website"] = json!("https://acme.example");
    event["contractor"]["phone"] = json!("+1 703 555 0100");
    app.ingest(event.clone()).await;
    apply_hubspot_edits(&app).await;
    let updated_at = "SELECT (SELECT updated_at FROM companies)::text || (SELECT updated_at FROM deals)::text";
    let before: String = app.scalar(updated_at).await;

    let report = app.ingest(event).await;
    assert_eq!(
        report,
        IngestReport {
            unchanged: 1,
            ..IngestReport::default()
        }
    );
    let company = app.single_company().await;
    assert_eq!(company.website.as_deref(), Some("https://acme-from-hubspot.example"));
    assert_eq!(company.phone.as_deref(), Some("+1 202 555 0199"));
    assert_eq!(company.hubspot_sync_status, "synced");
    let deal = app.single_deal().await;
    assert_eq!(
        (deal.priority.as_str(), deal.hubspot_sync_status.as_str()),
        ("low", "synced")
    );
    assert_eq!(
        app.count("sync_queue WHERE status <> 'completed'").await,
        0,
        "nothing queued"
    );
    assert_eq!(
        app.count("crmsync.field_changes WHERE source = 'local'").await,
        0,
        "no local change recorded over HubSpot's"
    );
    let after: String = app.scalar(updated_at).await;
    assert_eq!(before, after, "neither row touched");
}

#[tokio::test]
async fn a_real_contractor_change_updates_only_the_fields_it_changed_and_queues_an_update() {
    let app = IngestApp::spawn().await;
    let mut event = embedded(1, 1, 70.0);
    event["contractor"]["website"] = json!("https://acme.example");
    event["contractor"]["phone"] = json!("+1 703 555 0100");
    app.ingest(event.clone()).await;
    apply_hubspot_edits(&app).await;

    // SAM renames the contractor and changes its phone; its website stays as it was.
    event["contractor"]["name"] = json!("Acme Federal Holdings");
    event["contractor"]["phone"] = json!("+1 571 555 0123");
    let report = app.ingest(event.clone()).await;
    assert_eq!(
        report,
        IngestReport {
            companies_updated: 1,
            deals_updated: 1,
            queued: 2,
            ..IngestReport::default()
        }
    );
    let company = app.single_company().await;
    assert_eq!(company.name, "Acme Federal Holdings");
    assert_eq!(
        company.website.as_deref(),
        Some("https://acme-from-hubspot.example"),
        "the website did not change in SAM: HubSpot's edit stays"
    );
    assert_eq!(
        company.phone.as_deref(),
        Some("+1 571 555 0123"),
        "the newer SAM phone wins"
    );
    assert_eq!(company.hubspot_sync_status, "pending");
    let deal = app.single_deal().await;
    assert!(deal.deal_name.ends_with(" - Acme Federal Holdings"));
    assert_eq!(deal.priority, "low", "the priority's source did not change");
    assert_eq!(deal.hubspot_sync_status, "pending");
    let queued: Vec<(String, String)> = app
        .select::<QueueRow>("WHERE status = 'pending' ORDER BY entity_type", &[])
        .await
        .into_iter()
        .map(|row| (row.entity_type, row.operation))
        .collect();
    assert_eq!(
        queued,
        vec![("company".into(), "update".into()), ("deal".into(), "update".into())]
    );
    let sources: Vec<(String, String)> = app
        .rows("SELECT field, source FROM crmsync.field_changes ORDER BY field")
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    // Every mapped column's local change time is kept (a two_way policy judges by it): the renamed company and
    // its deal's new name too.
    assert_eq!(
        sources,
        vec![
            ("deal_name".into(), "local".into()),
            ("name".into(), "local".into()),
            ("phone".into(), "local".into()),
            ("priority".into(), "hubspot".into()),
            ("website".into(), "hubspot".into()),
        ]
    );

    // A changed priority flag is a change of the priority's source: it wins over the older HubSpot edit.
    event["opportunity"]["priority_flag"] = json!("FAST_TRACK");
    let report = app.ingest(event).await;
    assert_eq!(
        (report.deals_updated, report.companies_updated, report.queued),
        (1, 0, 1)
    );
    assert_eq!(app.count("deals WHERE priority = 'high'").await, 1);
}

#[tokio::test]
async fn a_notice_or_uei_repeated_in_one_batch_builds_every_deal_from_the_stored_copy() {
    let app = IngestApp::spawn().await;
    // Notice 7 twice (different title, value and flag), contractor 5 twice (different name), in other matches.
    let mut first = embedded(7, 1, 50.0);
    first["opportunity"]["title"] = json!("First title");
    first["opportunity"]["estimated_value"] = json!(1000);
    first["opportunity"]["priority_flag"] = json!("FAST_TRACK");
    let mut second = embedded(7, 2, 60.0);
    second["opportunity"]["title"] = json!("Second title");
    second["opportunity"]["estimated_value"] = json!(2000);
    second["opportunity"]["priority_flag"] = json!("STANDARD");
    let mut third = embedded(8, 5, 70.0);
    third["contractor"]["name"] = json!("Old Name LLC");
    let mut fourth = embedded(9, 5, 80.0);
    fourth["contractor"]["name"] = json!("New Name LLC");
    let report = app.ingest(json!([first, second, third, fourth])).await;
    assert_eq!((report.deals_created, report.companies_created), (4, 3));

    let title: String = app
        .scalar("SELECT title FROM opportunities WHERE notice_id = 'NOTICE-7'")
        .await;
    assert_eq!(title, "Second title", "the last copy is stored");
    let deals: Vec<(String, Option<String>, String)> = app
        .select::<Deal>(
            "WHERE opportunity_id = (SELECT id FROM opportunities WHERE notice_id = 'NOTICE-7') ORDER BY deal_name",
            &[],
        )
        .await
        .into_iter()
        .map(|deal| (deal.deal_name, deal.deal_value, deal.priority))
        .collect();
    assert_eq!(
        deals,
        vec![
            (
                "Second title - Contractor 1".into(),
                Some("2000.00".into()),
                "medium".into()
            ),
            (
                "Second title - Contractor 2".into(),
                Some("2000.00".into()),
                "medium".into()
            ),
        ],
        "both deals follow the stored opportunity"
    );
    let company = app.select_one::<Company>("WHERE uei = 'UEI000000005'", &[]).await;
    assert_eq!(company.name, "New Name LLC");
    assert_eq!(
        app.count("deals WHERE deal_name LIKE '% - New Name LLC'").await,
        2,
        "both deals are named after the stored company"
    );
}

#[tokio::test]
async fn a_changed_match_score_updates_the_deal_and_queues_a_deal_update() {
    let app = IngestApp::spawn().await;
    app.ingest(embedded(1, 1, 50.0)).await;
    let report = app.ingest(embedded(1, 1, 90.0)).await;
    assert_eq!(
        report,
        IngestReport {
            deals_updated: 1,
            queued: 1,
            ..IngestReport::default()
        }
    );
    assert_eq!(app.single_deal().await.win_probability, Some(72));
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'deal' AND operation = 'update'")
            .await,
        1
    );
}

#[tokio::test]
async fn invalid_matches_are_rejected_by_index_and_field_while_valid_ones_commit() {
    let app = IngestApp::spawn().await;
    let mut no_title = embedded(2, 2, 50.0);
    no_title["opportunity"]["title"] = json!("");
    let mut bad_score = embedded(3, 3, 50.0);
    bad_score["match_score"] = json!(101);
    let mut bad_uei = embedded(4, 4, 50.0);
    bad_uei["contractor"]["uei"] = json!("SHORT");
    let event = json!({ "matches": [embedded(1, 1, 50.0), no_title, bad_score, "not an object", bad_uei, embedded(5, 5, 50.0)] });
    let report = app.ingest(event.clone()).await;
    assert_eq!(report.deals_created, 2);
    let rejected: Vec<(usize, Option<&str>)> = report.rejected.iter().map(|r| (r.index, r.field.as_deref())).collect();
    assert_eq!(
        rejected,
        vec![
            (1, Some("opportunity.title")),
            (2, Some("match_score")),
            (3, Some("match")),
            (4, Some("contractor.uei")),
        ]
    );
    assert_eq!(
        report.rejected[1].error,
        "match_score: must be between 0 and 100, got 101"
    );
    assert_eq!(app.count("deals").await, 2);
    let kept: Vec<(i32, Option<String>, Value)> = app
        .rows("SELECT item_index, field, item FROM crmsync.ingest_rejections ORDER BY item_index")
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let items = event["matches"].as_array().unwrap();
    assert_eq!(
        kept,
        [
            (1, Some("opportunity.title".into()), items[1].clone()),
            (2, Some("match_score".into()), items[2].clone()),
            (3, Some("match".into()), items[3].clone()),
            (4, Some("contractor.uei".into()), items[4].clone()),
        ],
        "every rejected match is kept with its original JSON, in crmsync's schema"
    );
    assert_eq!(app.count("crmsync.ingest_deliveries WHERE rejected = 4").await, 1);
}

#[tokio::test]
async fn a_nul_character_is_rejected_with_its_field_before_the_database_sees_it() {
    let app = IngestApp::spawn().await;
    let mut poisoned = embedded(2, 2, 50.0);
    // Valid JSON and a valid string, but PostgreSQL text cannot hold NUL: validation names the field.
    poisoned["opportunity"]["agency"] = json!("Department of\u{0000}Defense");
    let mut poisoned_reasons = embedded(4, 4, 50.0);
    poisoned_reasons["match_reasons"] = json!({ "naics": ["5415\u{0000}12"] });
    let report = app
        .ingest(json!({ "matches": [embedded(1, 1, 50.0), poisoned, embedded(3, 3, 50.0), poisoned_reasons] }))
        .await;
    assert_eq!(report.deals_created, 2);
    let rejected: Vec<(usize, Option<&str>, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_deref(), r.error.as_str()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (
                1,
                Some("opportunity.agency"),
                "opportunity.agency: must not contain a NUL character"
            ),
            (
                3,
                Some("match_reasons"),
                "match_reasons: must not contain a NUL character"
            ),
        ]
    );
    assert_eq!(app.count("opportunities").await, 2);
    assert_eq!(app.count("sync_queue").await, 4);
}

#[tokio::test]
async fn a_match_the_database_refuses_is_isolated_and_its_neighbours_still_commit() {
    let app = IngestApp::spawn().await;
    // Break the real database: a constraint that validation knows nothing about, so only the database refuses.
    app.client()
        .await
        .batch_execute(
            "ALTER TABLE opportunities ADD CONSTRAINT test_refuses_poison CHECK (agency IS DISTINCT FROM 'Poison')",
        )
        .await
        .unwrap();
    let mut poisoned = embedded(2, 2, 50.0);
    poisoned["opportunity"]["agency"] = json!("Poison");
    let report = app
        .ingest(json!({ "matches": [embedded(1, 1, 50.0), poisoned, embedded(3, 3, 50.0)] }))
        .await;
    assert_eq!(report.deals_created, 2);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 1);
    assert!(
        report.rejected[0].error.starts_with("rejected by the database"),
        "{}",
        report.rejected[0].error
    );
    assert_eq!(
        app.count("opportunities").await,
        2,
        "nothing of the refused match is written"
    );
    assert_eq!(app.count("sync_queue").await, 4);
}

#[tokio::test]
async fn a_reference_to_an_existing_match_creates_its_company_and_deal() {
    let app = IngestApp::spawn().await;
    let match_id: Uuid = app
        .scalar(
            "WITH o AS (INSERT INTO opportunities (notice_id, title, estimated_value, deadline, priority_flag)
                        VALUES ('REF-1', 'Cybersecurity assessment', 50000, '2027-01-15', 'FAST_TRACK') RETURNING id),
                  c AS (INSERT INTO contractors (uei, name, readiness_score) VALUES ('REFUEI000001', 'Ref Co', 80)
                        RETURNING id)
             INSERT INTO matches (opportunity_id, contractor_id, match_score)
             SELECT o.id, c.id, 91.25 FROM o, c RETURNING id",
        )
        .await;
    let report = app
        .ingest(json!({ "matches": [{ "match_id": match_id }, { "match_id": Uuid::new_v4() }] }))
        .await;
    assert_eq!(
        (report.companies_created, report.deals_created, report.queued),
        (1, 1, 2)
    );
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].field.as_deref(), Some("match_id"));
    let deal = app.single_deal().await;
    assert_eq!(deal.deal_name, "Cybersecurity assessment - Ref Co");
    assert_eq!(deal.win_probability, Some(73));
    assert_eq!(deal.priority, "high");
    assert_eq!(deal.match_id, Some(match_id));
    assert_eq!(app.count("companies WHERE qualification_status = 'qualified'").await, 1);
}

#[tokio::test]
async fn a_repeated_match_within_one_batch_is_written_once_with_the_last_score() {
    let app = IngestApp::spawn().await;
    let report = app.ingest(json!([embedded(1, 1, 40.0), embedded(1, 1, 80.0)])).await;
    assert_eq!((report.deals_created, report.queued), (1, 2));
    assert_eq!(app.single_deal().await.win_probability, Some(64));
}

#[tokio::test]
async fn concurrent_deliveries_of_overlapping_batches_create_no_duplicates() {
    let app = IngestApp::spawn().await;
    // Eight deliveries of overlapping windows over 40 matches sharing 10 contractors, all at once.
    let deliveries: Vec<Value> = (0..8)
        .map(|d| json!({ "matches": (d * 4..d * 4 + 12).map(|i| embedded(i, i % 10, 50.0 + (i % 40) as f64)).collect::<Vec<_>>() }))
        .collect();
    let tasks: Vec<_> = deliveries
        .into_iter()
        .map(|event| {
            let store = app.store.clone();
            tokio::spawn(async move { ingest_matches(&store, &event, "test").await })
        })
        .collect();
    let mut created = (0, 0, 0);
    for task in tasks {
        let report = task.await.expect("task").expect("ingest");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        created = (
            created.0 + report.companies_created,
            created.1 + report.deals_created,
            created.2 + report.queued,
        );
    }
    assert_eq!(app.count("companies").await, 10);
    assert_eq!(app.count("deals").await, 40);
    assert_eq!(app.count("matches").await, 40);
    assert_eq!(
        created,
        (10, 40, 50),
        "each company and deal was reported created exactly once"
    );
    assert_eq!(
        app.count("sync_queue").await,
        50,
        "one create row per company and per deal"
    );
}

#[tokio::test]
async fn an_unusable_event_is_an_error_and_writes_nothing() {
    let app = IngestApp::spawn().await;
    let error = ingest_matches(&app.store, &json!({ "matches": "everything" }), "test")
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "invalid event: matches: must be an array of matches");
    assert_eq!(app.count("crmsync.ingest_deliveries").await, 0);
}

#[tokio::test]
async fn a_thousand_matches_take_the_same_twelve_round_trips_as_one() {
    let app = IngestApp::spawn().await;
    let one = ingest_matches(&app.store, &embedded(0, 0, 50.0), "test").await.unwrap();
    let thousand = json!({ "matches": (1..=1_000).map(|i| embedded(i, i % 200, 50.0)).collect::<Vec<_>>() });
    let thousand = ingest_matches(&app.store, &thousand, "test").await.unwrap();
    assert_eq!(thousand.deals_created, 1_000);
    // BEGIN, a locking read and an upsert for each of opportunities, contractors and matches, the company and
    // deal statements, the queue insert, COMMIT, and the delivery's record.
    assert_eq!((one.round_trips, thousand.round_trips), (12, 12));
    // A re-delivery of the thousand writes nothing and queues nothing, so it skips the queue insert.
    let again = json!({ "matches": (1..=1_000).map(|i| embedded(i, i % 200, 50.0)).collect::<Vec<_>>() });
    let again = ingest_matches(&app.store, &again, "test").await.unwrap();
    assert_eq!(
        (again.unchanged, again.queued, again.round_trips),
        (1_000, 0, 11),
        "no queue insert"
    );
}

/// The guide's database: the upstream workflow's own Step 1 tables and rows (crmsync_db's fixture), adopted by
/// `migrate`, then ingested into.
struct AdoptedDb {
    _db: crmsync_db::test_db::TestDb,
    client: tokio_postgres::Client,
    store: PgMatchStore,
}

impl AdoptedDb {
    async fn new() -> Self {
        let db = crmsync_db::test_db::TestDb::empty().await;
        let mut client = crmsync_db::migrate::connect_url(db.direct_url())
            .await
            .expect("connect");
        client
            .batch_execute(crmsync_db::test_db::UPSTREAM_SCHEMA_FIXTURE)
            .await
            .expect("fixture");
        crmsync_db::migrate::migrate(&mut client).await.expect("adopted");
        let store = PgMatchStore::new(db.pool().clone());
        Self { _db: db, client, store }
    }

    async fn ingest(&self, event: Value) -> IngestReport {
        IngestReport {
            round_trips: 0,
            ..ingest_matches(&self.store, &event, "test").await.expect("ingest")
        }
    }

    async fn texts(&self, sql: &str) -> Vec<String> {
        self.client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Every upstream row, whole, with its row version's place and creating transaction: a row that compares
    /// equal was not rewritten, not even to the same values.
    async fn upstream_rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for table in [
            "opportunities",
            "contractors",
            "matches",
            "failed_opportunities",
            "workflow_logs",
            "workflow_errors",
        ] {
            let sql = format!("SELECT '{table} ' || ctid || ' ' || xmin || ' ' || t::text FROM {table} t ORDER BY id");
            rows.extend(self.texts(&sql).await);
        }
        rows
    }

    async fn deals(&self) -> Vec<String> {
        self.texts(
            "SELECT concat_ws(' | ', deal_name, deal_value, expected_close_date, priority, win_probability, match_id,
                              opportunity_id)
             FROM deals ORDER BY deal_name",
        )
        .await
    }
}

#[tokio::test]
async fn after_adopting_the_guides_tables_ingestion_works_by_reference_and_embedded_and_keeps_upstream_columns() {
    let app = AdoptedDb::new().await;
    let untouched = app.upstream_rows().await;

    // By reference: the upstream workflow's matches, in its own types (varchar keys, a double precision amount, a
    // timestamptz deadline, an integer readiness score), one of them not scored yet.
    let by_reference = json!({ "matches": [
        { "match_id": "b0000000-0000-4000-8000-000000000001" },
        { "match_id": "b0000000-0000-4000-8000-000000000002" },
        { "match_id": "b0000000-0000-4000-8000-000000000003" },
        { "match_id": "b0000000-0000-4000-8000-000000000004" },
    ]});
    let report = app.ingest(by_reference.clone()).await;
    assert_eq!(
        (report.companies_created, report.deals_created, report.queued),
        (2, 3, 5)
    );
    assert_eq!(
        report.rejected,
        [Rejection {
            index: 3,
            field: Some("match_score".into()),
            error: "match_score: is null in match b0000000-0000-4000-8000-000000000004".into(),
        }]
    );
    assert_eq!(
        app.upstream_rows().await,
        untouched,
        "ingestion by reference writes no upstream row"
    );
    assert_eq!(
        app.deals().await,
        [
            "Cloud migration support - Acme Federal LLC | 1250000.50 | 2027-03-31 | high | 70 \
             | b0000000-0000-4000-8000-000000000001 | a0000000-0000-4000-8000-000000000001",
            "Cloud migration support - Beta Gov Services | 1250000.50 | 2027-03-31 | high | 44 \
             | b0000000-0000-4000-8000-000000000003 | a0000000-0000-4000-8000-000000000001",
            "Cybersecurity assessment - Acme Federal LLC | 480000.00 | 2027-05-15 | medium | 58 \
             | b0000000-0000-4000-8000-000000000002 | a0000000-0000-4000-8000-000000000002",
        ]
    );
    assert_eq!(
        app.texts(
            "SELECT concat_ws(' | ', name, source, uei, state, readiness_score, qualification_status, contractor_id)
             FROM companies ORDER BY name"
        )
        .await,
        [
            "Acme Federal LLC | sam_gov | ACMEFED00001 | VA | 85.00 | qualified | c0000000-0000-4000-8000-000000000001",
            "Beta Gov Services | sam_gov | BETAGOV00002 | TX | 60.00 | unqualified \
             | c0000000-0000-4000-8000-000000000002",
        ],
        "a null upstream source becomes the guide's sam_gov"
    );
    let again = app.ingest(by_reference).await;
    assert_eq!((again.unchanged, again.queued, again.rejected.len()), (3, 0, 1));

    // Embedded: a new notice matched to an upstream contractor (now with an email), and a new title for an
    // upstream notice with its existing match.
    let acme = json!({
        "uei": "ACMEFED00001", "name": "Acme Federal LLC", "source": "sam_gov", "cage_code": "1ABC2",
        "website": "https://acme.example", "phone": "555-0100", "email": "bids@acme.example",
        "address": "1 Main St", "city": "Arlington", "state": "VA", "zip": "22201", "primary_naics": "541512",
        "sam_registered": true, "readiness_score": 85
    });
    let beta = json!({
        "uei": "BETAGOV00002", "name": "Beta Gov Services", "city": "Austin", "state": "TX",
        "primary_naics": "541519", "sam_registered": false, "readiness_score": 60
    });
    let embedded_event = json!({ "matches": [
        { "opportunity": { "notice_id": "SAM-2025-0004", "title": "Data analytics platform",
                           "description": "Agency-wide analytics.", "estimated_value": 750000,
                           "deadline": "2027-08-01", "priority_flag": "FAST_TRACK" },
          "contractor": acme, "match_score": 91, "match_reasons": { "naics": "exact" } },
        { "opportunity": { "notice_id": "SAM-2025-0001", "title": "Cloud migration support, phase 2",
                           "agency": "General Services Administration", "naics_code": "541512", "set_aside": "SBA",
                           "estimated_value": 1250000.5, "deadline": "2027-03-31", "priority_flag": "FAST_TRACK" },
          "contractor": beta, "match_score": 55 },
    ]});
    let report = app.ingest(embedded_event.clone()).await;
    assert_eq!(
        report,
        IngestReport {
            deals_created: 1,
            deals_updated: 1,
            queued: 2,
            ..IngestReport::default()
        }
    );
    let deals = app.deals().await;
    assert!(
        deals.iter().any(
            |d| d.starts_with("Data analytics platform - Acme Federal LLC | 750000.00 | 2027-08-01 | high | 73 | ")
        ),
        "{deals:#?}"
    );
    assert!(
        deals.contains(
            &"Cloud migration support, phase 2 - Beta Gov Services | 1250000.50 | 2027-03-31 | high | 44 \
              | b0000000-0000-4000-8000-000000000003 | a0000000-0000-4000-8000-000000000001"
                .to_owned()
        ),
        "the deal of the updated notice's match in the batch is renamed: {deals:#?}"
    );
    // The upstream workflow's own columns are kept on the rows the records updated.
    assert_eq!(
        app.texts(
            "SELECT concat_ws(' | ', title, ai_summary, raw_notice, matched.n) FROM opportunities,
               LATERAL (SELECT count(*) AS n FROM matches WHERE opportunity_id = opportunities.id) matched
             WHERE notice_id = 'SAM-2025-0001'"
        )
        .await,
        [
            "Cloud migration support, phase 2 | Move 40 applications to a FedRAMP cloud. \
             | {\"type\": \"Solicitation\", \"noticeId\": \"SAM-2025-0001\"} | 2"
        ]
    );
    assert_eq!(
        app.texts("SELECT concat_ws(' | ', uei, email, employee_count, source) FROM contractors ORDER BY uei")
            .await,
        [
            "ACMEFED00001 | bids@acme.example | 120 | sam_gov",
            "BETAGOV00002 | 15 | sam_gov"
        ]
    );
    assert_eq!(
        app.texts(
            "SELECT concat_ws(' | ', m.match_score, m.match_reasons::text, m.matched_by) FROM matches m
             JOIN opportunities o ON o.id = m.opportunity_id WHERE o.notice_id = 'SAM-2025-0004'"
        )
        .await,
        ["91.00 | {\"naics\": \"exact\"} | engine_v1"],
        "the new match takes the upstream column's default"
    );
    let again = app.ingest(embedded_event).await;
    assert_eq!(
        (again.unchanged, again.queued),
        (2, 0),
        "a re-delivery compares equal in the upstream types (json, double precision, timestamptz)"
    );
}
