//! The handler called as the runtime calls it, with the requests CloudFormation sends, a real PostgreSQL and a local
//! stand-in for the pre-signed S3 URL that records the answer.

mod support;

use std::time::{Duration, Instant};

use lambda_runtime::LambdaEvent;
use migrate::{MigrationProvider, PHYSICAL_RESOURCE_ID, RESPONSE_MARGIN};
use serde_json::Value;
use support::{
    ANSWER_TIMEOUT, EmptyDatabase, ResponseBucket, STACK_ID, all_versions, context_with, create_request,
    delete_request, update_request,
};

fn provider_for(database_url: &str) -> MigrationProvider {
    let url = database_url.to_owned();
    MigrationProvider::from_lookup(move |name| (name == "DATABASE_MIGRATION_URL").then(|| url.clone()))
}

/// Handles `request` with five minutes left, as template.yaml's function timeout gives it.
async fn handle(provider: &MigrationProvider, request: Value) {
    migrate::handle(
        provider,
        LambdaEvent::new(request, context_with(Duration::from_secs(300))),
    )
    .await
    .expect("the request is answered");
}

#[tokio::test]
async fn create_on_an_empty_database_applies_every_migration_and_answers_success_with_the_versions() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::start().await;
    let request = create_request(&bucket, 1);

    handle(&provider_for(db.url()), request.clone()).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "SUCCESS", "{:?}", answer.body);
    assert_eq!(
        answer.content_type.as_deref(),
        Some(""),
        "an empty Content-Type, as the pre-signed URL is signed"
    );
    assert_eq!(
        Some(answer.uri.as_str()),
        request["ResponseURL"]
            .as_str()
            .and_then(|u| u.find("/cloudformation").map(|i| &u[i..]))
    );
    assert_eq!(answer.body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
    assert_eq!(answer.body["StackId"], STACK_ID);
    assert_eq!(answer.body["RequestId"], request["RequestId"]);
    assert_eq!(answer.body["LogicalResourceId"], "DatabaseMigrations");
    assert_eq!(
        answer.body["Data"]["Applied"],
        all_versions().as_str(),
        "{:?}",
        answer.body
    );
    assert_eq!(answer.body["Data"]["AlreadyApplied"], "");
    assert_eq!(db.recorded_versions().await, Some(all_versions()));
    assert!(bucket.is_quiet().await, "one answer per request");
    db.drop_database().await;
}

#[tokio::test]
async fn an_update_after_the_create_applies_nothing_and_answers_success() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::start().await;
    let provider = provider_for(db.url());
    handle(&provider, create_request(&bucket, 1)).await;
    assert_eq!(bucket.next_answer().await.status(), "SUCCESS");

    handle(&provider, update_request(&bucket, 2, 1)).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "SUCCESS", "{:?}", answer.body);
    assert_eq!(
        answer.body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID,
        "the same resource"
    );
    assert_eq!(answer.body["Data"]["Applied"], "");
    assert_eq!(answer.body["Data"]["AlreadyApplied"], all_versions().as_str());
    assert!(answer.reason().contains("current"), "{}", answer.reason());
    db.drop_database().await;
}

#[tokio::test]
async fn an_unreachable_database_answers_failed_with_the_reason_and_no_password() {
    let bucket = ResponseBucket::start().await;
    let provider = provider_for("postgres://postgres:hunter2-secret@127.0.0.1:1/crmsync");

    handle(&provider, create_request(&bucket, 1)).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "FAILED", "{:?}", answer.body);
    assert_eq!(answer.content_type.as_deref(), Some(""));
    assert!(answer.reason().starts_with("migration failed: "), "{}", answer.reason());
    assert!(
        answer.reason().to_lowercase().contains("connect"),
        "the cause, not only \"database error\": {}",
        answer.reason()
    );
    assert!(!answer.reason().contains("hunter2"), "{}", answer.reason());
    assert_eq!(
        answer.body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID,
        "a failed Create is rolled back with a Delete of this id"
    );
}

