//! `APP_ENV=production` with the real `cart-api` binary: `serve` refuses a no-network
//! provider or a published `JWT_SECRET`, naming the variable; `migrate` is not affected; a
//! start logs its providers and warns about variables cart does not read.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use sqlx::PgPool;
use uuid::Uuid;

fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres"),
    )
}

/// An empty directory to run in, so that no `.env` is read.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cart-production-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `cart-api` with nothing of this process's environment, a database and a secret of its own.
fn cart_api(pool: &PgPool, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let dir = scratch_dir();
    let own_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let mut command = Command::new(env!("CARGO_BIN_EXE_cart-api"));
    command
        .args(args)
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", database_url(pool))
        .env("JWT_SECRET", own_secret)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", "info")
        .env("MAIL_OUTBOX_DIR", dir.join("outbox"))
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for the process to exit by itself; one that is still serving after a while is killed
/// and fails the test.
fn exit_of(mut child: Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut output = String::new();
            for stream in [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                for line in BufReader::new(stream).lines() {
                    output.push_str(&line.unwrap_or_default());
                    output.push('\n');
                }
            }
            return (status, output);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cart-api kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Real providers for everything but what a test leaves out.
const REAL_PROVIDERS: &[(&str, &str)] = &[
    ("APP_ENV", "production"),
    ("PIX_PROVIDER", "openpix"),
    ("CARD_PROVIDER", "stripe"),
    ("NFE_PROVIDER", "focusnfe"),
    ("MAIL_PROVIDER", "resend"),
];

fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars: Vec<_> = REAL_PROVIDERS
        .iter()
        .filter(|(name, _)| !overrides.iter().any(|(o, _)| o == name))
        .copied()
        .collect();
    vars.extend_from_slice(overrides);
    vars
}

#[sqlx::test(migrations = false)]
async fn production_serve_refuses_a_sandbox_provider_naming_it(pool: PgPool) {
    let child = cart_api(&pool, &["serve"], &with(&[("PIX_PROVIDER", "sandbox")]))
        .spawn()
        .unwrap();
    let (status, output) = exit_of(child);
    assert!(!status.success(), "{output}");
    assert!(output.contains("PIX_PROVIDER"), "{output}");
    assert!(output.contains("ALLOW_SANDBOX_IN_PRODUCTION"), "{output}");
    assert!(!output.contains("CARD_PROVIDER is"), "{output}");
}

#[sqlx::test(migrations = false)]
async fn production_serve_refuses_the_published_development_secret(pool: PgPool) {
    let mut command = cart_api(
        &pool,
        &["serve"],
        &[
            ("APP_ENV", "production"),
            ("ALLOW_SANDBOX_IN_PRODUCTION", "true"),
        ],
    );
    // The secret `scripts/run` falls back to.
    command.env(
        "JWT_SECRET",
        "dev-only-secret-change-me-in-production-0123456789",
    );
    let (status, output) = exit_of(command.spawn().unwrap());
    assert!(!status.success(), "{output}");
    assert!(output.contains("JWT_SECRET"), "{output}");
}

#[sqlx::test(migrations = false)]
async fn production_migrate_runs_whatever_the_providers(pool: PgPool) {
    let child = cart_api(&pool, &["migrate"], &with(&[("PIX_PROVIDER", "sandbox")]))
        .spawn()
        .unwrap();
    let (status, output) = exit_of(child);
    assert!(status.success(), "{output}");
    assert!(output.contains("migrations applied"), "{output}");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(applied > 0);
}

#[sqlx::test(migrations = false)]
async fn a_start_names_its_providers_and_warns_about_unread_variables(pool: PgPool) {
    cart_core::db::migrate(&pool).await.unwrap();
    let mut child = cart_api(
        &pool,
        &["serve"],
        &[
            ("APP_ENV", "production"),
            ("ALLOW_SANDBOX_IN_PRODUCTION", "true"),
            ("MAILER_FROM_EMAIL", "loja@example.com"),
            ("NFE_EMITER_CNPJ", "11222333000181"),
        ],
    )
    .spawn()
    .unwrap();
    let logs = child.stderr.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(logs).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.contains("\"listening\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = seen.join("\n");
    assert!(
        log.contains("\"listening\""),
        "allowed sandboxes start: {log}"
    );
    let providers = seen
        .iter()
        .find(|l| l.contains("active providers"))
        .unwrap_or_else(|| panic!("one line names the providers: {log}"));
    for field in [
        "\"pix\":\"sandbox\"",
        "\"card\":\"sandbox\"",
        "\"nfe\":\"sandbox\"",
        "\"mail\":\"outbox\"",
        "\"shipping\":\"table\"",
    ] {
        assert!(providers.contains(field), "{providers}");
    }
    let renamed = seen
        .iter()
        .find(|l| l.contains("MAILER_FROM_EMAIL"))
        .unwrap_or_else(|| panic!("the renamed variable is warned about: {log}"));
    assert!(
        renamed.contains(r#""level":"warn""#) && renamed.contains("MAIL_FROM"),
        "{renamed}"
    );
    assert!(log.contains("NFE_EMITER_CNPJ"), "{log}");
}
