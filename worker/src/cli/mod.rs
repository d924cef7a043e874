//! The command line: `cart-worker run` (the default) and the operator commands
//! `cart-worker jobs …` (over `cart_queue::admin`) and `cart-worker orders …`, one module per
//! subcommand.
//!
//! Exit codes: 0 done; 1 unexpected failure (e.g. database unreachable); 2 bad input (also
//! clap's usage errors); 3 unknown job, order or payment; 4 a job's state does not allow the
//! action (or the job already exists); 5 cancelled at the confirmation prompt.

pub mod cancel;
pub mod controls;
pub mod discard;
pub mod enqueue;
pub mod list;
pub mod orders;
pub mod retry;
pub mod show;
pub mod stats;

pub(crate) mod audit;
mod output;

use std::io::{BufRead, Write};

use cart_queue::admin::{self, JobState, Target};
use clap::{Args, Parser, Subcommand};
use sqlx::PgPool;

use crate::registry::Registry;

#[derive(Debug, Parser)]
#[command(
    name = "cart-worker",
    version,
    about = "cart's background worker, and the operator's view of its job queue"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the job workers and tickers until SIGTERM/SIGINT (the default).
    Run,
    /// Inspect and operate the job queue.
    Jobs(JobsArgs),
    /// Look into orders: what happened to one, from every record of it.
    Orders(orders::Args),
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Who is acting, for the audit trail [default: $USER].
    #[arg(long, global = true)]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Counts by kind and state, and how long the oldest due job has waited.
    Stats(stats::Opts),
    /// Jobs, newest first.
    List(list::Opts),
    /// One job: payload, attempts, errors and its failure history.
    Show(show::Opts),
    /// Run failed jobs again, with a fresh set of attempts.
    Retry(retry::Opts),
    /// Delete jobs that have not started (or have failed), keeping a record in the audit trail.
    Discard(discard::Opts),
    /// Enqueue a job by hand.
    Enqueue(enqueue::Opts),
    /// Cancel waiting jobs (they never run); ask running ones to stop.
    Cancel(cancel::Opts),
    /// Stop every worker process from claiming a kind; its jobs wait.
    Pause(controls::PauseOpts),
    /// Let every worker process claim a paused kind again.
    Resume(controls::PauseOpts),
    /// Limit a kind's starts per minute across every worker process (`--clear` removes it).
    Limit(controls::LimitOpts),
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("cancelled; nothing was changed")]
    Cancelled,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Invalid(_) => 2,
            Self::NotFound(_) => 3,
            Self::NotAllowed(_) => 4,
            Self::Cancelled => 5,
        }
    }
}

impl From<sqlx::Error> for CliError {
    fn from(err: sqlx::Error) -> Self {
        Self::Other(anyhow::Error::new(err).context("database"))
    }
}

impl From<cart_core::Error> for CliError {
    fn from(err: cart_core::Error) -> Self {
        Self::Other(err.into())
    }
}

/// What every subcommand gets: the database, the known kinds, the acting operator, and the
/// terminal (as traits, so tests can type the answers and read the output).
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub registry: &'a Registry,
    /// The operator, for the audit trail; only commands that change something need one.
    pub actor: Option<String>,
    pub out: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
}

impl Ctx<'_> {
    pub fn actor(&self) -> Result<String, CliError> {
        self.actor.clone().ok_or_else(|| {
            CliError::Invalid("who is acting? pass --actor NAME (or set USER)".into())
        })
    }

    /// Asks before a bulk change, unless `--yes` was given. Anything but yes cancels.
    pub fn confirm(&mut self, question: &str, yes: bool) -> Result<(), CliError> {
        if yes {
            return Ok(());
        }
        write!(self.out, "{question} [y/N] ").map_err(anyhow::Error::from)?;
        self.out.flush().map_err(anyhow::Error::from)?;
        let mut answer = String::new();
        self.input
            .read_line(&mut answer)
            .map_err(anyhow::Error::from)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "s" | "sim" => Ok(()),
            _ => Err(CliError::Cancelled),
        }
    }

    pub fn say(&mut self, text: impl std::fmt::Display) -> Result<(), CliError> {
        writeln!(self.out, "{text}").map_err(|e| CliError::Other(e.into()))
    }
}

/// The operator's name for the audit trail: `--actor`, else `$USER` (or `$LOGNAME`).
pub fn actor(flag: Option<String>) -> Result<Option<String>, CliError> {
    let actor = flag
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    if actor.as_ref().is_some_and(|a| a.chars().count() > 200) {
        return Err(CliError::Invalid("--actor: at most 200 characters".into()));
    }
    Ok(actor)
}

