//! The migrate Lambda: the provider behind template.yaml's `Custom::DatabaseMigrations` CloudFormation custom
//! resource, so that `sam deploy` applies the pending migrations before any function runs the new code. On Create
//! and Update it runs the same migrations as `crmsync migrate`; on Delete it does nothing (migrations are never
//! undone). Whatever happens it PUTs the outcome to the pre-signed S3 URL CloudFormation sent: without that answer
//! the stack waits for the resource's `ServiceTimeout`
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html>).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponse as Response,
    CloudFormationCustomResourceResponseStatus as Status,
};
use crmsync_db::migrate::{self, MIGRATIONS, MigrationReport};
use crmsync_db::{DatabaseSettings, Pooler};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// The resource's physical id, the same in every answer. A different id in an Update's answer would tell
/// CloudFormation the resource was replaced, and it would then send a Delete for the "old" one.
pub const PHYSICAL_RESOURCE_ID: &str = "crmsync-database-migrations";

/// Time kept back from the invocation's deadline for the answer to CloudFormation: [`PUT_ATTEMPTS`] PUTs of at
/// most [`PUT_TIMEOUT`] each, with a second between them.
pub const RESPONSE_MARGIN: Duration = Duration::from_secs(20);

/// The property template.yaml sets to the function's published version (`!Ref MigrateFunction.Version`, an ARN
/// ending in the version number). A new build publishes a new version, so the property changes and CloudFormation
/// sends an Update: that is what runs the migrations on every deploy whose code changed.
pub const FUNCTION_VERSION_PROPERTY: &str = "FunctionVersion";

const PUT_ATTEMPTS: u32 = 3;
const PUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole answer may not exceed 4096 bytes; the reason is the only part of unbounded length.
const MAX_REASON_CHARS: usize = 1_500;

/// A failed invocation. Only two things fail an invocation: an event that is not a custom resource request, and an
/// answer CloudFormation could not be given. A failed migration is not one of them: it is answered `FAILED`, which
/// is the invocation's successful outcome.
#[derive(Debug, thiserror::Error)]
pub enum MigrateFailure {
    #[error("the event is not a CloudFormation custom resource request: {0}")]
    NotACustomResourceRequest(String),

    /// Lambda retries an asynchronous invocation that fails, so this one is retryable: the migrations are
    /// idempotent, and the retry sends the answer again.
    #[error("could not send the answer to CloudFormation after {PUT_ATTEMPTS} attempts: {0}")]
    Unanswered(String),
}

impl From<MigrateFailure> for Diagnostic {
    fn from(failure: MigrateFailure) -> Self {
        let error_type = match failure {
            MigrateFailure::NotACustomResourceRequest(_) => "NonRetryable",
            MigrateFailure::Unanswered(_) => "Retryable",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: failure.to_string(),
        }
    }
}

