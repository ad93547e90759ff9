//! The `crmsync` binary as an operator runs it: real process, real database.

use std::io::Write;
use std::process::{Command, Stdio};

use crmsync_db::migrate::MIGRATIONS;
use crmsync_db::test_db::{TestDb, UPSTREAM_SCHEMA_FIXTURE};
use crmsync_testkit::TestApp;
use serde_json::{Value, json};

fn crmsync(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    crmsync_on(app.db.url(), args, stdin)
}

fn crmsync_on(database_url: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crmsync");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ingest_prints_only_the_report_on_stdout_and_exits_1_on_a_rejection() {
    let app = TestApp::new().await;
    let event = json!({ "matches": [
        { "opportunity": { "notice_id": "CLI-1", "title": "Data center relocation" },
          "contractor": { "uei": "CLIUEI000001", "name": "Move Co" }, "match_score": 64 },
        { "opportunity": { "notice_id": "CLI-2", "title": "" },
          "contractor": { "uei": "CLIUEI000001", "name": "Move Co" }, "match_score": 64 }
    ]});
    let (code, stdout, stderr) = crmsync(&app, &["ingest", "-"], &event.to_string());
    assert_eq!(code, 1, "stderr: {stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("stdout is exactly one JSON document");
    assert_eq!(report["deals_created"], 1);
    assert_eq!(
        report["rejected"],
        json!([{ "index": 1, "field": "opportunity.title", "error": "opportunity.title: is required" }])
    );
    assert!(stderr.contains("ingested matches"), "logs go to stderr: {stderr}");

    let (code, stdout, _) = crmsync(
        &app,
        &["ingest", "-"],
        &json!({ "matches": [event["matches"][0]] }).to_string(),
    );
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["unchanged"], 1, "re-delivery changes nothing");
}

#[tokio::test]
async fn migrate_on_a_migrated_database_applies_nothing() {
    let app = TestApp::new().await;
    let (code, stdout, stderr) = crmsync(&app, &["migrate"], "");
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["applied"], json!([]));
}

#[tokio::test]
async fn migrate_plan_on_the_guides_database_lists_the_adoption_and_changes_nothing_then_migrate_adopts() {
    let db = TestDb::empty().await;
    let client = crmsync_db::migrate::connect_url(db.direct_url()).await.unwrap();
    client.batch_execute(UPSTREAM_SCHEMA_FIXTURE).await.unwrap();
    let schemas = "SELECT count(*) FROM pg_namespace WHERE nspname = 'crmsync'";

    let (code, stdout, stderr) = crmsync_on(db.url(), &["migrate", "--plan"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("crmsync migrate --plan: nothing was changed."),
        "{stdout}"
    );
    assert!(
        stdout.contains("  ALTER TABLE public.opportunities ADD COLUMN description text;\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  0008_ingest_records.sql\n"), "{stdout}");
    let crmsync_schemas: i64 = client.query_one(schemas, &[]).await.unwrap().get(0);
    assert_eq!(crmsync_schemas, 0, "the plan changed nothing");

    let (code, stdout, stderr) = crmsync_on(db.url(), &["migrate"], "");
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["adopted"]
            .as_array()
            .unwrap()
            .contains(&json!("ALTER TABLE public.opportunities ADD COLUMN description text;")),
        "{report}"
    );
    assert_eq!(report["applied"].as_array().unwrap().len(), MIGRATIONS.len());
}

#[tokio::test]
async fn migrate_on_duplicate_notice_ids_exits_2_with_the_report_and_changes_nothing() {
    let db = TestDb::empty().await;
    let client = crmsync_db::migrate::connect_url(db.direct_url()).await.unwrap();
    client.batch_execute(UPSTREAM_SCHEMA_FIXTURE).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO opportunities (notice_id, title) VALUES ('SAM-2025-0001', 'Cloud migration support (repost)')",
        )
        .await
        .unwrap();

    let (code, stdout, _) = crmsync_on(db.url(), &["migrate", "--plan"], "");
    assert_eq!(code, 1, "the plan shows the problem: {stdout}");
    assert!(
        stdout.contains("Problems (migrate stops before changing anything):"),
        "{stdout}"
    );

    let (code, stdout, stderr) = crmsync_on(db.url(), &["migrate"], "");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "", "nothing on stdout: the report is the error");
    for expected in [
        "crmsync: migration failed: migrate changed nothing",
        "1. public.opportunities: 1 value(s) of (notice_id) occur more than once, e.g. (SAM-2025-0001) ×2",
        "ALTER TABLE public.opportunities ADD CONSTRAINT opportunities_notice_id_key UNIQUE (notice_id);",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    let crmsync_schemas: i64 = client
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'crmsync'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(crmsync_schemas, 0, "nothing was changed");
}

#[test]
fn every_command_has_help() {
    for command in [
        &["--help"][..],
        &["migrate", "--help"],
        &["ingest", "--help"],
        &["serve", "--help"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
            .args(command)
            .output()
            .expect("run");
        assert!(output.status.success(), "{command:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{command:?}");
    }
}

#[test]
fn a_missing_database_url_is_named_in_the_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is not set"));
}

#[tokio::test]
async fn prune_prints_the_rows_deleted_per_table_and_refuses_an_inbox_retention_under_seven_days() {
    let app = TestApp::new().await;
    app.execute(
        "INSERT INTO sync_queue (entity_type, entity_id, operation, status, completed_at) VALUES
           ('deal', gen_random_uuid(), 'update', 'completed', now() - interval '20 days'),
           ('deal', gen_random_uuid(), 'update', 'pending', NULL)",
    )
    .await;

    let (code, stdout, stderr) = crmsync(&app, &["prune"], "");
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("stdout is exactly one JSON document");
    assert_eq!(report["deleted"]["sync_queue"], 1);
    assert_eq!(report["deleted"]["webhook_inbox"], 0);
    assert_eq!(report["complete"], true);
    assert_eq!(app.count("sync_queue WHERE status = 'pending'").await, 1);

    let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .arg("prune")
        .env("DATABASE_URL", app.db.url())
        .env("PRUNE_INBOX_DAYS", "3")
        .output()
        .expect("run crmsync");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PRUNE_INBOX_DAYS") && stderr.contains("at least 7"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn serve_without_a_hubspot_token_refuses_to_start_unless_asked_for_the_simulator() {
    let output = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        .env("API_TOKEN", "serve-test-token-0123456789")
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HUBSPOT_ACCESS_TOKEN is not set") && stderr.contains("--simulator"),
        "{stderr}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--simulator"));
}
