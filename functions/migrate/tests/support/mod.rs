//! What the migrate tests share: the requests CloudFormation sends, a local stand-in for the pre-signed S3 URL that
//! records every answer PUT to it, and an empty database made on the test server.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::put;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// How long a test waits for an answer. Generous: tests must not depend on the machine's speed.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub const STACK_ID: &str =
    "arn:aws:cloudformation:us-east-1:123456789012:stack/crmsync/5b5fb6a0-0000-4000-8000-000000000001";
pub const SERVICE_TOKEN: &str = "arn:aws:lambda:us-east-1:123456789012:function:crmsync-migrate";

/// One PUT to the response URL, as S3 would have stored it.
#[derive(Debug)]
pub struct Answer {
    /// Path and query, as sent.
    pub uri: String,
    /// The `Content-Type` header: `Some("")` when sent empty, `None` when absent.
    pub content_type: Option<String>,
    pub body: Value,
}

impl Answer {
    pub fn status(&self) -> &str {
        self.body["Status"].as_str().unwrap_or_default()
    }

    pub fn reason(&self) -> &str {
        self.body["Reason"].as_str().unwrap_or_default()
    }
}

struct BucketState {
    answers: mpsc::UnboundedSender<Answer>,
    refusals_left: AtomicU32,
}

/// A local HTTP server playing the pre-signed S3 URL CloudFormation puts in `ResponseURL`.
pub struct ResponseBucket {
    base: String,
    answers: Mutex<mpsc::UnboundedReceiver<Answer>>,
    server: JoinHandle<()>,
}

impl ResponseBucket {
    pub async fn start() -> Self {
        Self::refusing_first(0).await
    }

    /// A bucket that answers the first `refusals` PUTs with 503 (and records nothing for them).
    pub async fn refusing_first(refusals: u32) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(BucketState {
            answers: sender,
            refusals_left: AtomicU32::new(refusals),
        });
        let router = Router::new().route("/{*key}", put(store)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("response bucket");
        });
        Self {
            base,
            answers: Mutex::new(receiver),
            server,
        }
    }

    /// A URL shaped like CloudFormation's pre-signed one.
    pub fn response_url(&self, request_id: &str) -> String {
        format!(
            "{}/cloudformation-custom-resource-response-useast1/{request_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Expires=7200&X-Amz-Signature=0f1e2d3c",
            self.base
        )
    }

    /// The next answer; panics when none arrives within [`ANSWER_TIMEOUT`].
    pub async fn next_answer(&self) -> Answer {
        let mut answers = self.answers.lock().await;
        tokio::time::timeout(ANSWER_TIMEOUT, answers.recv())
            .await
            .expect("an answer within the timeout")
            .expect("the bucket is running")
    }

    /// True when no further answer has arrived.
    pub async fn is_quiet(&self) -> bool {
        self.answers.lock().await.try_recv().is_err()
    }
}

impl Drop for ResponseBucket {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn store(
    State(state): State<Arc<BucketState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let refused = state
        .refusals_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
        .is_ok();
    if refused {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let answer = Answer {
        uri: uri.to_string(),
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned()),
        body: serde_json::from_slice(&body).unwrap_or_else(|e| panic!("the answer is not JSON ({e})")),
    };
    let _ = state.answers.send(answer);
    StatusCode::OK
}

/// The version ARN template.yaml passes as `FunctionVersion` (`!Ref MigrateFunction.Version`).
pub fn version_arn(version: u32) -> String {
    format!("{SERVICE_TOKEN}:{version}")
}

/// A Create request as CloudFormation sends it
/// (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-create.html>).
pub fn create_request(bucket: &ResponseBucket, function_version: u32) -> Value {
    let request_id = unique_id();
    json!({
        "RequestType": "Create",
        "ServiceToken": SERVICE_TOKEN,
        "ResponseURL": bucket.response_url(&request_id),
        "StackId": STACK_ID,
        "RequestId": request_id,
        "LogicalResourceId": "DatabaseMigrations",
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {
            "ServiceToken": SERVICE_TOKEN,
            "FunctionVersion": version_arn(function_version)
        }
    })
}

/// An Update from `old_version` to `new_version` of the function.
pub fn update_request(bucket: &ResponseBucket, new_version: u32, old_version: u32) -> Value {
    let request_id = unique_id();
    json!({
        "RequestType": "Update",
        "ServiceToken": SERVICE_TOKEN,
        "ResponseURL": bucket.response_url(&request_id),
        "StackId": STACK_ID,
        "RequestId": request_id,
        "LogicalResourceId": "DatabaseMigrations",
        "PhysicalResourceId": migrate::PHYSICAL_RESOURCE_ID,
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": {
            "ServiceToken": SERVICE_TOKEN,
            "FunctionVersion": version_arn(new_version)
        },
        "OldResourceProperties": {
            "ServiceToken": SERVICE_TOKEN,
            "FunctionVersion": version_arn(old_version)
        }
    })
}

pub fn delete_request(bucket: &ResponseBucket) -> Value {
    let request_id = unique_id();
    json!({
        "RequestType": "Delete",
        "ServiceToken": SERVICE_TOKEN,
        "ResponseURL": bucket.response_url(&request_id),
        "StackId": STACK_ID,
        "RequestId": request_id,
        "LogicalResourceId": "DatabaseMigrations",
        "PhysicalResourceId": migrate::PHYSICAL_RESOURCE_ID,
        "ResourceType": "Custom::DatabaseMigrations",
        "ResourceProperties": { "ServiceToken": SERVICE_TOKEN, "FunctionVersion": version_arn(1) }
    })
}

fn unique_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Every migration version this build carries.
pub fn all_versions() -> String {
    crmsync_db::migrate::MIGRATIONS
        .iter()
        .map(|m| m.version.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A database with nothing in it ([`TestDb::empty`]): dropped with it, kept for debugging when a test panics.
pub struct EmptyDatabase {
    db: crmsync_db::test_db::TestDb,
}

impl EmptyDatabase {
    pub async fn create() -> Self {
        Self {
            db: crmsync_db::test_db::TestDb::empty().await,
        }
    }

    pub fn url(&self) -> &str {
        self.db.direct_url()
    }

    /// The versions recorded in `crmsync.schema_migrations`, or `None` when the table does not exist.
    pub async fn recorded_versions(&self) -> Option<String> {
        let client = crmsync_db::migrate::connect_url(self.url()).await.expect("connect");
        let exists: bool = client
            .query_one("SELECT to_regclass('crmsync.schema_migrations') IS NOT NULL", &[])
            .await
            .expect("query")
            .get(0);
        if !exists {
            return None;
        }
        let versions: Vec<i32> = client
            .query("SELECT version FROM crmsync.schema_migrations ORDER BY version", &[])
            .await
            .expect("query")
            .iter()
            .map(|row| row.get(0))
            .collect();
        Some(versions.iter().map(i32::to_string).collect::<Vec<_>>().join(","))
    }

    /// Tables outside the system schemas: none in an empty database.
    pub async fn table_count(&self) -> i64 {
        let client = crmsync_db::migrate::connect_url(self.url()).await.expect("connect");
        client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
                &[],
            )
            .await
            .expect("query")
            .get(0)
    }

    pub async fn drop_database(self) {
        drop(self.db);
    }
}

/// A Lambda context whose deadline is `left` from now.
pub fn context_with(left: Duration) -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.deadline = (SystemTime::now() + left)
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;
    context
}
