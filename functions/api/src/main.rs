//! Lambda entry point: configuration, telemetry, the pool and the router are built once per cold start.

use crmsync_app::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    config.api.require_credentials()?;
    let pool = config.connect_pool(crmsync_app::Timeouts::API)?;
    let kicker = config.drain_kicker(&pool).await;
    lambda_http::run(api::app(pool, &config.api, kicker)).await
}
