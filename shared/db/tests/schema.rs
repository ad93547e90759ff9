//! The schema against a real PostgreSQL: the guide's own SQL runs verbatim, migrations are idempotent and safe
//! to start twice at once, and the triggers and constraints hold.

use crmsync_db::migrate::{self, MIGRATIONS};
use crmsync_db::test_db::TestDb;
use tokio_postgres::Row;

/// The guide's "Step 3: Verify Tables" query, verbatim.
const VERIFY_TABLES: &str = "SELECT table_name
FROM information_schema.tables
WHERE table_schema = 'public'
ORDER BY table_name;";

/// The guide's four dashboard queries, verbatim.
const PIPELINE_OVERVIEW: &str = "SELECT
  stage,
  COUNT(*) as count,
  SUM(deal_value) as total_value
FROM deals
WHERE stage NOT IN ('closed_won', 'closed_lost')
GROUP BY stage
ORDER BY
  CASE stage
    WHEN 'new_match' THEN 1
    WHEN 'initial_outreach' THEN 2
    WHEN 'contact_made' THEN 3
    WHEN 'qualified' THEN 4
    WHEN 'proposal_sent' THEN 5
    WHEN 'negotiation' THEN 6
  END;";

const TOP_COMPANIES: &str = "SELECT
  c.name,
  c.readiness_score,
  COUNT(d.id) as active_deals,
  SUM(d.deal_value) as pipeline_value
FROM companies c
LEFT JOIN deals d ON c.id = d.company_id
WHERE d.stage NOT IN ('closed_won', 'closed_lost')
GROUP BY c.id
ORDER BY pipeline_value DESC
LIMIT 10;";

const RECENT_ACTIVITIES: &str = "SELECT
  a.activity_type,
  a.subject,
  c.name as company_name,
  con.full_name as contact_name,
  a.created_at
FROM activities a
LEFT JOIN companies c ON a.company_id = c.id
LEFT JOIN contacts con ON a.contact_id = con.id
ORDER BY a.created_at DESC
LIMIT 20;";

const WIN_RATE: &str = "SELECT
  DATE_TRUNC('month', closed_at) as month,
  COUNT(*) FILTER (WHERE stage = 'closed_won') as won,
  COUNT(*) FILTER (WHERE stage = 'closed_lost') as lost,
  ROUND(
    COUNT(*) FILTER (WHERE stage = 'closed_won')::numeric /
    NULLIF(COUNT(*), 0) * 100,
    2
  ) as win_rate_pct
FROM deals
WHERE closed_at IS NOT NULL
GROUP BY month
ORDER BY month DESC;";

const FILL: &str = "
INSERT INTO opportunities (id, notice_id, title, estimated_value, deadline) VALUES
  ('00000000-0000-0000-0000-0000000000a1', 'N-1', 'Cloud', 100.00, '2027-01-01'),
  ('00000000-0000-0000-0000-0000000000a2', 'N-2', 'Cyber', 250.00, '2027-01-01');
INSERT INTO contractors (id, uei, name, readiness_score) VALUES
  ('00000000-0000-0000-0000-0000000000b1', 'AAAAAAAAAAA1', 'Alpha', 90),
  ('00000000-0000-0000-0000-0000000000b2', 'BBBBBBBBBBB2', 'Beta', 70);
INSERT INTO companies (id, contractor_id, name, uei, readiness_score, qualification_status) VALUES
  ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', 'Alpha', 'AAAAAAAAAAA1', 90, 'qualified'),
  ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000b2', 'Beta', 'BBBBBBBBBBB2', 70, 'unqualified');
INSERT INTO deals (company_id, deal_name, deal_value, stage, closed_at) VALUES
  ('00000000-0000-0000-0000-0000000000c1', 'A1', 100, 'new_match', NULL),
  ('00000000-0000-0000-0000-0000000000c1', 'A2', 300, 'qualified', NULL),
  ('00000000-0000-0000-0000-0000000000c2', 'B1', 50, 'new_match', NULL),
  ('00000000-0000-0000-0000-0000000000c2', 'B2', 999, 'closed_won', '2026-10-05T12:00:00Z'),
  ('00000000-0000-0000-0000-0000000000c2', 'B3', 10, 'closed_lost', '2026-10-20T12:00:00Z'),
  ('00000000-0000-0000-0000-0000000000c1', 'A3', 10, 'closed_won', '2026-11-02T12:00:00Z');
