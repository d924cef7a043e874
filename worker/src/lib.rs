//! `cart-worker`: runs the store's background jobs from the PostgreSQL queue (apalis), the
//! periodic tickers, and the operator CLI over the queue. See `worker/README.md`.
//!
//! Error policy: handlers return [`error::JobError`] (retry or permanent); the runtime and
//! the CLI use `anyhow`, the CLI maps its failures to exit codes ([`cli::CliError`]).

pub mod cli;
pub mod config;
pub mod deps;
pub mod error;
pub mod handler;
pub mod http;
pub mod jobs;
pub mod metrics;
mod notifications;
pub mod queue;
mod queue_backend;
pub mod registry;
pub mod retry;
pub mod runner;
pub mod store;
pub mod tickers;
mod wakeup;

pub use deps::{Deps, JobSettings};
pub use registry::Registry;
pub use runner::{Runtime, RuntimeConfig};
