//! The HTTP surface shared by `crmsync serve` and the Lambda functions: one axum `Router`, which runs unchanged
//! under `axum::serve` and `lambda_http::run`. Handlers are thin: decode, call one use case, encode.
//!
//! Every route but `GET /healthz` requires `Authorization: Bearer <API_TOKEN>`, compared in constant time.
//! Errors are JSON, `{"error": {"code", "message", "field"}}`, and never show database internals.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crmsync_db::{PgMatchStore, Pool};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::AppError;
use crate::ingest::ingest_matches;

/// The largest request body accepted on the ingestion route (10,000 matches fit well within it).
pub const MAX_INGEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the handlers share: built once at start-up.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub match_store: PgMatchStore,
    api_token: Arc<SecretString>,
}

impl AppState {
    pub fn new(pool: Pool, api_token: SecretString) -> Self {
        Self {
            match_store: PgMatchStore::new(pool.clone()),
            pool,
            api_token: Arc::new(api_token),
        }
    }
}

/// `GET /healthz` and `POST /ingest/matches`. Later issues merge their routes into this one.
pub fn router(state: AppState) -> Router {
    let authenticated = Router::new()
        .route("/ingest/matches", post(post_ingest_matches))
        .layer(DefaultBodyLimit::max(MAX_INGEST_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_bearer_token));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(authenticated)
        .with_state(state)
}

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: Option<&str>) -> Self {
        self.field = field.map(str::to_owned);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match &error {
            AppError::InvalidEvent(domain) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", domain.to_string()).with_field(domain.field())
            }
            _ => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is unavailable; retry later",
                )
            }
        }
    }
}

async fn require_bearer_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if bearer_token_matches(request.headers(), &state.api_token) {
        next.run(request).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        response
    }
}

fn bearer_token_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
    else {
        return false;
    };
    let (presented, expected) = (presented.trim().as_bytes(), expected.expose_secret().as_bytes());
    // Lengths are compared first: the token's length is not a secret worth protecting, its content is.
    presented.len() == expected.len() && bool::from(presented.ct_eq(expected))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let database = match state.pool.get().await {
        Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
        Err(_) => false,
    };
    if database {
        (StatusCode::OK, axum::Json(json!({ "status": "ok", "database": "ok" }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "degraded", "database": "unavailable" })),
        )
            .into_response()
    }
}

async fn post_ingest_matches(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let event: Value = serde_json::from_slice(&body).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    let report = ingest_matches(&state.match_store, &event, "http").await?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}
