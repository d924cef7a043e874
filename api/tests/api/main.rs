//! End-to-end HTTP tests: each test gets a fresh database (`#[sqlx::test]`) and a real
//! server on a random port (see `helpers.rs`).

mod helpers;
mod probes;
