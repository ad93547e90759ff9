//! The api Lambda: the dashboard REST API and the web dashboard behind an API Gateway HTTP API. It serves the very
//! router `crmsync serve` mounts, so the two cannot drift apart.

use axum::Router;
use crmsync_db::Pool;
use crmsync_http::api::{ApiConfig, ApiState, router};

/// The function's router: `/` (the dashboard) and `/api/*`.
pub fn app(pool: Pool, config: &ApiConfig) -> Router {
    router(ApiState::new(pool, config))
}
