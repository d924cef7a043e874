//! Job handlers: one file per kind. Payloads live in `cart_core::jobs`; kinds are listed in
//! `registry.rs`.

mod expire_order;
mod prune_idempotency_keys;
mod prune_jobs;
mod purge_reset_tokens;
mod send_email;
pub mod testing;
