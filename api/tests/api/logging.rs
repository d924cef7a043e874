//! The log output of the real `cart-api` binary: one flat JSON object per line (the ids in
//! scope as top-level fields), and an invalid `LOG_LEVEL` stopping the process.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// Names the spawned API's connections, so the test can wait for them to close.
const APPLICATION_NAME: &str = "cart-api-logging-test";

fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}?application_name={APPLICATION_NAME}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres"),
    )
}

/// The spawned API, killed however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the API and waits until PostgreSQL has seen its connections go, so the test
/// database can be dropped.
async fn stop(api: Running, pool: &PgPool) {
    drop(api);
    for _ in 0..100 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND datname = current_database()",
        )
        .bind(APPLICATION_NAME)
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `cart-api serve` with nothing of this process's environment, in an empty directory (no
/// `.env`), on a port of its choosing.
fn cart_api(pool: &PgPool, log_level: &str) -> Command {
    let dir = std::env::temp_dir().join(format!("cart-logging-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cart-api"));
    command
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .env("DATABASE_URL", database_url(pool))
        .env(
            "JWT_SECRET",
            format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
        )
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", log_level)
        .env("ARGON2_MEMORY_KIB", "8192")
        .env("ARGON2_ITERATIONS", "1")
        .env("ARGON2_PARALLELISM", "1")
        .env("MAIL_OUTBOX_DIR", dir.join("outbox"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The process's stderr, line by line, on a channel.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one satisfies `wanted`; every line read must be a JSON object.
fn read_until(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<Map<String, Value>>,
    wanted: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no such line; read: {seen:#?}"));
        let object = match serde_json::from_str(&line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("a log line that is not one JSON object: {line}"),
        };
        seen.push(object.clone());
        if wanted(&object) {
            return object;
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_request_logs_flat_json_lines_naming_its_request_and_user(pool: PgPool) {
    cart_core::db::migrate(&pool).await.unwrap();
    let mut api = Running(cart_api(&pool, "info").spawn().unwrap());
    let lines = lines_of(&mut api.0);
    let mut seen = Vec::new();
    let listening = read_until(&lines, &mut seen, |l| {
        l.get("msg").and_then(Value::as_str) == Some("listening")
    });
    let base = format!("http://{}", listening["addr"].as_str().unwrap());

    let client = reqwest::Client::new();
    let registered: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({
            "name": "Cliente Log", "email": "cliente-log@example.com",
            "password": "senha-segura-123"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap();
    let user_id = registered["user"]["id"].as_str().unwrap();
    let request_id = format!("log-check-{}", Uuid::new_v4().simple());
    let me = client
        .get(format!("{base}/api/users/me"))
        .bearer_auth(token)
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let access = read_until(&lines, &mut seen, |l| {
        l.get("request_id").and_then(Value::as_str) == Some(request_id.as_str())
    });
    stop(api, &pool).await;

    assert_eq!(access["msg"], "request", "{access:?}");
    assert_eq!(access["level"], "info");
    assert!(
        access["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("cart_api")),
        "{access:?}"
    );
    let time = access["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    // Recorded on the request's span by the auth extractor, not passed to the event.
    assert_eq!(access["user_id"], user_id, "{access:?}");
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/api/users/me");
    for nested in ["fields", "span", "spans"] {
        assert!(!access.contains_key(nested), "{nested} in {access:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn an_invalid_log_level_stops_the_api_naming_it(pool: PgPool) {
    let output = cart_api(&pool, "verbose").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("LOG_LEVEL"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn a_checkout_logs_the_order_placed_with_its_ids_and_total_as_flat_fields(pool: PgPool) {
    cart_core::db::migrate(&pool).await.unwrap();
    let mut api = Running(cart_api(&pool, "info").spawn().unwrap());
    let lines = lines_of(&mut api.0);
    let mut seen = Vec::new();
    let listening = read_until(&lines, &mut seen, |l| {
        l.get("msg").and_then(Value::as_str) == Some("listening")
    });
    let base = format!("http://{}", listening["addr"].as_str().unwrap());

    let client = reqwest::Client::new();
    let registered: Value = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({
            "name": "Cliente Pedido", "email": "cliente-pedido@example.com",
            "password": "senha-segura-123", "cpf": crate::checkout::CPF
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap();
    let user_id: Uuid = registered["user"]["id"].as_str().unwrap().parse().unwrap();
    let address_id = crate::checkout::address_of(&pool, user_id).await;
    let book = crate::checkout::product(&pool, "Livro", 4990, 5).await;
    crate::checkout::add_to_cart(&pool, user_id, book, 2).await;
    let request_id = format!("checkout-{}", Uuid::new_v4().simple());
    let response = client
        .post(format!("{base}/api/orders"))
        .bearer_auth(token)
        .header("x-request-id", &request_id)
        .json(&serde_json::json!({"address_id": address_id, "shipping_service": "PAC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let order: Value = response.json().await.unwrap();

    let placed = read_until(&lines, &mut seen, |l| {
        l.get("msg").and_then(Value::as_str) == Some("order placed")
    });
    stop(api, &pool).await;

    assert_eq!(placed["level"], "info", "{placed:?}");
    assert_eq!(placed["order_id"], order["id"], "{placed:?}");
    assert_eq!(placed["order_number"], order["number"]);
    assert_eq!(placed["total_cents"], order["total_cents"]);
    assert_eq!(placed["items"], 1);
    assert_eq!(placed["user_id"], user_id.to_string());
    // From the request's span: the line is found from the request, the order or the buyer.
    assert_eq!(placed["request_id"], request_id.as_str());
    for nested in ["fields", "span", "spans"] {
        assert!(!placed.contains_key(nested), "{nested} in {placed:?}");
    }
}
