//! Lambda entry point: configuration, the pool, the HubSpot client and the retry queue are built once per cold start.

use crmsync_app::Config;
use crmsync_http::webhook::{ApplyMode, from_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    crmsync_app::telemetry::init();
    let config = Config::from_env()?;
    if config.webhook.client_secret.is_none() {
        return Err("HUBSPOT_CLIENT_SECRET must be set: it verifies HubSpot's signatures".into());
    }
    // Lambda freezes the process once the response is sent, so events are applied before answering.
    let state = from_config(
        &config,
        config.connect_pool(crmsync_app::Timeouts::WEBHOOK)?,
        ApplyMode::Inline,
    )
    .await?;
    lambda_http::run(hubspot_webhook::app(state)).await
}
