use std::{io::Write, process::ExitCode, sync::Arc};

use anyhow::Context;
use cart_core::config;
use cart_worker::{
    Deps, Registry,
    cli::{self, Cli, Command, Ctx, JobsArgs},
    config::WorkerConfig,
    registry,
};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    config::load_dotenv();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => match run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "worker stopped");
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        operator => match operate(operator).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = std::io::stdout().flush();
                eprintln!("error: {e:#}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

/// The job kinds of this process: the standard set, plus the test kinds when
/// `WORKER_TEST_JOBS` is on (integration tests only).
fn process_registry() -> anyhow::Result<Registry> {
    let registry = registry::standard();
    Ok(if config::var_bool("WORKER_TEST_JOBS", false)? {
        registry::with_test_jobs(registry)
    } else {
        registry
    })
}

async fn run() -> anyhow::Result<()> {
    let traces = cart_core::telemetry::init_serving("info", "cart-worker")?;
    let result = serve().await;
    if let Some(traces) = traces {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    result
}

async fn serve() -> anyhow::Result<()> {
    cart_core::deployment::check_startup("cart-worker")?;
    let registry = process_registry()?;
    let config = WorkerConfig::from_env(&registry)?;
    let mailer = cart_core::mail::mailer_from_env()?;
    // Reset links are derived from it when their e-mail is sent.
    let reset_key = cart_core::users::password_reset::ResetKey::from_env()?;
    // Lazy: the worker starts while the database is down and its supervisors keep retrying.
    let pool = config.db.connect_lazy().context("database configuration")?;
    let metrics = cart_worker::metrics::install();
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("binding port {} (WORKER_PORT, else PORT)", config.port))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        kinds = ?registry.names(),
        board = config.board.is_some(),
        "worker starting"
    );
    let router = cart_worker::http::router(pool.clone(), metrics, config.board.as_ref())?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = http_stopped.await;
            })
            .into_future(),
    );
    let deps = Deps {
        pool,
        mailer,
        settings: Arc::new(config.jobs.clone()),
        payments: Arc::new(cart_worker::deps::PaymentDeps::from_env()?),
        reset_key,
    };
    let runtime = cart_worker::start(&registry, &config.runtime, deps);
    cart_core::shutdown::signal().await;
    let report = runtime.shutdown().await;
    let _ = http_stop.send(());
    let _ = http.await;
    tracing::info!(
        drained = report.drained,
        released = report.released,
        "worker stopped"
    );
    Ok(())
}

/// An operator command (`jobs …`, `orders …`) against the database.
async fn operate(command: Command) -> Result<(), cli::CliError> {
    cart_core::telemetry::init("warn").map_err(anyhow::Error::from)?;
    let registry = process_registry()?;
    let actor = match &command {
        Command::Jobs(JobsArgs { actor, .. }) => cli::actor(actor.clone())?,
        _ => None,
    };
    let db = cart_core::db::DbConfig::from_env().map_err(anyhow::Error::from)?;
    let pool = db
        .connect()
        .await
        .context("connecting to the database (DATABASE_URL)")?;
    let stdout = std::io::stdout();
    let stdin = std::io::stdin();
    let mut ctx = Ctx {
        pool: &pool,
        registry: &registry,
        actor,
        out: &mut stdout.lock(),
        input: &mut stdin.lock(),
    };
    cli::run_operator(command, &mut ctx).await
}