INSERT INTO contacts (id, company_id, full_name, email) VALUES
  ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000c1', 'Ada Lovelace', 'ada@alpha.example');
INSERT INTO activities (activity_type, subject, company_id, contact_id, created_at) VALUES
  ('call', 'Intro call', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000d1', '2026-11-01T10:00:00Z'),
  ('note', 'Capability statement received', '00000000-0000-0000-0000-0000000000c2', NULL, '2026-11-03T10:00:00Z');
";

async fn query(db: &TestDb, sql: &str) -> Vec<Row> {
    let client = db.pool().get().await.expect("client");
    client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}\n{e:?}"))
}

fn texts(rows: &[Row], sql_cast: impl Fn(&Row) -> String) -> Vec<String> {
    rows.iter().map(sql_cast).collect()
}

#[tokio::test]
async fn public_holds_exactly_the_guides_eleven_tables_and_its_two_views() {
    let db = TestDb::new().await;
    let rows = query(&db, VERIFY_TABLES).await;
    let names = texts(&rows, |r| r.get::<_, String>(0));
    assert_eq!(
        names,
        [
            "activities",
            "companies",
            "contacts",
            "contractors",
            "deals",
            "failed_opportunities",
            "matches",
            "opportunities",
            "sync_queue",
            "v_active_deals",
            "v_company_engagement",
            "workflow_errors",
            "workflow_logs"
        ]
    );
    let base_tables = query(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .await;
    assert_eq!(
        base_tables[0].get::<_, i64>(0),
        11,
        "the guide's 11 tables; the other two rows are its views"
    );
    let operational = query(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'crmsync'",
    )
    .await;
    assert!(
        operational[0].get::<_, i64>(0) >= 1,
        "migration history lives in schema crmsync"
    );
}

#[tokio::test]
async fn the_guides_dashboard_queries_run_verbatim_on_an_empty_database() {
    let db = TestDb::new().await;
    for sql in [PIPELINE_OVERVIEW, TOP_COMPANIES, RECENT_ACTIVITIES, WIN_RATE] {
        assert!(query(&db, sql).await.is_empty(), "{sql}");
    }
    assert!(query(&db, "SELECT * FROM v_active_deals").await.is_empty());
    assert!(query(&db, "SELECT * FROM v_company_engagement").await.is_empty());
}

#[tokio::test]
async fn the_guides_dashboard_queries_answer_correctly_on_a_filled_database() {
    let db = TestDb::new().await;
    db.pool().get().await.unwrap().batch_execute(FILL).await.unwrap();

    let pipeline = query(&db, PIPELINE_OVERVIEW).await;
    let pipeline: Vec<(String, i64, String)> = pipeline
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, rust_decimal::Decimal>(2).to_string()))
        .collect();
    assert_eq!(
        pipeline,
        vec![
            ("new_match".into(), 2, "150.00".into()),
            ("qualified".into(), 1, "300.00".into())
        ]
    );

    let top = query(&db, TOP_COMPANIES).await;
    let top: Vec<(String, i64, String)> = top
        .iter()
        .map(|r| (r.get(0), r.get(2), r.get::<_, rust_decimal::Decimal>(3).to_string()))
        .collect();
    assert_eq!(
        top,
        vec![("Alpha".into(), 2, "400.00".into()), ("Beta".into(), 1, "50.00".into())]
    );

    let recent = query(&db, RECENT_ACTIVITIES).await;
    let recent: Vec<(String, Option<String>, Option<String>)> =
        recent.iter().map(|r| (r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        recent,
        vec![
            ("Capability statement received".into(), Some("Beta".into()), None),
            ("Intro call".into(), Some("Alpha".into()), Some("Ada Lovelace".into())),
        ]
    );

    let win_rate = query(&db, WIN_RATE).await;
    let win_rate: Vec<(i64, i64, String)> = win_rate
        .iter()
        .map(|r| (r.get(1), r.get(2), r.get::<_, rust_decimal::Decimal>(3).to_string()))
        .collect();
    assert_eq!(
        win_rate,
        vec![(1, 0, "100.00".into()), (1, 1, "50.00".into())],
        "November, then October"
    );

    let active = query(&db, "SELECT count(*) FROM v_active_deals").await;
    assert_eq!(active[0].get::<_, i64>(0), 3);
    let engagement = query(
        &db,
        "SELECT name, active_deals, won_deals, contacts, activities FROM v_company_engagement ORDER BY name",
    )
    .await;
    let engagement: Vec<(String, i64, i64, i64, i64)> = engagement
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        engagement,
        vec![("Alpha".into(), 2, 1, 1, 1), ("Beta".into(), 1, 1, 0, 1)]
    );
}

