//! Process-wide logging, the same for `cart-api` and `cart-worker`: one JSON object per line
//! on stderr ([`JsonLines`]), filtered by `LOG_LEVEL`.

mod filter;
mod json_lines;

pub use json_lines::JsonLines;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::{EnvFilter, prelude::*};

use crate::config::{self, ConfigError};

/// Installs the logger at `LOG_LEVEL` (`default_level` when unset). An invalid `LOG_LEVEL` is
/// an error naming the variable, so the process stops instead of logging at a level nobody
/// asked for.
pub fn init(default_level: &str) -> Result<(), ConfigError> {
    let events = level_filter(&config::var_or("LOG_LEVEL", default_level))?;
    // A second call (tests running several set-ups in one process) keeps the first logger.
    let _ = tracing_subscriber::registry()
        .with(filter::EventLevel(events))
        .with(JsonLines::new(std::io::stderr))
        .try_init();
    Ok(())
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
