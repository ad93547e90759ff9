//! crmsync's HTTP surface: every axum router, each running unchanged under `axum::serve` and `lambda_http::run`.
//! Handlers are thin: decode, call one use case, encode. Every route but `GET /healthz`, the dashboard page and the
//! signed webhook requires a bearer token, checked by [`auth`]; every failure is an [`error::HttpError`].
//!
//! - [`ingest`]: `GET /healthz` and `POST /ingest/matches`;
//! - [`api`]: the dashboard REST API (`/api/*`) and the dashboard page (`/`);
//! - [`webhook`]: `POST /webhooks/hubspot`.
//!
//! Features `api` (the first two) and `webhook` let each Lambda link only the routers it serves.

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "api")]
pub mod auth;
pub mod error;
#[cfg(feature = "api")]
pub mod ingest;
#[cfg(feature = "webhook")]
pub mod webhook;

pub use error::HttpError;