/// A row in each table that [`FILL`] leaves empty, so every table has one to update.
const FILL_THE_REST: &str = "
INSERT INTO matches (opportunity_id, contractor_id, match_score) VALUES
  ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 80);
INSERT INTO failed_opportunities (notice_id, stage, error_message) VALUES ('N-9', 'ai_enrich', 'timeout');
INSERT INTO workflow_logs (workflow, module, message) VALUES ('crm_ingest', 'test', 'ingested');
INSERT INTO workflow_errors (workflow, module, error_message) VALUES ('crm_ingest', 'test', 'rejected');
INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES
  ('company', '00000000-0000-0000-0000-0000000000c1', 'create');
";

#[tokio::test]
async fn updated_at_is_kept_current_by_a_trigger_on_every_table() {
    let db = TestDb::new().await;
    let client = db.pool().get().await.unwrap();
    client.batch_execute(FILL).await.unwrap();
    client.batch_execute(FILL_THE_REST).await.unwrap();
    let tables = query(
        &db,
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name = 'updated_at'
           AND table_name IN (SELECT table_name FROM information_schema.tables
                              WHERE table_schema = 'public' AND table_type = 'BASE TABLE')
         ORDER BY table_name",
    )
    .await;
    let tables: Vec<String> = tables.iter().map(|row| row.get(0)).collect();
    assert_eq!(tables.len(), 11, "every table has updated_at: {tables:?}");
    for table in &tables {
        let rows = query(&db, &format!("SELECT count(*) FROM {table}")).await;
        let rows: i64 = rows[0].get(0);
        assert!(rows > 0, "{table} has a row to update");
        // The trigger overrides any explicit value with now().
        client
            .batch_execute(&format!(
                "UPDATE {table} SET updated_at = '2000-01-01', created_at = '2000-01-01'"
            ))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e:?}"));
        let counts = query(
            &db,
            &format!(
                "SELECT count(*) FILTER (WHERE updated_at < now() - interval '1 minute'),
                        count(*) FILTER (WHERE updated_at > created_at)
                 FROM {table}"
            ),
        )
        .await;
        let (stale, fresh): (i64, i64) = (counts[0].get(0), counts[0].get(1));
        assert_eq!((stale, fresh), (0, rows), "{table}: updated_at follows every update");
    }
}

