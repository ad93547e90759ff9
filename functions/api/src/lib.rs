//! The api Lambda: the dashboard REST API and the web dashboard behind an API Gateway HTTP API. It serves the very
//! router `crmsync serve` mounts, so the two cannot drift apart.

use axum::Router;
use crmsync_app::kick::DrainKicker;
use crmsync_db::Pool;
use crmsync_http::api::{ApiConfig, ApiState, router};

/// The function's router: `/` (the dashboard) and `/api/*`. Writes that queue HubSpot work kick the fast path with
/// `kicker` after their commit.
pub fn app(pool: Pool, config: &ApiConfig, kicker: DrainKicker) -> Router {
    router(ApiState::new(pool, config).with_kicker(kicker))
}
