//! cart-core's integration tests: one binary, real PostgreSQL (a fresh database per test).

mod cancelled_begin;
