//! The worker's configuration, read from the environment once at start. Any missing or
//! invalid variable stops the process with a message naming it; values are never echoed.

use std::{collections::HashMap, time::Duration};

use anyhow::{Context, bail};
use cart_core::{config, db::DbConfig};

use cart_queue::{QueueSettings, RetryPolicy, RuntimeConfig};

use crate::{board::BoardConfig, deps::JobSettings, registry::Registry};

pub const CONCURRENCY_PREFIX: &str = "WORKER_CONCURRENCY_";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub db: DbConfig,
    pub port: u16,
    pub runtime: RuntimeConfig,
    pub jobs: JobSettings,
    /// The operator board, when `BOARD_TOKEN` is set.
    pub board: Option<BoardConfig>,
}

impl WorkerConfig {
    pub fn from_env(registry: &Registry) -> anyhow::Result<Self> {
        let concurrency = positive("WORKER_CONCURRENCY", 8)?;
        let concurrency_overrides = concurrency_overrides(registry)?;
        let queue = QueueSettings {
            concurrency,
            poll_interval: config::var_duration(
                "WORKER_POLL_INTERVAL",
                Duration::from_millis(500),
            )?,
            heartbeat_interval: config::var_duration(
                "WORKER_HEARTBEAT_INTERVAL",
                Duration::from_secs(5),
            )?,
            missed_heartbeats: positive("WORKER_MISSED_HEARTBEATS", 2)?,
        };
        nonzero(queue.poll_interval, "WORKER_POLL_INTERVAL")?;
        if queue.heartbeat_interval < Duration::from_secs(1) {
            bail!("invalid value for environment variable WORKER_HEARTBEAT_INTERVAL: at least 1s");
        }
        let mut tick_intervals = HashMap::new();
        for ticker in registry.tickers() {
            let interval = config::var_duration(ticker.interval_var, ticker.default_interval)?;
            if interval < Duration::from_secs(1) {
                bail!(
                    "invalid value for environment variable {}: at least 1s",
                    ticker.interval_var
                );
            }
            tick_intervals.insert(ticker.name.to_owned(), interval);
        }
        let default_runtime = RuntimeConfig::default();
        let retry = RetryPolicy {
            base: config::var_duration("WORKER_RETRY_BASE_DELAY", default_runtime.retry.base)?,
            max: config::var_duration("WORKER_RETRY_MAX_DELAY", default_runtime.retry.max)?,
        };
        nonzero(retry.base, "WORKER_RETRY_BASE_DELAY")?;
        if retry.max < retry.base {
            bail!(
                "invalid value for environment variable WORKER_RETRY_MAX_DELAY: \
                 must not be below WORKER_RETRY_BASE_DELAY"
            );
        }
        let job_timeout = config::var_duration("WORKER_JOB_TIMEOUT", default_runtime.job_timeout)?;
        nonzero(job_timeout, "WORKER_JOB_TIMEOUT")?;
        let runtime = RuntimeConfig {
            retry,
            job_timeout,
            queue,
            concurrency_overrides,
            shutdown_timeout: config::var_duration(
                "WORKER_SHUTDOWN_TIMEOUT",
                Duration::from_secs(30),
            )?,
            tickers_enabled: config::var_bool("WORKER_TICKERS", true)?,
            tick_intervals,
        };
        let defaults = JobSettings::default();
        let jobs = JobSettings {
            done_retention: config::var_duration("JOBS_DONE_RETENTION", defaults.done_retention)?,
            failed_retention: config::var_duration(
                "JOBS_FAILED_RETENTION",
                defaults.failed_retention,
            )?,
            prune_batch: defaults.prune_batch,
            cart_ttl: config::var_duration("CART_TTL", defaults.cart_ttl)?,
        };
        let mut db = DbConfig::from_env()?;
        if config::var("DB_MAX_CONNECTIONS").is_none() {
            db.max_connections = db
                .max_connections
                .max(connections_needed(registry, &runtime));
        }
        // Platforms give every process a `PORT`; `WORKER_PORT` is for a host that runs the
        // API and the worker side by side.
        let port = match config::var("WORKER_PORT") {
            Some(_) => config::var_parsed("WORKER_PORT", 9090)?,
            None => config::var_parsed("PORT", 9090)?,
        };
        Ok(Self {
            db,
            port,
            runtime,
            jobs,
            board: BoardConfig::from_env()?,
        })
    }
}

/// Each kind's worker uses a connection for fetching and one for writing its
/// acknowledgements, plus one per running job; a few more serve tickers and `/metrics` (the
/// listener has a connection of its own).
fn connections_needed(registry: &Registry, runtime: &RuntimeConfig) -> u32 {
    let per_kind: usize = registry
        .kinds()
        .iter()
        .map(|kind| runtime.settings_for(kind.name).concurrency + 2)
        .sum();
    u32::try_from(per_kind + 4).unwrap_or(u32::MAX)
}

fn positive(name: &'static str, default: usize) -> anyhow::Result<usize> {
    let value: usize = config::var_parsed(name, default)?;
    if value == 0 {
        bail!("invalid value for environment variable {name}: must be at least 1");
    }
    Ok(value)
}

fn nonzero(value: Duration, name: &'static str) -> anyhow::Result<()> {
    if value.is_zero() {
        bail!("invalid value for environment variable {name}: must be above zero");
    }
    Ok(())
}

/// `WORKER_CONCURRENCY_<KIND>` for registered kinds (`WORKER_CONCURRENCY_SEND_EMAIL=4`). A
/// variable naming no known kind is an error, so a typo does not go unnoticed.
fn concurrency_overrides(registry: &Registry) -> anyhow::Result<HashMap<String, usize>> {
    let mut overrides = HashMap::new();
    for (name, value) in std::env::vars() {
        let Some(suffix) = name.strip_prefix(CONCURRENCY_PREFIX) else {
            continue;
        };
        if value.trim().is_empty() {
            continue;
        }
        let kind = registry
            .kinds()
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(suffix))
            .with_context(|| {
                format!(
                    "environment variable {name} names no job kind (known: {})",
                    registry.names().join(", ")
                )
            })?;
        let concurrency: usize =
            value
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| {
                    format!(
                        "invalid value for environment variable {name}: expected a number above 0"
                    )
                })?;
        overrides.insert(kind.name.to_owned(), concurrency);
    }
    Ok(overrides)
}
