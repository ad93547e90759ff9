//! Lambda entry point: configuration, telemetry and the database pool are built once per cold start.

use crmsync_app::Config;
use crmsync_db::PgMatchStore;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    let store = PgMatchStore::new(config.connect_pool(crmsync_app::Timeouts::BACKGROUND)?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        ingest_matches::handle(&store, event)
    }))
    .await
}
