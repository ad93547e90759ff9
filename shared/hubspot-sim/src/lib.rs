//! A stateful, in-memory HubSpot for tests, benchmarks and the local stack.
//!
//! It serves HubSpot's CRM APIs with HubSpot's request and response shapes, on both the v3/v4
//! paths and the date-versioned ones (`/crm/objects/2026-03/...`):
//! objects (companies, contacts, deals, notes, calls, emails, meetings, tasks; single and batch
//! create/read/update/upsert/archive, list, search, merge), associations (v4 batch create,
//! associate default, read, archive), properties and property groups, and deal pipelines.
//! It enforces the bearer token, HubSpot's rate limits (rolling 10 s window, daily allowance,
//! search 5/s), unique property values, required deal properties and date formats, injects
//! faults (5xx, 423, slow answers, connections dropped after a write), and delivers signed
//! webhooks for every change.
//!
//! ```no_run
//! # async fn demo() -> Result<(), crmsync_hubspot_sim::SimError> {
//! use crmsync_hubspot_sim::{HubSpotSim, SimConfig};
//! let sim = HubSpotSim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! let base_url = sim.base_url(); // point HUBSPOT_BASE_URL here, token "sim-token"
//! # let _ = base_url; Ok(()) }
//! ```
//!
//! Admin API (no auth, never limited or faulted), under `/__sim`:
//! - `GET /state[?type=deals]` — records with properties and associations, pipelines, custom properties;
//! - `GET /requests` — counts by `"METHOD /path/{template}"` and outcome (`"200"`, `"429"`, `"dropped"`);
//! - `POST /reset`; `GET|POST /faults` ([`FaultConfig`] as camelCase JSON); `GET|POST /limits`;
//! - `GET /webhooks[?payloads=false]` — outbox counts (`pending`) and delivered batches;
//!   `POST /webhooks/target` (`{url, clientSecret, sendV1}` or `null`); `POST /webhooks/drop` (`{drop: true}`
//!   drops every event from then on, counted as `droppedEvents`; `HUBSPOT_SIM_DROP_WEBHOOKS` at start);
//! - `POST /act/...` "act as a user" changes (webhooks with `changeSource: CRM_UI`):
//!   `move-deal-stage {dealId, stage, pipeline?}`, `edit-company {companyId, properties}`,
//!   `create-contact {properties, companyId?, primary?}`, `merge-companies {primaryId, mergedId}`,
//!   `delete-deal {dealId}`, `restore-deal {dealId}`,
//!   `associate {fromType, fromId, toType, toId, primary?, typeId?, remove?}`, and the generic
//!   `edit {objectType, id, properties}`, `delete {objectType, id}`, `restore {objectType, id}`.

mod admin;
mod associations;
mod config;
mod error;
mod events;
mod faults;
mod http;
mod limits;
mod model;
mod objects;
mod owners;
mod pipelines;
mod properties;
mod requests;
mod search;
mod server;
mod state;
mod tokens;
mod validate;
mod webhooks;

pub use config::{FaultConfig, FaultKind, SimConfig, WebhookDelivery, WebhookTarget};
pub use error::SimError;
pub use server::{HubSpotSim, RunningSim, serve};
pub use webhooks::signature_headers;
