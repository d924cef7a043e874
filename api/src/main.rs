use std::process::ExitCode;

use anyhow::Context;
use cart_api::{config::ApiConfig, state::AppState};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cart-api", version, about = "cart HTTP API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Load the demo catalog (categories, products, coupons) when the catalog is empty.
    Seed,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Give an existing user the admin role.
    Promote { email: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    cart_core::config::load_dotenv();
    let command = Cli::parse().command.unwrap_or(Command::Serve);
    // Only the server exports traces; the one-shot commands log.
    let telemetry = match command {
        Command::Serve => cart_core::telemetry::init_serving("info", "cart-api"),
        _ => cart_core::telemetry::init("info").map(|()| None),
    };
    let traces = match telemetry {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(command).await;
    if let Some(traces) = traces {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve().await,
        Command::Migrate => {
            let db = cart_core::db::DbConfig::from_env()?;
            cart_core::db::create_database_if_missing(&db.url)
                .await
                .context("creating the database")?;
            let pool = db.connect().await.context("connecting to the database")?;
            cart_core::db::migrate(&pool).await.context("migrating")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed => {
            let db = cart_core::db::DbConfig::from_env()?;
            let pool = db.connect().await.context("connecting to the database")?;
            cart_api::seed::run(&pool).await
        }
        Command::Users {
            command: UsersCommand::Promote { email },
        } => {
            let db = cart_core::db::DbConfig::from_env()?;
            let pool = db.connect().await.context("connecting to the database")?;
            cart_api::admin::promote(&pool, &email).await
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    cart_core::deployment::check_startup("cart-api")?;
    let config = ApiConfig::from_env()?;
    let pool = config.db.connect_lazy().context("database configuration")?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let shipping = cart_core::shipping::provider_from_env().context("shipping provider")?;
    let state = AppState::new(pool, config).with_shipping(shipping);
    cart_api::startup(&state).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    cart_api::serve(listener, state).await?;
    Ok(())
}
