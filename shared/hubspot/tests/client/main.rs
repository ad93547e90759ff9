//! The client's integration tests: exact HTTP exchanges against wiremock, and contract tests against the
//! simulator over real HTTP on 127.0.0.1.

mod contract;
mod http_exchanges;
mod support;