#[tokio::test]
async fn delete_answers_success_without_touching_the_database() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::start().await;

    handle(&provider_for(db.url()), delete_request(&bucket)).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "SUCCESS", "{:?}", answer.body);
    assert_eq!(answer.body["PhysicalResourceId"], PHYSICAL_RESOURCE_ID);
    assert_eq!(db.recorded_versions().await, None);
    assert_eq!(db.table_count().await, 0);
    db.drop_database().await;
}

#[tokio::test]
async fn a_rollback_to_an_older_function_version_answers_success_without_migrating() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::start().await;

    handle(&provider_for(db.url()), update_request(&bucket, 6, 7)).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "SUCCESS", "{:?}", answer.body);
    assert!(answer.reason().contains("rolling back"), "{}", answer.reason());
    assert_eq!(db.recorded_versions().await, None);
    db.drop_database().await;
}

#[tokio::test]
async fn a_database_that_never_answers_is_cut_off_in_time_to_answer_failed() {
    // Accepts connections and never says a word: the startup message waits forever.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = silent.local_addr().expect("address").port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let bucket = ResponseBucket::start().await;
    let provider = provider_for(&format!("postgres://postgres@127.0.0.1:{port}/crmsync"));
    let started = Instant::now();

    // Two seconds for the migrations once the answer's margin is kept back.
    let context = context_with(RESPONSE_MARGIN + Duration::from_secs(2));
    migrate::handle(&provider, LambdaEvent::new(create_request(&bucket, 1), context))
        .await
        .expect("answered");

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "FAILED", "{:?}", answer.body);
    assert!(answer.reason().contains("did not finish within"), "{}", answer.reason());
    assert!(
        started.elapsed() < RESPONSE_MARGIN,
        "answered before the deadline's margin began: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_a_database_url_every_request_is_answered_failed_naming_the_variables() {
    let bucket = ResponseBucket::start().await;
    let provider = MigrationProvider::from_lookup(|_| None);

    handle(&provider, create_request(&bucket, 1)).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "FAILED");
    assert!(
        answer.reason().contains("DATABASE_MIGRATION_URL") && answer.reason().contains("DATABASE_URL"),
        "{}",
        answer.reason()
    );
}

#[tokio::test]
async fn an_answer_the_bucket_refuses_once_is_sent_again() {
    let db = EmptyDatabase::create().await;
    let bucket = ResponseBucket::refusing_first(1).await;

    handle(&provider_for(db.url()), delete_request(&bucket)).await;

    let answer = tokio::time::timeout(ANSWER_TIMEOUT, bucket.next_answer())
        .await
        .expect("the second attempt arrives");
    assert_eq!(answer.status(), "SUCCESS");
    db.drop_database().await;
}

#[tokio::test]
async fn a_request_without_a_response_url_fails_the_invocation_as_non_retryable() {
    let provider = MigrationProvider::from_lookup(|_| None);
    let failure = migrate::handle(
        &provider,
        LambdaEvent::new(
            serde_json::json!({ "RequestType": "Create" }),
            context_with(Duration::from_secs(60)),
        ),
    )
    .await
    .expect_err("nowhere to answer");
    let diagnostic = lambda_runtime::Diagnostic::from(failure);
    assert_eq!(diagnostic.error_type, "NonRetryable");
    assert!(
        diagnostic.error_message.contains("custom resource request"),
        "{diagnostic:?}"
    );
}

#[tokio::test]
async fn a_malformed_request_with_a_response_url_is_still_answered_failed() {
    let bucket = ResponseBucket::start().await;
    let mut request = create_request(&bucket, 1);
    request["RequestType"] = "Replace".into();

    handle(&MigrationProvider::from_lookup(|_| None), request.clone()).await;

    let answer = bucket.next_answer().await;
    assert_eq!(answer.status(), "FAILED");
    assert!(answer.reason().contains("unreadable"), "{}", answer.reason());
    assert_eq!(answer.body["RequestId"], request["RequestId"]);
    assert_eq!(answer.body["StackId"], STACK_ID);
}
