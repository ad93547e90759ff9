//! Lambda entry point: the database URL and the HTTP client that answers CloudFormation are read once per cold
//! start. Nothing here can fail before the runtime polls, so every request gets an answer.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use migrate::MigrationProvider;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    crmsync_app::telemetry::init();
    let provider = MigrationProvider::from_env();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        migrate::handle(&provider, event)
    }))
    .await
}
