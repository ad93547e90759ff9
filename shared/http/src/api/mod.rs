//! The dashboard REST API (`/api/*`) and the web dashboard (`/`): one axum `Router` that runs unchanged under
//! `crmsync serve` and the api Lambda.
//!
//! - Every `/api/*` route requires `Authorization: Bearer <token>`: API_TOKEN (compared in constant time) or an HS256
//!   JWT signed with API_JWT_SECRET, as Supabase issues them ([`auth`]). The dashboard page and its assets are
//!   public: they hold no data, and ask for the token.
//! - Lists are keyset-paginated: `limit` (1 to 100, default 20) and `cursor`, the last id of the previous page.
//! - Writes queue their HubSpot work as sync_queue rows in the same transaction ([`service`]), and invalidate the
//!   dashboard statistics cache of every instance through a generation counter bumped in that transaction too
//!   ([`cache`]).
//! - Errors are JSON, `{"error": {"code", "message", "field"}}`; bad input is a 4xx, never a 5xx.
//! - `GET /api/openapi.json` is generated from the handlers ([`openapi`]).

pub mod cache;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod model;
pub mod openapi;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{any, get, post, put};
use crmsync_db::Pool;
use secrecy::ExposeSecret;
use tower_http::cors::CorsLayer;

use crate::auth::{self, Authenticator};
use cache::StatsCache;
pub use crmsync_app::config::{ApiConfig, JwtRules, RequiredClaim};
use crmsync_app::kick::DrainKicker;

/// How long each dashboard statistics query is cached: the guide's "5-minute cache".
pub const STATS_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The largest JSON body the write routes accept: room for every field at its longest, even with each character
/// written as a `\uXXXX` surrogate pair, so a body is refused for its content (400) before its size (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the API's handlers share: built once at start-up, cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub pool: Pool,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) stats: Arc<StatsCache>,
    cors_origins: Arc<Vec<HeaderValue>>,
    /// Asks for a drain after a write queued HubSpot work (off unless [`ApiState::with_kicker`] sets one).
    pub(crate) kicker: DrainKicker,
}

impl ApiState {
    pub fn new(pool: Pool, config: &ApiConfig) -> Self {
        Self {
            pool,
            auth: Arc::new(Authenticator::new(
                config.api_token.clone(),
                config
                    .jwt_secret
                    .as_ref()
                    .map(|s| (s.expose_secret().as_bytes(), config.jwt_rules.clone())),
            )),
            stats: Arc::new(StatsCache::new(STATS_CACHE_TTL)),
            // ApiConfig has checked that each origin is a valid header value.
            cors_origins: Arc::new(
                config
                    .cors_origins
                    .iter()
                    .filter_map(|origin| HeaderValue::from_str(origin).ok())
                    .collect(),
            ),
            kicker: DrainKicker::Off,
        }
    }

    /// Kicks the fast path with `kicker` after every write that queues HubSpot work.
    pub fn with_kicker(mut self, kicker: DrainKicker) -> Self {
        self.kicker = kicker;
        self
    }

    /// The dashboard statistics cache (the benchmark clears it to measure uncached requests).
    pub fn stats_cache(&self) -> &StatsCache {
        &self.stats
    }
}

/// The dashboard at `/` (public) and the REST API under `/api` (bearer token). Merge it into a server's router, or
/// run it alone under `lambda_http::run`.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .route("/api/openapi.json", get(handlers::openapi_json))
        .route("/api/dashboard/stats", get(handlers::dashboard_stats))
        .route("/api/deals", get(handlers::list_deals))
        .route("/api/deals/{id}", get(handlers::get_deal))
        .route("/api/deals/{id}/stage", post(handlers::move_deal_stage))
        .route("/api/deals/{id}/owner", put(handlers::set_deal_owner))
        .route("/api/owners", get(handlers::list_owners))
        .route("/api/companies", get(handlers::list_companies))
        .route("/api/companies/{id}", get(handlers::get_company))
        .route(
            "/api/contacts",
            get(handlers::list_contacts).post(handlers::create_contact),
        )
        .route(
            "/api/activities",
            get(handlers::list_activities).post(handlers::create_activity),
        )
        .route("/api/sync/conflicts", get(handlers::list_conflicts))
        // Any other path under /api: a JSON 404 behind the same bearer check, so it reveals nothing unauthenticated.
        .route("/api", any(handlers::no_such_route))
        .route("/api/{*rest}", any(handlers::no_such_route))
        // Before the route layer, so a wrong method is a JSON 405 behind the bearer check too.
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            auth::require_auth,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // CORS wraps authentication, so a browser's preflight (which carries no token) is answered without one.
    let api = match cors_layer(&state.cors_origins) {
        Some(cors) => api.layer(cors),
        None => api,
    };
    // The page's routes answer a wrong method with the same JSON 405, and any other path with a JSON 404.
    Router::new()
        .merge(dashboard::router())
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .merge(api)
        .fallback(handlers::no_such_route)
        .with_state(state)
}

fn cors_layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(origins.to_vec())
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static("cache-status")])
            .max_age(Duration::from_secs(600)),
    )
}
