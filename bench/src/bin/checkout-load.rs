//! Checkout load through the real API, which wrk cannot model (every buyer has a cart): each
//! buyer registers once (with a CPF and an address), then repeats "add one item to the cart,
//! check out" until the time is up. Prints one JSON line: successful checkouts per second,
//! latency of the checkout request, and every other answer by status.
//!
//! Usage: `checkout-load --api http://127.0.0.1:18090 --buyers 32 --products-file ids.txt
//!         --seconds 10 [--accepted-file orders.txt] [--ready-file ready] [--request-timeout 35]`
//!
//! With `--ready-file`, that file is created once every buyer is registered and the timed run
//! begins, so a fault test can wait for it before it breaks anything.
//! With `--accepted-file`, the id of every order the API accepted (201) is written there, one
//! per line, so a fault test can check afterwards that none was lost.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use rand::Rng;
use serde_json::{Value, json};

#[derive(Parser, Clone)]
struct Args {
    #[arg(long)]
    api: String,
    #[arg(long, default_value_t = 32)]
    buyers: usize,
    /// Product ids to buy, one per line; each buyer picks one at random per checkout.
    #[arg(long)]
    products_file: std::path::PathBuf,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    accepted_file: Option<std::path::PathBuf>,
    #[arg(long)]
    ready_file: Option<std::path::PathBuf>,
    /// Client-side limit for one request; a request that takes longer counts as hung.
    #[arg(long, default_value_t = 35)]
    request_timeout: u64,
    /// Keep going through errors (fault tests) instead of stopping at the first failure.
    #[arg(long)]
    tolerate_errors: bool,
}

#[derive(Default)]
struct Tally {
    checkouts: u64,
    latencies_ms: Vec<f64>,
    by_status: BTreeMap<String, u64>,
    max_ms: f64,
    accepted: Vec<String>,
}

/// A valid CPF whose first nine digits are `base` (zero-padded).
fn cpf(base: u32) -> String {
    let digits: Vec<u32> = format!("{:09}", base % 1_000_000_000)
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let check = |ds: &[u32]| {
        let n = ds.len() as u32 + 1;
        let sum: u32 = ds.iter().enumerate().map(|(i, d)| d * (n - i as u32)).sum();
        let r = (sum * 10) % 11;
        if r == 10 { 0 } else { r }
    };
    let mut all = digits.clone();
    all.push(check(&all));
    all.push(check(&all));
    all.iter().map(|d| char::from(b'0' + *d as u8)).collect()
}

struct Buyer {
    token: String,
    address_id: String,
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let mut req = client.request(method, url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn register(client: &reqwest::Client, api: &str, n: usize) -> anyhow::Result<Buyer> {
    let run: u32 = rand::rng().random_range(1..900_000);
    let email = format!("comprador-{run}-{n}@bench.example");
    let (status, body) = send(
        client,
        reqwest::Method::POST,
        format!("{api}/api/auth/register"),
        None,
        &json!({"name": format!("Comprador {n}"), "email": email, "password": "senha-de-bench-123",
                "cpf": cpf(run * 100 + n as u32 + 1)}),
    )
    .await?;
    anyhow::ensure!(status == 201, "register answered {status}: {body}");
    let token = body["token"].as_str().context("a token")?.to_owned();
    let (status, body) = send(
        client,
        reqwest::Method::POST,
        format!("{api}/api/users/me/addresses"),
        Some(&token),
        &json!({"label": "Casa", "recipient": format!("Comprador {n}"), "cep": "01310-100",
                "street": "Avenida Paulista", "number": "1000", "complement": "",
                "district": "Bela Vista", "city": "São Paulo", "state": "SP"}),
    )
    .await?;
    anyhow::ensure!(status == 201, "address answered {status}: {body}");
    Ok(Buyer {
        token,
        address_id: body["id"].as_str().context("an address id")?.to_owned(),
    })
}

/// The first shipping service the store offers for these products to São Paulo.
async fn shipping_service(
    client: &reqwest::Client,
    api: &str,
    product: &str,
) -> anyhow::Result<String> {
    let (status, body) = send(
        client,
        reqwest::Method::POST,
        format!("{api}/api/shipping/calculate"),
        None,
        &json!({"cep_destino": "01310-100", "items": [{"product_id": product, "quantity": 1}]}),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "shipping/calculate answered {status}: {body}"
    );
    Ok(body["options"][0]["service"]
        .as_str()
        .context("a shipping option")?
        .to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let products: Vec<String> = std::fs::read_to_string(&args.products_file)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!products.is_empty(), "no product ids");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.request_timeout))
        .pool_max_idle_per_host(args.buyers)
        .build()?;
    let api = args.api.trim_end_matches('/').to_owned();
    let service = shipping_service(&client, &api, &products[0]).await?;

