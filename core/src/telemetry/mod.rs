//! Process-wide telemetry, the same for `cart-api` and `cart-worker`: one JSON object per line
//! on stderr ([`JsonLines`]), filtered by `LOG_LEVEL`; optional trace export ([`traces`]); and
//! the Prometheus recorder that `/metrics` renders ([`prometheus`]).

mod filter;
mod json_lines;
pub mod prometheus;
pub mod traces;

pub use json_lines::JsonLines;
pub use traces::Traces;

use tracing::{Subscriber, level_filters::LevelFilter};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, prelude::*, registry::LookupSpan};

use crate::config::{self, ConfigError};

/// Installs the logger at `LOG_LEVEL` (`default_level` when unset). An invalid `LOG_LEVEL` is
/// an error naming the variable, so the process stops instead of logging at a level nobody
/// asked for. Traces are not exported (the operator CLI, `migrate`).
pub fn init(default_level: &str) -> Result<(), ConfigError> {
    let events = level_filter(&config::var_or("LOG_LEVEL", default_level))?;
    // A second call (tests running several set-ups in one process) keeps the first logger.
    let _ = subscriber(events, std::io::stderr, None).try_init();
    Ok(())
}

/// Like [`init`], for a serving process: also exports traces as `service_name` when the
/// `OTEL_*` variables ask for it (see [`traces`]). Keep the answer and call
/// [`Traces::shutdown`] before exiting, so the last spans are sent.
pub fn init_serving(
    default_level: &str,
    service_name: &str,
) -> Result<Option<Traces>, ConfigError> {
    let events = level_filter(&config::var_or("LOG_LEVEL", default_level))?;
    let traces = Traces::from_env(service_name)?;
    let _ = subscriber(events, std::io::stderr, traces.as_ref()).try_init();
    Ok(traces)
}

/// The subscriber [`init`] installs, writing to `writer` at `log_level` and exporting to
/// `traces`; tests install it for their own thread (`tracing::subscriber::set_default`).
pub fn subscriber_for<W>(
    log_level: &str,
    writer: W,
    traces: Option<&Traces>,
) -> Result<impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> + use<W>, ConfigError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    Ok(subscriber(level_filter(log_level)?, writer, traces))
}

fn subscriber<W>(
    events: EnvFilter,
    writer: W,
    traces: Option<&Traces>,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> + use<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter::EventLevel(events))
        .with(JsonLines::new(writer))
        .with(traces.map(|traces| traces.layer()))
}

/// `LOG_LEVEL` is a level or a filter such as `info,sqlx=warn`. A bare word must be a level:
/// `EnvFilter` would read `verbose` as "everything from the target `verbose`", which in
/// practice silences the process.
fn level_filter(value: &str) -> Result<EnvFilter, ConfigError> {
    let invalid = || ConfigError::Invalid {
        name: "LOG_LEVEL",
        reason: "expected a level (error, warn, info, debug, trace, off) or a filter such as \
                 info,sqlx=warn"
            .into(),
    };
    let bare_non_level = value
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty() && !directive.contains('='))
        .any(|directive| directive.parse::<LevelFilter>().is_err());
    if bare_non_level {
        return Err(invalid());
    }
    EnvFilter::builder().parse(value).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_filters_are_accepted() {
        for value in ["info", "WARN", "debug,sqlx=warn", "cart_api=trace", "off"] {
            assert!(level_filter(value).is_ok(), "{value}");
        }
    }

    #[test]
    fn a_misspelt_level_is_refused_naming_the_variable() {
        for value in ["verbose", "warning", "info,sqlx=loud", "info,chatty"] {
            let err = level_filter(value).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("LOG_LEVEL"), "{value}: {err}");
        }
    }
}
