//! `cart-worker`: runs the store's background jobs (the handlers in `jobs/`, on the
//! `cart-queue` runtime), the periodic tickers, and the operator CLI over the queue. See
//! `worker/README.md`.
//!
//! Error policy: handlers return `cart_queue::JobError` (retry or permanent); the runtime and
//! the CLI use `anyhow`, the CLI maps its failures to exit codes ([`cli::CliError`]).

pub mod board;
pub mod cli;
pub mod config;
pub mod deps;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod registry;

pub use deps::{Deps, JobSettings};
pub use registry::Registry;

/// Starts the queue runtime for `registry` on the database of `deps`, every handler getting
/// `deps`, woken by a listening connection of its own (`cart-worker-listen` in `pg_stat_activity`).
pub fn start(
    registry: &Registry,
    config: &cart_queue::RuntimeConfig,
    deps: Deps,
) -> cart_queue::Runtime {
    use cart_core::listen::{Heard, HubConfig, ListenHub};
    use cart_queue::Notice;
    use futures::StreamExt;

    let hub = ListenHub::start(
        &deps.pool,
        HubConfig {
            application_name: LISTEN_APPLICATION_NAME.to_owned(),
            ..HubConfig::default()
        },
    );
    let notices = hub
        .subscribe(cart_queue::schema::CHANNEL)
        .filter_map(move |heard| {
            // The runtime holds the hub through its notices: it listens while they are read.
            let _listening = &hub;
            std::future::ready(match heard {
                Heard::Notice(payload) => Some(Notice::Payload(payload)),
                Heard::Missed => Some(Notice::Missed),
                // Polling carries on meanwhile; the reconnection says `Missed`.
                Heard::Lost => None,
            })
        })
        .boxed();
    cart_queue::Runtime::start(registry, config, deps.pool.clone(), deps, notices)
}

/// How the worker's listening connection shows in `pg_stat_activity`.
pub const LISTEN_APPLICATION_NAME: &str = "cart-worker-listen";
