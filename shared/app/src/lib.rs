//! crmsync's application layer: the use cases that the Lambda functions and the `crmsync` CLI share, the typed
//! configuration, telemetry, and the axum routers that run unchanged under `lambda_http` and `axum::serve`.

pub mod api;
pub mod config;
pub mod error;
pub mod http;
pub mod hubspot_setup;
pub mod ingest;
pub mod sync;
pub mod telemetry;
pub mod webhook;

pub use config::Config;
pub use error::AppError;
