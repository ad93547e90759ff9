//! `crmsync hubspot-setup`, `sync`, `status`, `dlq` and `import-hubspot` as an operator runs them: real processes, a
//! fresh database, and the HubSpot simulator. Includes kill -9 of a sync mid-batch and of an import mid-page. Multi-threaded runtimes: the simulator keeps
//! serving while a test waits on a child process.

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crmsync_hubspot_sim::FaultConfig;
use crmsync_testkit::TestApp;
use serde_json::{Value, json};

/// The `crmsync` binary with the app's database and simulator in its environment.
fn command(app: &TestApp, args: &[&str]) -> Command {
    let sim = app.sim();
    let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
    command
        .args(args)
        .env("DATABASE_URL", app.db.url())
        .env("HUBSPOT_BASE_URL", sim.base_url())
        .env("HUBSPOT_ACCESS_TOKEN", sim.access_token())
        .env("HUBSPOT_REQUESTS_PER_10S", "1000")
        .env("SYNC_BATCH_SIZE", "100")
        .env("SYNC_LEASE_SECONDS", "2")
        .env_remove("RETRY_QUEUE_URL")
        .env("RUST_LOG", "warn");
    command
}

fn run(app: &TestApp, args: &[&str]) -> (Output, Value) {
    let output = command(app, args).output().expect("run crmsync");
    let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, json)
}