/// `--state` takes a [`JobState`] name.
pub fn parse_state(raw: &str) -> Result<JobState, String> {
    raw.parse().map_err(|_| {
        let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

/// Runs an operator command (any but `run`).
pub async fn run_operator(command: Command, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    match command {
        Command::Run => Err(CliError::Invalid("`run` is not an operator command".into())),
        Command::Jobs(args) => run_jobs(args.command, ctx).await,
        Command::Orders(args) => orders::run(args.command, ctx).await,
    }
}

pub async fn run_jobs(command: JobsCommand, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    match command {
        JobsCommand::Stats(opts) => stats::run(opts, ctx).await,
        JobsCommand::List(opts) => list::run(opts, ctx).await,
        JobsCommand::Show(opts) => show::run(opts, ctx).await,
        JobsCommand::Retry(opts) => retry::run(opts, ctx).await,
        JobsCommand::Discard(opts) => discard::run(opts, ctx).await,
        JobsCommand::Enqueue(opts) => enqueue::run(opts, ctx).await,
        JobsCommand::Cancel(opts) => cancel::run(opts, ctx).await,
        JobsCommand::Pause(opts) => controls::pause(opts, ctx).await,
        JobsCommand::Resume(opts) => controls::resume(opts, ctx).await,
        JobsCommand::Limit(opts) => controls::limit(opts, ctx).await,
    }
}

/// Job ids are ULIDs; anything else is a typo worth reporting before touching the database.
pub fn check_ids(ids: &[String]) -> Result<Vec<String>, CliError> {
    let mut checked = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id.trim().to_ascii_uppercase();
        if ulid::Ulid::from_string(&id).is_err() {
            return Err(CliError::Invalid(format!("not a job id: {id}")));
        }
        if !checked.contains(&id) {
            checked.push(id);
        }
    }
    Ok(checked)
}

/// Loads the jobs named on the command line; every id must exist.
pub async fn load_targets(pool: &PgPool, ids: &[String]) -> Result<Vec<Target>, CliError> {
    let found = admin::targets(pool, ids).await?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !found.iter().any(|t| &t.id == *id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(CliError::NotFound(format!(
            "no such job: {}; nothing was changed",
            missing.join(", ")
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_and_jobs_commands_parse() {
        assert!(
            Cli::try_parse_from(["cart-worker"])
                .unwrap()
                .command
                .is_none()
        );
        let cli = Cli::try_parse_from([
            "cart-worker",
            "jobs",
            "list",
            "--state",
            "failed",
            "--kind",
            "send_email",
            "--json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Jobs(JobsArgs {
                command: JobsCommand::List(_),
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["cart-worker", "jobs", "list", "--state", "lost"]).is_err());
        assert!(Cli::try_parse_from(["cart-worker", "jobs", "retry"]).is_err());
        assert!(
            Cli::try_parse_from(["cart-worker", "jobs", "retry", "--kind", "send_email"]).is_err()
        );
        assert!(Cli::try_parse_from(["cart-worker", "jobs", "discard"]).is_err());
        assert!(Cli::try_parse_from(["cart-worker", "jobs", "cancel"]).is_err());
        assert!(Cli::try_parse_from(["cart-worker", "jobs", "pause"]).is_err());
        let limit = |args: &[&str]| {
            Cli::try_parse_from(
                ["cart-worker", "jobs", "limit", "emit_invoice"]
                    .iter()
                    .chain(args),
            )
        };
        assert!(limit(&["--per-minute", "100"]).is_ok());
        assert!(limit(&["--clear"]).is_ok());
        assert!(limit(&[]).is_err(), "a limit or --clear");
        assert!(limit(&["--per-minute", "0"]).is_err());
        assert!(limit(&["--per-minute", "5", "--clear"]).is_err());
        let order =
            |args: &[&str]| Cli::try_parse_from(["cart-worker", "jobs", "list"].iter().chain(args));
        assert!(order(&["--order", "CART-7K3M9Q2X", "--json"]).is_ok());
        assert!(order(&["--payment", "not-a-uuid"]).is_err());
        assert!(
            order(&[
                "--order",
                "CART-7K3M9Q2X",
                "--payment",
                "0191d0a8-0000-7000-8000-000000000000"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "cart-worker",
            "orders",
            "timeline",
            "CART-7F3K2Q9X",
            "--json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Orders(orders::Args {
                command: orders::OrdersCommand::Timeline(orders::TimelineOpts { json: true, .. }),
            }))
        ));
        assert!(Cli::try_parse_from(["cart-worker", "orders", "timeline"]).is_err());
    }

    #[test]
    fn ids_must_be_ulids() {
        let ids = check_ids(&["01jdq3n0000000000000000000".into()]).unwrap();
        assert_eq!(ids, vec!["01JDQ3N0000000000000000000".to_owned()]);
        assert!(matches!(
            check_ids(&["42".into()]),
            Err(CliError::Invalid(_))
        ));
    }
}
