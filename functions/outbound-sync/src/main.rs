//! Lambda entry point: configuration, the pool, the HubSpot client and the retry queue are built once per cold start.

#![recursion_limit = "256"]

use crmsync_app::Config;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    let sync = crmsync_sync::from_config(&config, config.connect_pool(crmsync_app::Timeouts::BACKGROUND)?).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        outbound_sync::handle(&sync, &config.retention, event)
    }))
    .await
}
