//! Starting the real `cart-worker run`: the port it listens on, and an invalid `LOG_LEVEL`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::PgPool;

use crate::helpers;

/// `cart-worker run` with only the variables given here, in an empty directory (no `.env`).
fn cart_worker(pool: &PgPool, vars: &[(&str, &str)]) -> Command {
    let dir = std::env::temp_dir().join(format!("cart-worker-start-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cart-worker"));
    command
        .arg("run")
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", helpers::database_url(pool))
        .env(
            "JWT_SECRET",
            std::str::from_utf8(helpers::RESET_SECRET).unwrap(),
        )
        .env("WORKER_TICKERS", "false")
        .env("MAIL_OUTBOX_DIR", dir.join("outbox"))
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The status line of `GET /health` on `port`, once something answers there.
fn health_on(port: u16, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            return answer.lines().next().unwrap_or_default().to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the worker exited before listening"
        );
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[sqlx::test(migrations = false)]
async fn without_worker_port_the_worker_listens_on_port(pool: PgPool) {
    cart_core::db::migrate(&pool).await.unwrap();
    let port = free_port();
    let mut worker = Running(
        cart_worker(&pool, &[("PORT", &port.to_string())])
            .spawn()
            .unwrap(),
    );
    let status = health_on(port, &mut worker.0);
    assert!(status.contains(" 200 "), "{status}");
}

#[sqlx::test(migrations = false)]
async fn worker_port_wins_over_port(pool: PgPool) {
    cart_core::db::migrate(&pool).await.unwrap();
    let (platform_port, worker_port) = (free_port(), free_port());
    let mut worker = Running(
        cart_worker(
            &pool,
            &[
                ("PORT", &platform_port.to_string()),
                ("WORKER_PORT", &worker_port.to_string()),
            ],
        )
        .spawn()
        .unwrap(),
    );
    let status = health_on(worker_port, &mut worker.0);
    assert!(status.contains(" 200 "), "{status}");
    assert!(TcpStream::connect(("127.0.0.1", platform_port)).is_err());
}

#[sqlx::test(migrations = false)]
async fn an_invalid_log_level_stops_the_worker_naming_it(pool: PgPool) {
    let output = cart_worker(&pool, &[("LOG_LEVEL", "verbose"), ("WORKER_PORT", "0")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("LOG_LEVEL"), "{stderr}");
}
