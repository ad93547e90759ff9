//! Lambda entry point: configuration, telemetry, the database pool and the fast path's kicker are built once per
//! cold start.

use crmsync_app::Config;
use crmsync_db::PgMatchStore;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    let pool = config.connect_pool(crmsync_app::Timeouts::BACKGROUND)?;
    let kicker = config.drain_kicker(&pool).await;
    let store = PgMatchStore::new(pool);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        ingest_matches::handle(&store, &kicker, event)
    }))
    .await
}
