//! Domain, database and provider code shared by the `cart-api` and `cart-worker` binaries.
//!
//! Error policy: functions here return [`Error`] (thiserror); the API maps it to
//! problem+json in one place, the worker and CLI wrap it in `anyhow`.

pub mod auth;
mod business_events;
pub mod cart;
pub mod catalog;
pub mod config;
pub mod coupons;
pub mod db;
pub mod deployment;
pub mod error;
pub mod http_client;
pub mod idempotency;
pub mod invoices;
pub mod jobs;
pub mod listen;
pub mod mail;
pub mod money;
pub mod orders;
pub mod payments;
pub mod rate_limits;
pub mod request_id;
pub mod shipping;
pub mod shutdown;
pub mod telemetry;
#[cfg(test)]
mod test_support;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod users;
pub mod validation;

pub use error::{Error, Result};

/// Our own migrations (the job queue's schema is installed before them by [`db::migrate`]).
pub use cart_migrations::MIGRATOR;
