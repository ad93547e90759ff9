//! crmsync's one test kit, used by every integration test: the app on a fresh database, the HubSpot simulator on
//! port 0, moto's SQS, a local Lambda Runtime API that runs a function's real `main`, and typed helpers.

pub mod lambda;