/// A fresh database and the simulator with no pipeline yet, and `deals` matches ingested by `crmsync ingest -`.
async fn setup(deals: usize) -> TestApp {
    let app = TestApp::with_bare_hubspot().await;
    let matches: Vec<Value> = (0..deals)
        .map(|i| {
            json!({ "opportunity": { "notice_id": format!("K-{i}"), "title": format!("Notice {i}") },
                         "contractor": { "uei": format!("KILLUEI{i:05}"), "name": format!("Vendor {i}") },
                         "match_score": 60 })
        })
        .collect();
    let mut ingest = command(&app, &["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut ingest.stdin.take().unwrap(),
        json!({ "matches": matches }).to_string().as_bytes(),
    )
    .unwrap();
    assert!(ingest.wait_with_output().unwrap().status.success());
    app
}

/// The `crmsync_id` of every deal in the simulator; panics on a deal without one.
async fn sim_deal_keys(app: &TestApp) -> Vec<String> {
    app.sim_crmsync_ids("deals")
        .await
        .into_iter()
        .map(|key| key.expect("crmsync_id"))
        .collect()
}

/// The `crmsync_id` of every note in the simulator (empty where a note has none).
async fn sim_note_keys(app: &TestApp) -> Vec<String> {
    app.sim_crmsync_ids("notes")
        .await
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_setup_twice_changes_nothing_the_second_time() {
    let app = setup(0).await;
    let (first, report) = run(&app, &["hubspot-setup"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(!report["created"].as_array().unwrap().is_empty());
    assert_eq!(report["stage_ids"].as_object().unwrap().len(), 8);
    let writes_before = app.sim().total_requests();
    let (second, report) = run(&app, &["hubspot-setup"]);
    assert!(second.status.success());
    assert_eq!(report["created"], json!([]));
    assert!(app.sim().total_requests() > writes_before, "it did read");
    assert_eq!(app.count("crmsync.settings WHERE key = 'hubspot_pipeline'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_refresh_caches_hubspots_owners_and_owners_list_prints_them() {
    let app = setup(0).await;
    let (refresh, report) = run(&app, &["owners", "refresh"]);
    assert!(refresh.status.success(), "{}", String::from_utf8_lossy(&refresh.stderr));
    assert_eq!(report, json!({"owners": 3, "active": 2, "gone": 0}));
    let (again, report) = run(&app, &["owners", "refresh"]);
    assert!(again.status.success());
    assert_eq!(report["owners"], 3, "a second refresh replaces, it does not add");
    assert_eq!(app.count("crmsync.hubspot_owners").await, 3);
    let (list, owners) = run(&app, &["owners", "list"]);
    assert!(list.status.success());
    let names: Vec<(&str, bool)> = owners
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["archived"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        names,
        [("Avery Cole", false), ("Jordan Reyes", false), ("Sam Patel", true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_sync_then_status() {
    let app = setup(20).await;
    run(&app, &["hubspot-setup"]);
    let before = app.sim().total_requests();
    let (output, dry) = run(&app, &["sync", "--dry-run"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(dry, json!({ "company": { "create": 20 }, "deal": { "create": 20 } }));
    assert_eq!(app.sim().total_requests(), before, "a dry run sends nothing");

    let (output, report) = run(&app, &["sync", "--max-seconds", "60"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        (report["companies_created"].as_u64(), report["deals_created"].as_u64()),
        (Some(20), Some(20))
    );

    let (output, status) = run(&app, &["status"]);
    assert!(output.status.success());
    assert_eq!(
        status["queue"],
        json!([
            { "status": "completed", "entity_type": "company", "count": 20 },
            { "status": "completed", "entity_type": "deal", "count": 20 },
        ])
    );
    assert_eq!(status["last_runs"][0]["status"], "succeeded");
    assert_eq!(status["oldest_pending_age_seconds"], Value::Null);
    assert_eq!(
        (
            &status["webhook_inbox"]["pending"],
            &status["webhook_inbox"]["retry"],
            &status["webhook_inbox"]["dead"]
        ),
        (&Value::from(0), &Value::from(0), &Value::from(0)),
        "the webhook inbox's open and dead counts are shown"
    );
    assert_eq!(
        status["fast_path"]["drain_requested_due_at"],
        Value::Null,
        "no fast-path drain waits"
    );
    let (_, dlq) = run(&app, &["dlq", "list"]);
    assert_eq!(dlq["dead"], json!([]));

    // A kick's request waiting for its drain (a lost message shows as a due time in the past).
    app.execute("UPDATE crmsync.drain_kicks SET due_at = '2026-12-05T10:00:02Z', requested_at = now()")
        .await;
    let (_, status) = run(&app, &["status"]);
    assert_eq!(
        status["fast_path"]["drain_requested_due_at"], "2026-12-05T10:00:02Z",
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_a_rerun_loses_nothing_and_duplicates_nothing() {
    let total = 600;
    let app = setup(total).await;
    run(&app, &["hubspot-setup"]);
    // Every answer takes 150 ms, so the run is killed while batches are in flight.
    app.sim().set_faults(FaultConfig {
        slow_rate: 1.0,
        slow_delay_ms: 150,
        ..FaultConfig::default()
    });
    let mut child = command(&app, &["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let synced = sim_deal_keys(&app).await.len();
        if synced > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the sync never wrote a deal");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL: no cleanup, leases left behind
    child.wait().unwrap();
    let unfinished = app.count("sync_queue WHERE status <> 'completed'").await;
    assert!(unfinished > 0, "killed mid-run, with work left");

    app.sim().set_faults(FaultConfig::default());
    tokio::time::sleep(Duration::from_millis(2_200)).await; // the dead run's leases expire
    let (output, _) = run(&app, &["sync"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let keys = sim_deal_keys(&app).await;
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "no duplicate deal in HubSpot");
    assert_eq!(keys.len(), total, "every deal reached HubSpot");
    assert_eq!(app.count("deals WHERE hubspot_deal_id IS NULL").await, 0);
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);

    // Engagements have no unique key: a run killed after HubSpot created its notes and before its write-back
    // committed must not make the next run create them again.
    let notes = 20;
    app.execute(&format!(
        "WITH a AS (
               INSERT INTO activities (activity_type, subject, body, deal_id)
               SELECT 'note', 'Call notes ' || d.deal_name, 'Discussed the notice', d.id
               FROM deals d ORDER BY d.id LIMIT {notes} RETURNING id
             )
             INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'activity', id, 'create' FROM a"
    ))
    .await;
    // Hold the write-back: the run creates the notes in HubSpot, then blocks on its UPDATE of activities.
    let blocker = app.pool().get().await.unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE activities IN SHARE MODE")
        .await
        .unwrap();
    let mut child = command(&app, &["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim_note_keys(&app).await.len() < notes {
        assert!(Instant::now() < deadline, "the sync never created its notes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // between HubSpot's create and the commit
    child.wait().unwrap();
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        app.count("activities WHERE hubspot_engagement_id IS NOT NULL").await,
        0,
        "the killed run wrote nothing back"
    );
    tokio::time::sleep(Duration::from_millis(2_200)).await; // the dead run's leases expire
    let (output, _) = run(&app, &["sync"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let keys = sim_note_keys(&app).await;
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "no duplicate engagement in HubSpot");
    assert_eq!(keys.len(), notes);
    assert_eq!(app.count("activities WHERE hubspot_engagement_id IS NULL").await, 0);
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_requeues_dead_items_at_its_rate_and_a_sync_then_delivers_them() {
    let app = setup(3).await;
    run(&app, &["hubspot-setup"]);
    // Their items died (the deals failed with them, as the sync's failure recording leaves them).
    app.execute(
        "UPDATE sync_queue SET status = 'dead', attempts = 8, last_error = 'permanent: refused' WHERE entity_type = 'deal';
         UPDATE deals SET hubspot_sync_status = 'failed';",
    )
    .await;
    let (_, listed) = run(&app, &["dlq", "list"]);
    assert_eq!(listed["dead"].as_array().unwrap().len(), 3);
    let started = Instant::now();
    let (output, report) = run(&app, &["dlq", "redrive", "--rate", "2"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report, json!({ "redriven": 3, "dlq_messages_removed": 0 }));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "two per second: a pause between chunks"
    );
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'deal' AND status = 'pending' AND attempts = 0")
            .await,
        3
    );
    assert_eq!(
        app.count("deals WHERE hubspot_sync_status = 'pending'").await,
        3,
        "redriven with their items"
    );
    let (output, report) = run(&app, &["sync"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["deals_created"], 3);
    assert_eq!(app.count("deals WHERE hubspot_sync_status = 'synced'").await, 3);
    let (_, listed) = run(&app, &["dlq", "list"]);
    assert_eq!(listed["dead"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_deals_waiting_for_their_company() {
    let app = setup(1).await;
    run(&app, &["hubspot-setup"]);
    // The company backs off after a failure; its deal waits (not failed) until the company is in HubSpot.
    app.execute(
        "UPDATE sync_queue SET status = 'failed', attempts = 1, next_attempt_at = now() + interval '1 hour'
             WHERE entity_type = 'company'",
    )
    .await;
    let (output, report) = run(&app, &["sync"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["deferred"], 1);
    let (_, status) = run(&app, &["status"]);
    assert_eq!(status["waiting"]["count"], 1, "{status}");
    assert_eq!(status["waiting"]["items"][0]["entity_type"], "deal");
    assert!(
        status["waiting"]["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("waiting for company")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_setup_and_sync_run_through_a_transaction_pooler() {
    // Through PgBouncer in transaction mode on Supabase's port, the URL alone says "transaction pooler". Before
    // statements went unnamed, hubspot-setup failed here with `prepared statement "s0" already exists`.
    let app = setup(3).await;
    let pooled = app.db.pooled_url();
    for _ in 0..2 {
        let output = command(&app, &["hubspot-setup"])
            .env("DATABASE_URL", &pooled)
            .env("DATABASE_POOLER", "transaction")
            .output()
            .expect("run crmsync");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let output = command(&app, &["sync"])
        .env("DATABASE_URL", &pooled)
        .env("DATABASE_POOLER", "transaction")
        .output()
        .expect("run crmsync");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let synced = app
        .deals()
        .await
        .iter()
        .filter(|deal| deal.hubspot_sync_status == "synced")
        .count();
    assert_eq!(synced, 3);

    let output = command(&app, &["migrate"])
        .env("DATABASE_URL", &pooled)
        .env("DATABASE_POOLER", "transaction")
        .output()
        .expect("run crmsync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DATABASE_MIGRATION_URL"), "{stderr}");
    let output = command(&app, &["migrate"])
        .env("DATABASE_URL", &pooled)
        .env("DATABASE_MIGRATION_URL", app.db.direct_url())
        .output()
        .expect("run crmsync");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_makes_each_command_exit_2_naming_the_host() {
    let silent = crmsync_testkit::SilentServer::start().await;
    for args in [&["status"][..], &["sync"], &["migrate"]] {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
            .args(args)
            .env("DATABASE_URL", silent.url())
            .env("HUBSPOT_ACCESS_TOKEN", "unused")
            .env("HUBSPOT_BASE_URL", "http://127.0.0.1:9")
            .env_remove("RETRY_QUEUE_URL")
            .env("DATABASE_CONNECT_TIMEOUT_MS", "1500")
            .output()
            .expect("run crmsync");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach PostgreSQL at {}", silent.host())),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("never-shown"),
            "{args:?}: the password leaked: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{args:?}: {:?}",
            started.elapsed()
        );
    }
}

/// Creates `inputs` in the simulator as another integration would; returns the new ids in input order.
async fn sim_create(
    app: &TestApp,
    object: crmsync_hubspot::ObjectType,
    inputs: &[crmsync_hubspot::CreateInput],
) -> Vec<String> {
    let outcome = app.hubspot().batch_create(object, inputs).await.expect("create");
    assert!(outcome.is_complete(), "{:?}", outcome.failed);
    let mut created = outcome.succeeded;
    created.sort_by_key(|(index, _)| *index);
    created.into_iter().map(|(_, object)| object.id).collect()
}

fn input(properties: &[(&str, String)], associations: Vec<(String, u32)>) -> crmsync_hubspot::CreateInput {
    use crmsync_hubspot::associations::AssociationSpec;
    use crmsync_hubspot::objects::NewAssociation;
    crmsync_hubspot::CreateInput {
        properties: properties.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        associations: associations
            .into_iter()
            .map(|(to_id, type_id)| NewAssociation {
                to_id,
                types: vec![AssociationSpec::hubspot_defined(type_id)],
            })
            .collect(),
    }
}

/// A portal that already holds 1,000 deals of our pipeline (and 10 of another) over 200 companies, the first 100
/// deals with a contact each; and a local CRM with three companies and a deal that match HubSpot's records by UEI,
/// by domain and by crmsync_id.
async fn portal_with_deals() -> TestApp {
    use crmsync_hubspot::ObjectType;
    use crmsync_hubspot::associations::type_ids;
    let app = TestApp::with_hubspot().await;
    let matches: Vec<Value> = (1..=3)
        .map(|i| {
            json!({ "opportunity": { "notice_id": format!("IMP-{i}"), "title": format!("Notice {i}") },
                    "contractor": { "uei": format!("IMPUEI00000{i}"), "name": format!("Local vendor {i}") },
                    "match_score": 60 })
        })
        .collect();
    app.ingest(&json!({ "matches": matches })).await;
    app.execute("UPDATE companies SET website = 'https://www.domain-match.gov/about' WHERE uei = 'IMPUEI000003'")
        .await;
    let local_deal: String = app
        .scalar("SELECT d.id::text FROM deals d JOIN opportunities o ON o.id = d.opportunity_id WHERE o.notice_id = 'IMP-1'")
        .await;

    let companies: Vec<_> = (0..200)
        .map(|i| {
            let mut properties = vec![("name", format!("Portal company {i}"))];
            match i {
                0 | 1 => properties.push(("b2g_uei", format!("IMPUEI00000{}", i + 1))),
                2 => properties.push(("domain", "domain-match.gov".to_owned())),
                _ => {}
            }
            input(&properties, Vec::new())
        })
        .collect();
    let company_ids = sim_create(&app, ObjectType::Companies, &companies).await;
    let contacts: Vec<_> = (0..100)
        .map(|i| {
            input(
                &[
                    ("email", format!("buyer{i}@portal.gov")),
                    ("firstname", format!("Buyer {i}")),
                ],
                vec![(company_ids[i % 200].clone(), type_ids::CONTACT_TO_COMPANY_PRIMARY)],
            )
        })
        .collect();
    let contact_ids = sim_create(&app, ObjectType::Contacts, &contacts).await;
    let pipeline = app.pipeline_map().await;
    let stage = pipeline.stage_ids["qualified"].clone();
    let deals: Vec<_> = (0..1_000)
        .map(|i| {
            let mut properties = vec![
                ("dealname", format!("Portal deal {i}")),
                ("pipeline", pipeline.pipeline_id.clone()),
                ("dealstage", stage.clone()),
                ("amount", format!("{}", 1_000 + i)),
            ];
            if i == 0 {
                properties.push(("crmsync_id", local_deal.clone()));
            }
            let mut associations = vec![(company_ids[i % 200].clone(), type_ids::DEAL_TO_COMPANY_PRIMARY)];
            if i < 100 {
                associations.push((contact_ids[i].clone(), type_ids::DEAL_TO_CONTACT));
            }
            input(&properties, associations)
        })
        .collect();
    sim_create(&app, ObjectType::Deals, &deals).await;
    let elsewhere: Vec<_> = (0..10)
        .map(|i| {
            input(
                &[
                    ("dealname", format!("Other pipeline {i}")),
                    ("pipeline", "default".to_owned()),
                    ("dealstage", "appointmentscheduled".to_owned()),
                ],
                Vec::new(),
            )
        })
        .collect();
    sim_create(&app, ObjectType::Deals, &elsewhere).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_shows_progress_resumes_after_kill_9_and_a_second_import_creates_nothing() {
    use std::io::BufRead;
    let app = portal_with_deals().await;
    let mut child = command(&app, &["import-hubspot", "--page-size", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_sender, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut progress = Vec::new();
    loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("a progress line");
        if line.starts_with("import-hubspot: ") {
            progress.push(line.clone());
        }
        if line.contains(" 3 pages") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: mid-import, nothing cleaned up
    child.wait().unwrap();
    assert_eq!(progress[0], "import-hubspot: 0/1000 deals, 0 pages", "{progress:?}");
    assert!(
        progress.contains(&"import-hubspot: 100/1000 deals, 2 pages".to_owned()),
        "{progress:?}"
    );
    let imported = app.count("deals WHERE hubspot_deal_id IS NOT NULL").await;
    assert!((150..1_000).contains(&imported), "killed part-way: {imported}");
    assert_eq!(
        app.count("crmsync.settings WHERE key = 'import_hubspot_checkpoint'")
            .await,
        1
    );

    let (output, report) = run(&app, &["import-hubspot", "--page-size", "50"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(report["resumed_after"].as_u64().is_some(), "{report}");
    assert!(stderr.contains("import-hubspot: 1000/1000 deals"), "{stderr}");

    assert_eq!(app.count("deals WHERE hubspot_deal_id IS NOT NULL").await, 1_000);
    assert_eq!(
        app.scalar::<i64>("SELECT count(DISTINCT hubspot_deal_id) FROM deals")
            .await,
        1_000,
        "no deal twice"
    );
    assert_eq!(
        app.count("deals").await,
        1_002,
        "the crmsync_id match is one of them; two local deals stay local"
    );
    assert_eq!(
        app.count("deals WHERE hubspot_deal_id IS NOT NULL AND company_id IS NULL")
            .await,
        0
    );
    assert_eq!(app.count("companies").await, 200, "three matched, 197 created");
    assert_eq!(app.count("companies WHERE hubspot_company_id IS NULL").await, 0);
    for uei in ["IMPUEI000001", "IMPUEI000002", "IMPUEI000003"] {
        let linked: Option<String> = app
            .scalar(&format!("SELECT hubspot_company_id FROM companies WHERE uei = '{uei}'"))
            .await;
        assert!(linked.is_some(), "{uei} matched its HubSpot company");
    }
    assert_eq!(
        app.count("contacts WHERE hubspot_contact_id IS NOT NULL AND company_id IS NOT NULL")
            .await,
        100
    );
    assert_eq!(
        app.count(
            "deals d JOIN opportunities o ON o.id = d.opportunity_id WHERE o.notice_id = 'IMP-1'
                   AND d.hubspot_deal_id IS NOT NULL"
        )
        .await,
        1,
        "the local deal matched by crmsync_id"
    );
    let keys = sim_deal_keys_in_pipeline(&app).await;
    assert_eq!(keys.len(), 1_000, "every imported deal carries our id in HubSpot");
    assert_eq!(
        app.count("crmsync.settings WHERE key = 'import_hubspot_checkpoint'")
            .await,
        0
    );

    let (output, again) = run(&app, &["import-hubspot"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for object in ["deals", "companies", "contacts"] {
        assert_eq!(again[object]["created"], 0, "{again}");
    }
    assert_eq!(again["deals"]["matched"]["hubspot_id"], 1_000, "{again}");
    assert_eq!(app.count("deals").await, 1_002);
    assert_eq!(
        app.count("crmsync.sync_runs WHERE trigger = 'import' AND status = 'succeeded'")
            .await,
        2
    );
}

/// The `crmsync_id` of every deal of our pipeline in the simulator that has one.
async fn sim_deal_keys_in_pipeline(app: &TestApp) -> Vec<String> {
    let pipeline = app.pipeline_map().await.pipeline_id;
    app.sim_records("deals")
        .await
        .into_iter()
        .filter(|d| d.prop("pipeline") == Some(pipeline.as_str()))
        .filter_map(|d| d.prop("crmsync_id").map(str::to_owned))
        .collect()
}

/// `crmsync doctor` with the app's database and simulator, a complete configuration, and `extra` variables on
/// top (an empty value removes a variable).
fn doctor(app: &TestApp, extra: &[(&str, &str)]) -> (i32, String) {
    let mut command = command(app, &["doctor"]);
    command
        .env("API_TOKEN", "doctor-test-token-0123456789")
        .env("HUBSPOT_CLIENT_SECRET", "doctor-client-secret")
        .env("HUBSPOT_APP_ID", "54321")
        .env("HUBSPOT_PORTAL_ID", "62515")
        .env_remove("RETRY_DLQ_URL");
    for (name, value) in extra {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    let output = command.output().expect("run crmsync doctor");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The row of `check` in doctor's table.
fn row<'t>(table: &'t str, check: &str) -> &'t str {
    table
        .lines()
        .find(|line| line.starts_with(check))
        .unwrap_or_else(|| panic!("no {check} row in\n{table}"))
}

/// A retry queue and its DLQ in moto (AWS_ENDPOINT_URL), made by `crmsync queue-setup`.
fn queues(app: &TestApp) -> (String, String) {
    let name = format!("doctor-{}", uuid::Uuid::new_v4().simple());
    let (output, urls) = run(app, &["queue-setup", "--name", &name]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (
        urls["RETRY_QUEUE_URL"].as_str().unwrap().to_owned(),
        urls["RETRY_DLQ_URL"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_a_good_deployment_prints_every_check_ok_and_exits_0() {
    let app = TestApp::with_bare_hubspot().await;
    let (output, _) = run(&app, &["hubspot-setup"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (queue, dlq) = queues(&app);
    let (code, table) = doctor(&app, &[("RETRY_QUEUE_URL", &queue), ("RETRY_DLQ_URL", &dlq)]);
    assert_eq!(code, 0, "{table}");
    for check in [
        "configuration",
        "database",
        "hubspot token",
        "hubspot setup",
        "sqs queues",
    ] {
        assert!(row(&table, check).contains(" ok "), "{check}: {table}");
    }
    assert!(row(&table, "database").contains("schema version"), "{table}");
    assert!(row(&table, "hubspot token").contains("portal 62515"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_each_problem_of_a_broken_deployment_and_exits_1() {
    let app = TestApp::with_bare_hubspot().await;
    // A bad database URL, a wrong token, an unreachable queue and a missing client secret, all at once.
    let (code, table) = doctor(
        &app,
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere"),
            ("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong-token"),
            ("RETRY_QUEUE_URL", "http://127.0.0.1:1/000000000000/nowhere"),
            ("HUBSPOT_CLIENT_SECRET", ""),
        ],
    );
    assert_eq!(code, 1, "{table}");
    assert!(
        row(&table, "configuration").contains("HUBSPOT_CLIENT_SECRET is not set"),
        "{table}"
    );
    assert!(
        row(&table, "database").contains("FAIL") && row(&table, "database").contains("cannot connect"),
        "{table}"
    );
    assert!(
        row(&table, "hubspot token").contains("HUBSPOT_ACCESS_TOKEN is not valid"),
        "{table}"
    );
    assert!(row(&table, "hubspot setup").contains("skip"), "{table}");
    assert!(row(&table, "sqs queues").contains("unreachable"), "{table}");

    // A good database and token, but hubspot-setup never ran.
    let (code, table) = doctor(&app, &[]);
    assert_eq!(code, 1, "{table}");
    let setup = row(&table, "hubspot setup");
    assert!(
        setup.contains("FAIL") && setup.contains("deals.crmsync_id") && setup.contains("crmsync hubspot-setup"),
        "{table}"
    );
    assert!(row(&table, "database").contains(" ok "), "{table}");
    assert!(row(&table, "hubspot token").contains(" ok "), "{table}");

    // The token of another portal than HUBSPOT_PORTAL_ID.
    let (code, table) = doctor(&app, &[("HUBSPOT_PORTAL_ID", "99999")]);
    assert_eq!(code, 1, "{table}");
    assert!(
        row(&table, "hubspot token").contains("HUBSPOT_PORTAL_ID is 99999"),
        "{table}"
    );
}
