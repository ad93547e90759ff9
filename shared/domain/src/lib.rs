//! crmsync's domain: the guide's rules (deal name, win probability, qualification, priority), the
//! validated shapes of an ingested match, the deal stages, the sync queue's state machine and failure classes,
//! and the ports the adapters implement.
//!
//! No I/O lives here: this crate's Cargo.toml names no database, HTTP or AWS crate, so the compiler keeps
//! it pure.

pub mod circuit;
pub mod crm;
pub mod email;
pub mod engagement;
pub mod error;
pub mod failure;
pub mod hubspot_records;
pub mod hubspot_status;
pub mod ingest;
pub mod kick;
pub mod owner;
pub mod policy;
pub mod ports;
pub mod queue;
pub mod reconcile;
pub mod rules;
pub mod stage;
pub mod sync;
pub mod webhook;

pub use error::DomainError;
