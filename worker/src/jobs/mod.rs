//! Job handlers: one file per kind. Payloads live in `cart_core::jobs`; kinds are listed in
//! `registry.rs`.

mod expire_order;
mod prune_idempotency_keys;
mod emit_invoice;
mod initiate_payment;
mod prune_jobs;
mod purge_reset_tokens;
mod reconcile_payment;
mod refund_payment;
mod send_email;
pub mod testing;
