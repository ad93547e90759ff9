//! crmsync's one test kit, used by every integration test: the app on a fresh database, the HubSpot simulator on
//! port 0, moto's SQS, a local Lambda Runtime API that runs a function's real `main`, and typed helpers.
//!
//! A test starts with [`TestApp::new`] (a database) or [`TestApp::with_hubspot`] (a database and the simulator with
//! the pipeline set up), drives the part it tests through the constructors here, and asserts on typed rows
//! ([`TestApp::deal`], [`TestApp::queue_rows`], [`TestApp::inbox_events`]) instead of SQL tuples.

mod app;
mod http;
pub mod lambda;
mod rows;
mod silent;
mod sim;
mod sqs;

pub use app::{TEST_API_TOKEN, TestApp, TestAppBuilder, inbox_retries, quick_retries, webhook_config};
pub use crmsync_db::test_db::TestDb;
pub use http::{Answer, send};
pub use rows::{Activity, Company, Contact, Deal, InboxEvent, QueueRow, Record, RowId};
pub use silent::SilentServer;
pub use sim::{SimRecord, client_config, client_for, unused_hubspot};
pub use sqs::{deliveries, fresh_queue, receive_until_some};
