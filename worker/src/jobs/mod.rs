//! Job handlers: one file per kind. Payloads live in `cart_core::jobs`; kinds are listed in
//! `registry.rs`.

mod prune_jobs;
mod purge_reset_tokens;
mod send_email;
pub mod testing;
