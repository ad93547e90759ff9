//! Lambda entry point: configuration, telemetry, the pool and the router are built once per cold start.

use crmsync_app::Config;
use crmsync_db::connect_pool;
use crmsync_http::api::ApiConfig;
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    let api_config = ApiConfig::from_env()?;
    let pool = connect_pool(config.database_url.expose_secret(), config.database_pool_size)?;
    lambda_http::run(api::app(pool, &api_config)).await
}
