//! The migrate binary's `main` under a local Lambda Runtime API, invoked with the requests CloudFormation sends for
//! template.yaml's `DatabaseMigrations` resource, against a fresh empty database.

mod support;

use crmsync_testkit::lambda::FunctionProcess;
use support::{EmptyDatabase, ResponseBucket, all_versions, create_request, delete_request, update_request};

#[tokio::test]
async fn a_deploy_migrates_through_the_migration_url_and_a_stack_delete_leaves_the_schema() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::start().await;
    // DATABASE_URL is the transaction pooler in AWS; here it leads nowhere, so success proves the direct URL won.
    let function = FunctionProcess::start(
        env!("CARGO_BIN_EXE_migrate"),
        "crmsync-migrate",
        &[
            ("DATABASE_MIGRATION_URL", db.url()),
            ("DATABASE_URL", "postgres://postgres:pooler-secret@127.0.0.1:1/postgres"),
        ],
    )
    .await;

    let sent = function.invoke(create_request(&bucket, 1)).await.expect("answered");
    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "SUCCESS", "{:?}\n{}", answer.body, function.logs());
    assert_eq!(answer.body, sent, "the invocation returns the answer it sent");
    assert_eq!(answer.body["Data"]["Applied"], all_versions().as_str());
    assert_eq!(db.recorded_versions().await, Some(all_versions()));

    // The next deploy (a new function version) finds nothing to do; deleting the stack keeps the schema.
    function.invoke(update_request(&bucket, 2, 1)).await.expect("answered");
    assert_eq!(bucket.next_answer().await.body["Data"]["Applied"], "");
    function.invoke(delete_request(&bucket)).await.expect("answered");
    assert_eq!(bucket.next_answer().await.status(), "SUCCESS");
    assert_eq!(db.recorded_versions().await, Some(all_versions()));

    let logs = function.logs();
    assert!(
        !logs.contains(db.url()) && !logs.contains("pooler-secret"),
        "no URL in the logs:\n{logs}"
    );
    drop(function);
    db.drop_database().await;
}

#[tokio::test]
async fn a_function_without_a_database_url_starts_and_answers_failed_instead_of_leaving_the_stack_waiting() {
    let bucket = ResponseBucket::start().await;
    let function = FunctionProcess::start(env!("CARGO_BIN_EXE_migrate"), "crmsync-migrate", &[]).await;

    function.invoke(create_request(&bucket, 1)).await.expect("answered");

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "FAILED", "{:?}", answer.body);
    assert!(
        answer.reason().contains("DATABASE_MIGRATION_URL"),
        "{}",
        answer.reason()
    );
    assert_eq!(function.init_error(), None, "no init failure: the runtime polled");
}
