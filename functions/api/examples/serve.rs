//! The api function's router on a local port, for the end-to-end tests (schemathesis, the browser test) and for
//! trying the dashboard without `crmsync serve`: `cargo run -p api --example serve -- 127.0.0.1:8090`.
//! Migrates `DATABASE_URL` first; reads API_TOKEN, API_JWT_SECRET and API_CORS_ORIGINS like the Lambda.

use anyhow::Context;
use crmsync_app::Config;
use crmsync_db::migrate;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    crmsync_app::telemetry::init();
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let config = Config::from_env()?;
    config.api.require_credentials()?;
    let mut client = migrate::connect(&config.migration_database()?).await?;
    migrate::migrate(&mut client).await.context("migration failed")?;
    let pool = config.connect_pool(crmsync_app::Timeouts::API)?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("could not bind {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, "api listening");
    axum::serve(
        listener,
        api::app(pool, &config.api, crmsync_app::kick::DrainKicker::Off),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
