//! crmsync's HTTP surface: every axum router, each running unchanged under `axum::serve` and `lambda_http::run`.
//! Handlers are thin: decode, call one use case, encode. Every route but `GET /healthz`, the dashboard page and the
//! signed webhook requires a bearer token, checked by [`auth`]; every failure is an [`error::HttpError`].
//!
//! - [`ingest`]: `GET /healthz` and `POST /ingest/matches`;
//! - [`api`]: the dashboard REST API (`/api/*`) and the dashboard page (`/`);
//! - [`webhook`]: `POST /webhooks/hubspot`.

pub mod api;
pub mod auth;
pub mod error;
pub mod ingest;
pub mod webhook;

pub use error::HttpError;