    // Registration hashes a password (Argon2id, deliberately slow, and the API lets only a
    // few hashes run at once): two at a time, each retried while the API answers 503.
    let hashing = Arc::new(tokio::sync::Semaphore::new(2));
    let registrations: Vec<_> = (0..args.buyers)
        .map(|n| {
            let (client, api, hashing) = (client.clone(), api.clone(), hashing.clone());
            tokio::spawn(async move {
                let _slot = hashing.acquire_owned().await?;
                let mut tries = 0;
                loop {
                    match register(&client, &api, n).await {
                        Err(e) if tries < 20 && e.to_string().contains("answered 503") => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        outcome => break outcome,
                    }
                }
            })
        })
        .collect();
    let mut buyers = Vec::new();
    for registration in registrations {
        buyers.push(registration.await??);
    }
    if let Some(path) = &args.ready_file {
        std::fs::File::create(path)?;
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    let products = Arc::new(products);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for buyer in buyers {
        let (client, api, service, products, tally) = (
            client.clone(),
            api.clone(),
            service.clone(),
            products.clone(),
            tally.clone(),
        );
        let tolerate = args.tolerate_errors;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let product = products[rand::rng().random_range(0..products.len())].clone();
                let add = send(
                    &client,
                    reqwest::Method::POST,
                    format!("{api}/api/cart/items"),
                    Some(&buyer.token),
                    &json!({"product_id": product, "quantity": 1}),
                )
                .await;
                let outcome = match add {
                    Ok((200 | 201, _)) => {
                        let begun = Instant::now();
                        let res = send(
                            &client,
                            reqwest::Method::POST,
                            format!("{api}/api/orders"),
                            Some(&buyer.token),
                            &json!({"address_id": buyer.address_id, "shipping_service": service}),
                        )
                        .await;
                        let ms = begun.elapsed().as_secs_f64() * 1000.0;
                        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                        t.max_ms = t.max_ms.max(ms);
                        match res {
                            Ok((201, body)) => {
                                t.checkouts += 1;
                                t.latencies_ms.push(ms);
                                if let Some(id) = body["id"].as_str() {
                                    t.accepted.push(id.to_owned());
                                }
                                Ok(())
                            }
                            Ok((status, body)) => {
                                *t.by_status.entry(format!("checkout {status}")).or_default() += 1;
                                Err(format!("checkout answered {status}: {body}"))
                            }
                            Err(e) => {
                                let kind = if e.to_string().contains("timed out") {
                                    "checkout timeout"
                                } else {
                                    "checkout error"
                                };
                                *t.by_status.entry(kind.into()).or_default() += 1;
                                Err(format!("checkout failed: {e}"))
                            }
                        }
                    }
                    Ok((status, body)) => {
                        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                        *t.by_status.entry(format!("add {status}")).or_default() += 1;
                        Err(format!("add to cart answered {status}: {body}"))
                    }
                    Err(e) => {
                        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                        *t.by_status.entry("add error".into()).or_default() += 1;
                        Err(format!("add to cart failed: {e}"))
                    }
                };
                if let Err(e) = outcome {
                    if !tolerate {
                        return Err(anyhow::anyhow!(e));
                    }
                    // Give a failing dependency room instead of hammering it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok(())
        }));
    }
    let mut first_error = None;
    for task in tasks {
        if let Err(e) = task.await? {
            first_error.get_or_insert(e);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
    t.latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if t.latencies_ms.is_empty() {
            0.0
        } else {
            t.latencies_ms[((t.latencies_ms.len() - 1) as f64 * p).round() as usize]
        }
    };
    if let Some(path) = &args.accepted_file {
        let mut file = std::fs::File::create(path)?;
        for id in &t.accepted {
            writeln!(file, "{id}")?;
        }
    }
    let failed: u64 = t.by_status.values().sum();
    println!(
        "{}",
        json!({
            "checkouts": t.checkouts,
            "seconds": seconds,
            "per_second": t.checkouts as f64 / seconds,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": t.max_ms,
            "failed": failed,
            "failures": t.by_status,
            "error": first_error.map(|e| e.to_string()),
        })
    );
    Ok(())
}
