//! End-to-end HTTP tests: each test gets a fresh database (`#[sqlx::test]`) and a real
//! server on a random port (see `helpers.rs`).

mod addresses;
mod auth;
mod bola;
mod cache;
mod cart;
mod catalog;
mod categories;
mod checkout;
mod coupons;
mod errors;
mod helpers;
mod idempotency;
mod invoices;
mod lgpd;
mod listening;
mod logging;
mod observability;
mod openapi;
mod orders;
mod payments;
mod probes;
mod production;
mod rate_limit;
mod sessions;
mod shipping;
mod users;
mod webhooks;
