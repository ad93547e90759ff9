//! What every crmsync entry point shares: the typed configuration, telemetry, the one application error, and the two
//! use cases that need neither HTTP nor the sync engine (match ingestion and the HubSpot setup). No axum here: the
//! ingest-matches Lambda links this crate and nothing of the HTTP layer.

pub mod config;
pub mod error;
pub mod hubspot_setup;
pub mod ingest;
pub mod kick;
pub mod metrics;
pub mod prune;
pub mod telemetry;

pub use config::{ApiConfig, Config, JwtRules, SyncConfig, WebhookConfig};
pub use crmsync_db::Timeouts;
pub use error::AppError;
