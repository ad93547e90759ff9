//! Typed HubSpot client, rate limiter and webhook signatures.

pub mod signature;

pub mod associations;
mod batch;
mod client;
pub mod config;
pub mod error;
mod limiter;
pub mod objects;
pub mod owners;
pub mod pipelines;
pub mod properties;
pub mod search;
pub mod setup;
pub mod token_info;
mod transport;
pub mod values;

pub use batch::BatchOutcome;
pub use client::HubSpotClient;
pub use config::{HubSpotConfig, RateLimitConfig};
pub use error::{ErrorClass, HubSpotError, HubSpotErrorResponse, PermanentKind};
pub use objects::{
    CreateInput, HubSpotObject, ListPage, ListRequest, ObjectType, Properties, PropertyVersion, UpdateInput,
    UpsertInput, UpsertedObject,
};
pub use setup::{SetupReport, ensure_b2g_setup};
pub use transport::ClientStats;