/// The provider: where the database is, and the HTTP client that answers CloudFormation. Built once per cold
/// start. A missing database URL does not stop the function from starting: each request is then answered
/// `FAILED` with the variable's name, so the stack fails at once instead of waiting for its timeout.
pub struct MigrationProvider {
    database_url: Result<SecretString, String>,
    /// True when the URL came from `DATABASE_MIGRATION_URL`, which is a direct or session connection by definition;
    /// `DATABASE_URL` on Supabase's port 6543 is a transaction pooler, which migrate refuses.
    direct: bool,
    /// `DATABASE_CA_CERT_FILE`: the PEM bundle trusted beside the system roots (`sslmode` as libpq).
    ca_file: Option<String>,
    /// `DATABASE_CA_CERT`: the same as PEM text, from Secrets Manager.
    ca_pem: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for MigrationProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationProvider")
            .field("database_url", &self.database_url.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl MigrationProvider {
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `DATABASE_MIGRATION_URL`, a direct or session-mode connection (Supabase's transaction pooler on port
    /// 6543 cannot run migrations: they hold a session advisory lock), falling back to `DATABASE_URL`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let found = ["DATABASE_MIGRATION_URL", "DATABASE_URL"]
            .into_iter()
            .find_map(|name| lookup(name).filter(|url| !url.trim().is_empty()).map(|url| (name, url)));
        let direct = found
            .as_ref()
            .is_some_and(|(name, _)| *name == "DATABASE_MIGRATION_URL");
        let database_url = found
            .ok_or_else(|| "neither DATABASE_MIGRATION_URL nor DATABASE_URL is set".to_owned())
            .and_then(|(name, url)| {
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Ok(SecretString::from(url))
                } else {
                    Err(format!("{name} must be a postgres:// or postgresql:// URL"))
                }
            });
        let http = reqwest::Client::builder()
            .timeout(PUT_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            database_url,
            direct,
            ca_file: lookup("DATABASE_CA_CERT_FILE").filter(|path| !path.trim().is_empty()),
            ca_pem: lookup("DATABASE_CA_CERT"),
            http,
        }
    }
}

/// Handles one custom resource request and returns the answer it sent to CloudFormation.
pub async fn handle(provider: &MigrationProvider, event: LambdaEvent<Value>) -> Result<Response, MigrateFailure> {
    let (payload, context) = event.into_parts();
    let request: Request = match serde_json::from_value(payload.clone()) {
        Ok(request) => request,
        Err(error) => return answer_unreadable(provider, &payload, &error.to_string()).await,
    };
    let response = match request {
        Request::Create(create) => {
            let outcome = run_migrations(provider, &context).await;
            build_response(
                outcome,
                PHYSICAL_RESOURCE_ID,
                &create.stack_id,
                &create.request_id,
                &create.logical_resource_id,
            )
        }
        Request::Update(update) => {
            let outcome = if is_rollback(&update.resource_properties, &update.old_resource_properties) {
                // The stack is rolling back to an older build while this (newer) code is still deployed. Migrations
                // only move forward, and running them again would repeat whatever failed and leave the stack in
                // UPDATE_ROLLBACK_FAILED; the older code runs on the newer schema.
                Ok(Outcome::Skipped(
                    "rolling back to an older build: migrations are not undone".into(),
                ))
            } else {
                run_migrations(provider, &context).await
            };
            build_response(
                outcome,
                &update.physical_resource_id,
                &update.stack_id,
                &update.request_id,
                &update.logical_resource_id,
            )
        }
        Request::Delete(delete) => build_response(
            Ok(Outcome::Skipped(
                "nothing to do: migrations are never undone, the data stays".into(),
            )),
            &delete.physical_resource_id,
            &delete.stack_id,
            &delete.request_id,
            &delete.logical_resource_id,
        ),
    };
    let url = response_url(&payload).unwrap_or_default();
    send(provider, &url, &response).await?;
    Ok(response)
}

/// What a request did, when it did not fail.
enum Outcome {
    Migrated(MigrationReport),
    Skipped(String),
}

/// Connects and migrates, bounded so that the answer can still be sent before the invocation's deadline.
async fn run_migrations(provider: &MigrationProvider, context: &Context) -> Result<Outcome, String> {
    let database_url = provider.database_url.as_ref().map_err(Clone::clone)?;
    let budget = remaining(context.deadline)
        .saturating_sub(RESPONSE_MARGIN)
        .max(Duration::from_secs(1));
    let migrations = async {
        let mut settings = DatabaseSettings::parse(database_url.expose_secret(), migrate::MIGRATION_TIMEOUTS)?
            .with_ca_file(provider.ca_file.clone())
            .with_ca_pem(provider.ca_pem.clone());
        if provider.direct {
            settings = settings.with_pooler(Pooler::None);
        }
        let mut client = migrate::connect(&settings).await?;
        migrate::migrate(&mut client).await
    };
    match tokio::time::timeout(budget, migrations).await {
        Ok(Ok(report)) => Ok(Outcome::Migrated(report)),
        Ok(Err(error)) => Err(format!("migration failed: {}", crmsync_db::error_chain(&error))),
        Err(_) => Err(format!(
            "migrations did not finish within {}s (the function's timeout minus {}s for this answer); each \
             migration is its own transaction, so those not recorded as applied left nothing behind",
            budget.as_secs(),
            RESPONSE_MARGIN.as_secs()
        )),
    }
}

fn build_response(
    outcome: Result<Outcome, String>,
    physical_resource_id: &str,
    stack_id: &str,
    request_id: &str,
    logical_resource_id: &str,
) -> Response {
    let (status, reason, data) = match outcome {
        Ok(Outcome::Migrated(report)) => {
            tracing::info!(applied = ?report.applied, already_applied = report.already_applied.len(), "migrations done");
            let reason = if report.applied.is_empty() {
                format!(
                    "the schema is current ({} migrations already applied)",
                    report.already_applied.len()
                )
            } else {
                format!("applied migrations {}", versions(&report.applied))
            };
            (Status::Success, reason, report_data(&report))
        }
        Ok(Outcome::Skipped(reason)) => {
            tracing::info!(%reason, "no migrations run");
            (Status::Success, reason, HashMap::new())
        }
        Err(reason) => {
            tracing::error!(%reason, "migrations failed");
            (Status::Failed, reason, HashMap::new())
        }
    };
    Response {
        status,
        reason: Some(truncate(&reason, MAX_REASON_CHARS)),
        physical_resource_id: physical_resource_id.to_owned(),
        stack_id: stack_id.to_owned(),
        request_id: request_id.to_owned(),
        logical_resource_id: logical_resource_id.to_owned(),
        no_echo: false,
        data,
    }
}

/// `Fn::GetAtt DatabaseMigrations.Applied` and friends: comma-separated versions, and the newest version built in.
fn report_data(report: &MigrationReport) -> HashMap<String, String> {
    let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    HashMap::from([
        ("Applied".to_owned(), versions(&report.applied)),
        ("AlreadyApplied".to_owned(), versions(&report.already_applied)),
        ("SchemaVersion".to_owned(), latest.to_string()),
    ])
}

fn versions(versions: &[i32]) -> String {
    versions.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// True when an Update goes back to an older published version of this function: a rollback.
fn is_rollback(properties: &Value, old_properties: &Value) -> bool {
    match (function_version(properties), function_version(old_properties)) {
        (Some(new), Some(old)) => new < old,
        _ => false,
    }
}

/// The version number at the end of a version ARN (`arn:aws:lambda:...:function:name:7`), or a bare number.
fn function_version(properties: &Value) -> Option<u64> {
    properties
        .get(FUNCTION_VERSION_PROPERTY)?
        .as_str()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// An event that is not a valid request still gets a `FAILED` answer when it names a response URL, so that the
/// stack does not wait for its timeout.
async fn answer_unreadable(
    provider: &MigrationProvider,
    payload: &Value,
    error: &str,
) -> Result<Response, MigrateFailure> {
    let Some(url) = response_url(payload) else {
        return Err(MigrateFailure::NotACustomResourceRequest(error.to_owned()));
    };
    let field = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let physical_resource_id = payload
        .get("PhysicalResourceId")
        .and_then(Value::as_str)
        .unwrap_or(PHYSICAL_RESOURCE_ID);
    let response = build_response(
        Err(format!("unreadable custom resource request: {error}")),
        physical_resource_id,
        &field("StackId"),
        &field("RequestId"),
        &field("LogicalResourceId"),
    );
    send(provider, &url, &response).await?;
    Ok(response)
}

fn response_url(payload: &Value) -> Option<String> {
    payload.get("ResponseURL").and_then(Value::as_str).map(str::to_owned)
}

/// PUTs the answer to the pre-signed URL. The body has an empty `Content-Type`: the URL is signed without one, so
/// S3 would refuse any other (what AWS's own `cfn-response` module sends). Tried [`PUT_ATTEMPTS`] times.
async fn send(provider: &MigrationProvider, url: &str, response: &Response) -> Result<(), MigrateFailure> {
    let body = serde_json::to_vec(response).map_err(|e| MigrateFailure::Unanswered(e.to_string()))?;
    let mut last_error = String::new();
    for attempt in 1..=PUT_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let sent = provider
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => {
                tracing::info!(status = ?response.status, attempt, "answered CloudFormation");
                return Ok(());
            }
            // The URL is a bearer credential for the answer: log neither it nor the error text that contains it.
            Ok(answer) => last_error = format!("HTTP {}", answer.status()),
            Err(error) => last_error = describe_send_error(&error),
        }
        tracing::warn!(attempt, error = %last_error, "could not answer CloudFormation");
    }
    Err(MigrateFailure::Unanswered(last_error))
}

fn describe_send_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_builder() {
        "not a valid URL"
    } else {
        "request failed"
    };
    kind.to_owned()
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Time left until a deadline given in milliseconds since the epoch.
fn remaining(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_update_to_a_lower_function_version_is_a_rollback() {
        let arn =
            |n: u32| json!({ "FunctionVersion": format!("arn:aws:lambda:us-east-1:123456789012:function:m:{n}") });
        assert!(is_rollback(&arn(6), &arn(7)));
        assert!(!is_rollback(&arn(8), &arn(7)));
        assert!(
            !is_rollback(&arn(7), &arn(7)),
            "same version, e.g. another database: migrate"
        );
        assert!(!is_rollback(&json!({}), &arn(7)), "unknown: migrate");
    }

    #[test]
    fn the_migration_url_comes_first_and_a_missing_one_is_named() {
        let both = MigrationProvider::from_lookup(|name| match name {
            "DATABASE_MIGRATION_URL" => Some("postgres://direct:5432/db".into()),
            "DATABASE_URL" => Some("postgres://pooler:6543/db".into()),
            _ => None,
        });
        assert_eq!(
            both.database_url.as_ref().map(|u| u.expose_secret().to_owned()),
            Ok("postgres://direct:5432/db".to_owned())
        );
        let fallback =
            MigrationProvider::from_lookup(|name| (name == "DATABASE_URL").then(|| "postgres://host/db".to_owned()));
        assert!(fallback.database_url.is_ok());
        let neither = MigrationProvider::from_lookup(|_| None);
        assert_eq!(
            neither.database_url.as_ref().map(|_| ()),
            Err(&"neither DATABASE_MIGRATION_URL nor DATABASE_URL is set".to_owned())
        );
        let wrong = MigrationProvider::from_lookup(|name| {
            (name == "DATABASE_MIGRATION_URL").then(|| "mysql://secret@host/db".to_owned())
        });
        let error = wrong.database_url.as_ref().map(|_| ()).unwrap_err();
        assert!(
            error.contains("DATABASE_MIGRATION_URL") && !error.contains("secret"),
            "{error}"
        );
        assert!(!format!("{both:?}").contains("direct"), "the URL is redacted in Debug");
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(2_000);
        let cut = truncate(&reason, MAX_REASON_CHARS);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
