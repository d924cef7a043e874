//! The worker's integration tests: one binary, real PostgreSQL (a fresh database per test).

// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod board;
mod cli;
mod email;
mod helpers;
mod http;
mod maintenance;
mod measure;
mod operators;
mod orders;
mod outage;
mod payments;
mod processes;
mod queue;
mod startup;
mod timeline;
mod upgrade;
