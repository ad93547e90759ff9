//! The simulator's integration tests: real HTTP against a simulator on 127.0.0.1:0.

mod admin;
mod associations;
mod faults;
mod harness;
mod limits;
mod objects;
mod search;
mod webhooks;
