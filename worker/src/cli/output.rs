//! Formatting shared by the subcommands: times, ages, truncated errors, tables and JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tabled::{Table, Tabled, settings::Style};

use super::{CliError, Ctx};

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn optional_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_else(|| "-".into())
}

/// `3d4h`, `12m5s`, `40s`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// The first line of `text`, at most `max` characters.
pub fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

pub fn table<T: Tabled>(
    ctx: &mut Ctx<'_>,
    rows: impl IntoIterator<Item = T>,
) -> Result<(), CliError> {
    let mut table = Table::new(rows);
    table.with(Style::psql());
    ctx.say(table)
}

pub fn json<T: Serialize>(ctx: &mut Ctx<'_>, value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?;
    ctx.say(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short_and_readable() {
        assert_eq!(age(40), "40s");
        assert_eq!(age(725), "12m5s");
        assert_eq!(age(3 * 86_400 + 4 * 3600 + 10), "3d4h");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn long_errors_are_cut_to_their_first_line() {
        assert_eq!(short("boom\nstack", 10), "boom");
        assert_eq!(short("abcdefghijkl", 5), "abcd…");
    }
}
