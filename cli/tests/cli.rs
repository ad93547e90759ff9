//! The `crmsync` binary as an operator runs it: real process, real database.

use std::io::Write;
use std::process::{Command, Stdio};

use crmsync_testkit::TestApp;
use serde_json::{Value, json};

fn crmsync(app: &TestApp, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
        .args(args)
        .env("DATABASE_URL", app.db.url())
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
