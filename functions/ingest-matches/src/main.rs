//! Lambda entry point: configuration, telemetry and the database pool are built once per cold start.

use crmsync_app::Config;
use crmsync_db::{PgMatchStore, connect_pool};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use secrecy::ExposeSecret;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    let store = PgMatchStore::new(connect_pool(
        config.database_url.expose_secret(),
        config.database_pool_size,
    )?);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        ingest_matches::handle(&store, event)
    }))
    .await
}
