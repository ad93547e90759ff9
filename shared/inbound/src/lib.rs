//! The inbound path: the webhook inbox pass that brings HubSpot's changes into the local CRM by field ownership,
//! and the re-apply pass for events that had to wait. The HTTP endpoint that fills the inbox lives in crmsync-http;
//! the outbound drain and the SQS retry path call [`apply_pending_inbox`] and [`Applier::apply_retried`].
//!
//! `reconcile` catches up with HubSpot when deliveries were lost (it makes webhook-equivalent events and applies
//! them through the same applier), and `import` brings an existing portal's deals in once.
//!
//! `applier` runs a pass (`pass` is one transaction of it, `retries` and `write_back` what follows its commit);
//! `event` dispatches each event to the module of its kind: `property_change`, `creation`, `deletion`, `merge` and
//! `association`.

mod applier;
mod association;
mod creation;
mod deletion;
mod engagement;
mod event;
pub mod import;
mod merge;
mod metrics;
pub mod owners;
mod pass;
mod property_change;
pub mod reconcile;
mod retries;
mod write_back;

pub use applier::{Applier, ApplyReport, DEFAULT_PASS_LIMIT, OTHER_PORTAL, apply_pending_inbox, apply_pending_lane};
pub use import::{ImportReport, ImportRequest, Importer};
pub use owners::refresh_owners;
pub use reconcile::{ReconcileReport, ReconcileRequest, ReconcileSettings, Reconciler};