#[tokio::test]
async fn constraints_refuse_unknown_stages_out_of_range_scores_and_half_closed_deals() {
    let db = TestDb::new().await;
    let client = db.pool().get().await.unwrap();
    client.batch_execute(FILL).await.unwrap();
    let refused = [
        (
            "deals_stage_check",
            "UPDATE deals SET stage = 'won' WHERE deal_name = 'A1'",
        ),
        (
            "deals_closed_at_check",
            "UPDATE deals SET stage = 'closed_won' WHERE deal_name = 'A1'",
        ),
        (
            "deals_closed_at_check",
            "UPDATE deals SET closed_at = now() WHERE deal_name = 'A1'",
        ),
        ("deals_win_probability_check", "UPDATE deals SET win_probability = 101"),
        ("deals_priority_check", "UPDATE deals SET priority = 'urgent'"),
        (
            "companies_readiness_score_check",
            "UPDATE companies SET readiness_score = -1",
        ),
        (
            "companies_qualification_status_check",
            "UPDATE companies SET qualification_status = 'maybe'",
        ),
        (
            "sync_queue_status_check",
            "INSERT INTO sync_queue (entity_type, entity_id, operation, status) VALUES ('deal', gen_random_uuid(), 'create', 'lost')",
        ),
        (
            "contractors_uei_check",
            "INSERT INTO contractors (uei, name) VALUES ('lowercase123', 'x')",
        ),
        (
            "contractors_uei_key",
            "INSERT INTO contractors (uei, name) VALUES ('AAAAAAAAAAA1', 'dup')",
        ),
        (
            "opportunities_notice_id_key",
            "INSERT INTO opportunities (notice_id, title) VALUES ('N-1', 'dup')",
        ),
        (
            "activities_target_check",
            "INSERT INTO activities (activity_type, subject) VALUES ('note', 'orphan')",
        ),
        (
            "contacts_email_key",
            "INSERT INTO contacts (full_name, email) VALUES ('Ada again', 'ADA@alpha.example')",
        ),
        ("activities_status_check", "UPDATE activities SET status = 'finished'"),
    ];
    for (constraint, sql) in refused {
        let error = client.batch_execute(sql).await.expect_err(sql);
        let db_error = error.as_db_error().unwrap_or_else(|| panic!("{sql}: {error:?}"));
        assert_eq!(db_error.constraint(), Some(constraint), "{sql}");
    }
}

#[tokio::test]
async fn activity_statuses_take_every_value_the_code_uses() {
    let db = TestDb::new().await;
    let client = db.pool().get().await.unwrap();
    client.batch_execute(FILL).await.unwrap();
    // The outbound sync sends 'completed' and 'done' as a completed HubSpot task; no status is allowed too.
    for status in [
        "not_started",
        "in_progress",
        "waiting",
        "deferred",
        "completed",
        "done",
        "scheduled",
        "cancelled",
        "no_show",
    ] {
        client
            .execute(
                "INSERT INTO activities (activity_type, subject, company_id, status)
                 VALUES ('task', 'Follow up', '00000000-0000-0000-0000-0000000000c1', $1)",
                &[&status],
            )
            .await
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
    }
    client
        .batch_execute("UPDATE activities SET status = NULL WHERE status = 'done'")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_migration_run_is_a_no_op() {
    let db = TestDb::new().await; // already migrated from the template
    let mut client = migrate::connect_url(db.direct_url()).await.unwrap();
    let report = migrate::migrate(&mut client).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.already_applied.len(), MIGRATIONS.len());
}

#[tokio::test]
async fn two_instances_migrating_an_empty_database_at_once_apply_each_migration_once() {
    let db = TestDb::new().await;
    let admin = migrate::connect_url(db.direct_url()).await.unwrap();
    let empty = format!("{}_empty", db.name());
    admin.batch_execute(&format!("CREATE DATABASE {empty}")).await.unwrap();
    let url = db.direct_url().replace(db.name(), &empty);
    let run = |url: String| async move {
        let mut client = migrate::connect_url(&url).await.unwrap();
        migrate::migrate(&mut client).await.unwrap()
    };
    let (first, second) = tokio::join!(run(url.clone()), run(url.clone()));
    let mut applied = [first.applied.clone(), second.applied.clone()].concat();
    applied.sort();
    assert_eq!(
        applied,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>(),
        "{first:?} {second:?}"
    );
    let client = migrate::connect_url(&url).await.unwrap();
    let history: i64 = client
        .query_one("SELECT count(*) FROM crmsync.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(history, MIGRATIONS.len() as i64);
    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {empty} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_edited_migration_is_refused_rather_than_silently_skipped() {
    let db = TestDb::new().await;
    let mut client = migrate::connect_url(db.direct_url()).await.unwrap();
    client
        .batch_execute("UPDATE crmsync.schema_migrations SET checksum = 'edited' WHERE version = 2")
        .await
        .unwrap();
    let error = migrate::migrate(&mut client).await.unwrap_err();
    assert!(
        error.to_string().contains("migration 2 (core_indexes) was changed"),
        "{error}"
    );
}
