//! `GET /healthz` and `POST /ingest/matches`, for `crmsync serve`. Ingestion requires `Authorization: Bearer
//! <API_TOKEN>` through the one bearer check ([`crate::auth`]); a dashboard user's JWT is not enough, since only
//! the upstream workflow ingests.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crmsync_db::{PgMatchStore, Pool};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::HttpError;
use crate::auth::{Authenticator, require_auth};
use crmsync_app::ingest::ingest_and_kick;
use crmsync_app::kick::DrainKicker;

/// The largest request body accepted on the ingestion route (10,000 matches fit well within it).
pub const MAX_INGEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the handlers share: built once at start-up.
#[derive(Clone)]
pub struct IngestState {
    pub pool: Pool,
    pub match_store: PgMatchStore,
    auth: Arc<Authenticator>,
    /// Asks for a drain after an ingestion queued rows (off unless [`IngestState::with_kicker`] sets one).
    kicker: DrainKicker,
}

impl IngestState {
    pub fn new(pool: Pool, api_token: SecretString) -> Self {
        Self {
            match_store: PgMatchStore::new(pool.clone()),
            pool,
            auth: Arc::new(Authenticator::new(Some(api_token), None)),
            kicker: DrainKicker::Off,
        }
    }

    /// Kicks the fast path with `kicker` after every ingestion that queued rows.
    pub fn with_kicker(mut self, kicker: DrainKicker) -> Self {
        self.kicker = kicker;
        self
    }
}

/// `GET /healthz` and `POST /ingest/matches`.
pub fn router(state: IngestState) -> Router {
    let authenticated = Router::new()
        .route("/ingest/matches", post(post_ingest_matches))
        .layer(DefaultBodyLimit::max(MAX_INGEST_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state.auth), require_auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(authenticated)
        .with_state(state)
}

async fn healthz(State(state): State<IngestState>) -> Response {
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

async fn post_ingest_matches(State(state): State<IngestState>, body: Bytes) -> Result<Response, HttpError> {
    let event: Value = serde_json::from_slice(&body).map_err(|error| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    let report = ingest_and_kick(&state.match_store, &state.kicker, &event, "http").await?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}
