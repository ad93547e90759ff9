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
use axum::routing::{any, get, post};
use crmsync_db::Pool;
use secrecy::{ExposeSecret, SecretString};
use tower_http::cors::CorsLayer;

use crate::auth::{self, Authenticator};
use cache::StatsCache;
use crmsync_app::AppError;

/// How long each dashboard statistics query is cached: the guide's "5-minute cache".
pub const STATS_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The largest JSON body the write routes accept: room for every field at its longest, even with each character
/// written as a `\uXXXX` surrogate pair, so a body is refused for its content (400) before its size (413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `API_TOKEN`: a shared bearer token (at least 16 characters).
    pub api_token: Option<SecretString>,
    /// `API_JWT_SECRET`: the HS256 secret JWTs are signed with (Supabase's JWT secret; at least 32 characters).
    pub jwt_secret: Option<SecretString>,
    /// `API_CORS_ORIGINS`: comma-separated origins (`https://crm.example.com`) allowed to call the API from a
    /// browser. Empty: no CORS headers, so only the dashboard served by the API itself (same origin) can call it.
    pub cors_origins: Vec<HeaderValue>,
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, AppError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`. At least one of API_TOKEN and API_JWT_SECRET must be set: the API has no
    /// anonymous access.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let secret = |variable: &'static str, min_chars: usize| -> Result<Option<SecretString>, AppError> {
            match lookup(variable).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(value) if value.chars().count() < min_chars => Err(AppError::Config {
                    variable,
                    reason: format!("must be at least {min_chars} characters long"),
                }),
                Some(value) => Ok(Some(SecretString::from(value))),
            }
        };
        let api_token = secret("API_TOKEN", 16)?;
        let jwt_secret = secret("API_JWT_SECRET", 32)?;
        if api_token.is_none() && jwt_secret.is_none() {
            return Err(AppError::Config {
                variable: "API_TOKEN",
                reason: "is not set, and neither is API_JWT_SECRET: the API needs at least one".into(),
            });
        }
        let cors_origins = lookup("API_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(parse_origin)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            api_token,
            jwt_secret,
            cors_origins,
        })
    }

    /// Settings with just an API token (tests, the local server).
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            api_token: Some(SecretString::from(token.into())),
            jwt_secret: None,
            cors_origins: Vec::new(),
        }
    }
}

fn parse_origin(origin: &str) -> Result<HeaderValue, AppError> {
    let invalid = |reason: &str| AppError::Config {
        variable: "API_CORS_ORIGINS",
        reason: format!("{origin:?} {reason}"),
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid("must be an origin: a scheme and a host (and port), no path"));
    }
    HeaderValue::from_str(origin).map_err(|_| invalid("is not a valid header value"))
}

/// What the API's handlers share: built once at start-up, cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub pool: Pool,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) stats: Arc<StatsCache>,
    cors_origins: Arc<Vec<HeaderValue>>,
}

impl ApiState {
    pub fn new(pool: Pool, config: &ApiConfig) -> Self {
        Self {
            pool,
            auth: Arc::new(Authenticator::new(
                config.api_token.clone(),
                config.jwt_secret.as_ref().map(|s| s.expose_secret().as_bytes()),
            )),
            stats: Arc::new(StatsCache::new(STATS_CACHE_TTL)),
            cors_origins: Arc::new(config.cors_origins.clone()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ApiConfig, AppError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ApiConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_api_refuses_to_start_without_any_credential() {
        let error = config(&[]).unwrap_err().to_string();
        assert!(
            error.contains("API_TOKEN") && error.contains("API_JWT_SECRET"),
            "{error}"
        );
    }

    #[test]
    fn short_secrets_are_refused_with_the_variable_name() {
        let error = config(&[("API_TOKEN", "short")]).unwrap_err().to_string();
        assert!(error.contains("API_TOKEN must be at least 16"), "{error}");
        let error = config(&[("API_JWT_SECRET", "0123456789")]).unwrap_err().to_string();
        assert!(error.contains("API_JWT_SECRET must be at least 32"), "{error}");
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_of_origins() {
        let ok = config(&[
            ("API_TOKEN", "0123456789abcdef"),
            ("API_CORS_ORIGINS", "https://crm.example.com, http://localhost:5173"),
        ])
        .unwrap();
        assert_eq!(ok.cors_origins.len(), 2);
        for bad in ["crm.example.com", "https://crm.example.com/app", "*"] {
            let error = config(&[("API_TOKEN", "0123456789abcdef"), ("API_CORS_ORIGINS", bad)]).unwrap_err();
            assert!(error.to_string().contains("API_CORS_ORIGINS"), "{bad}: {error}");
        }
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let config = config(&[
            ("API_TOKEN", "token-abcdefghijkl"),
            ("API_JWT_SECRET", "jwt-secret-0123456789abcdefghijklmnop"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("token-abc") && !debug.contains("jwt-secret"), "{debug}");
    }
}
