//! The checkout ceiling: the database work of "add to cart, check out" as raw SQL on the real
//! schema, with nothing else around it (no HTTP, no JSON, no auth, no shipping quote). Each
//! buyer repeats: put one item in the cart (its own statement, as the API's add-to-cart is its
//! own request), then one transaction that reads the cart, decrements stock only where enough
//! remains, writes the order, its items and its first event, empties the cart and enqueues
//! the follow-up jobs the API enqueues (the "order placed" e-mail, rendered with the same
//! template, and the expiry check), so that a worker running beside it has the same e-mails
//! to send as it has during the API's run. Prints one JSON line.
//!
//! Usage: `checkout-ceiling --database-url … --buyers 32 --products-file ids.txt --seconds 10`

use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Context;
use cart_core::{
    jobs::{self, expire_order::ExpireOrder, send_email::SendEmail},
    mail::templates::{Branding, OrderLine, OrderPlaced, Templates},
};
use clap::Parser;
use rand::Rng;
use serde_json::json;
use sqlx::{Connection, PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 32)]
    buyers: usize,
    #[arg(long)]
    products_file: std::path::PathBuf,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Line {
    product_id: Uuid,
    quantity: i32,
    price_cents: i64,
    sku: String,
    name: String,
    ncm: String,
    weight_grams: i32,
}

/// Buyers as the API would have them: an account with a CPF and a cart.
async fn create_buyers(pool: &PgPool, count: usize) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    for n in 0..count {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, name, email, cpf, password_hash)
             VALUES ($1, $2, $3, '52998224725', 'bench-no-login')",
        )
        .bind(id)
        .bind(format!("Comprador {n}"))
        .bind(format!("teto-{}@bench.example", id.simple()))
        .execute(pool)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

async fn add_to_cart(pool: &PgPool, buyer: Uuid, product: Uuid) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO carts (user_id) VALUES ($1)
         ON CONFLICT (user_id) DO UPDATE SET updated_at = now()",
    )
    .bind(buyer)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, 1)
         ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = cart_items.quantity + 1",
    )
    .bind(buyer)
    .bind(product)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One checkout's writes; `false` when stock ran short (nothing written).
async fn checkout(pool: &PgPool, templates: &Templates, buyer: Uuid) -> anyhow::Result<bool> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let lines: Vec<(Uuid, i32, i64, String, String, String, i32)> = sqlx::query_as(
        "SELECT c.product_id, c.quantity, p.price_cents, p.sku, p.name, p.ncm, p.weight_grams
         FROM cart_items c JOIN products p ON p.id = c.product_id AND p.deleted_at IS NULL
         WHERE c.user_id = $1 ORDER BY c.product_id",
    )
    .bind(buyer)
    .fetch_all(&mut *tx)
    .await?;
    let lines: Vec<Line> = lines
        .into_iter()
        .map(
            |(product_id, quantity, price_cents, sku, name, ncm, weight_grams)| Line {
                product_id,
                quantity,
                price_cents,
                sku,
                name,
                ncm,
                weight_grams,
            },
        )
        .collect();
    for line in &lines {
        let taken = sqlx::query(
            "UPDATE products SET stock = stock - $2, updated_at = now()
             WHERE id = $1 AND stock >= $2",
        )
        .bind(line.product_id)
        .bind(line.quantity)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() == 0 {
            return Ok(false);
        }
    }
    let subtotal: i64 = lines
        .iter()
        .map(|l| l.price_cents * i64::from(l.quantity))
        .sum();
    let shipping = 1850_i64;
    let order_id = Uuid::now_v7();
    let number: String = {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let mut rng = rand::rng();
        (0..8)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    sqlx::query(
        "INSERT INTO orders (id, number, user_id, subtotal_cents, discount_cents, shipping_cents,
             total_cents, shipping_carrier, shipping_service, shipping_days, shipping_address,
             recipient_cpf, expires_at)
         VALUES ($1, $2, $3, $4, 0, $5, $6, 'Correios', 'PAC', 7, $7, '52998224725',
                 now() + interval '30 minutes')",
    )
    .bind(order_id)
    .bind(format!("CART-{number}"))
    .bind(buyer)
    .bind(subtotal)
    .bind(shipping)
    .bind(subtotal + shipping)
    .bind(
        json!({"label": "Casa", "recipient": "Comprador", "cep": "01310100",
                 "street": "Avenida Paulista", "number": "1000", "complement": "",
                 "district": "Bela Vista", "city": "São Paulo", "state": "SP"}),
    )
    .execute(&mut *tx)
    .await?;
    for line in &lines {
        sqlx::query(
            "INSERT INTO order_items (order_id, product_id, sku, name, unit_price_cents, quantity,
                 line_total_cents, ncm, weight_grams)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(order_id)
        .bind(line.product_id)
        .bind(&line.sku)
        .bind(&line.name)
        .bind(line.price_cents)
        .bind(line.quantity)
        .bind(line.price_cents * i64::from(line.quantity))
        .bind(&line.ncm)
        .bind(line.weight_grams)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO order_events (order_id, to_status, to_payment_status, actor)
         VALUES ($1, 'pending_payment', 'pending_payment', $2)",
    )
    .bind(order_id)
    .bind(buyer.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1")
        .bind(buyer)
        .execute(&mut *tx)
        .await?;
    // The follow-up jobs, as the API's checkout writes them.
    let email = SendEmail {
        message: templates.order_placed(
            &format!("comprador-{}@bench.example", buyer.simple()),
            &OrderPlaced {
                customer_name: "Comprador".into(),
                order_id,
                order_number: format!("CART-{number}"),
                items: lines
                    .iter()
                    .map(|l| OrderLine {
                        name: l.name.clone(),
                        quantity: i64::from(l.quantity),
                        unit_price_cents: l.price_cents,
                        line_total_cents: l.price_cents * i64::from(l.quantity),
                    })
                    .collect(),
                subtotal_cents: subtotal,
                discount_cents: 0,
                shipping_cents: shipping,
                total_cents: subtotal + shipping,
            },
        )?,
        key: Some(format!("order_placed:{order_id}")),
        order_id: Some(order_id),
    };
    let expiry = ExpireOrder { order_id };
    cart_core::jobs::enqueue_all(
        &mut tx,
        &[
            jobs::encode(&email, None)?,
            jobs::encode(
                &expiry,
                Some(chrono::Utc::now() + chrono::Duration::minutes(30)),
            )?,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let products: Vec<Uuid> = std::fs::read_to_string(&args.products_file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse().context("a product id"))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!products.is_empty(), "no product ids");
    let pool = PgPoolOptions::new()
        .max_connections(args.buyers as u32)
        .connect(&args.database_url)
        .await?;
    let buyers = create_buyers(&pool, args.buyers).await?;
    let templates = Arc::new(Templates::new(Branding::new(
        "Loja de bench",
        "http://127.0.0.1:3000",
    ))?);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for buyer in buyers {
        let (pool, products, templates) = (pool.clone(), products.clone(), templates.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut short, mut latencies) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let product = products[rand::rng().random_range(0..products.len())];
                add_to_cart(&pool, buyer, product).await?;
                let begun = Instant::now();
                if checkout(&pool, &templates, buyer).await? {
                    done += 1;
                    latencies.push(begun.elapsed().as_secs_f64() * 1000.0);
                } else {
                    short += 1;
                }
            }
            Ok::<_, anyhow::Error>((done, short, latencies))
        }));
    }
    let (mut total, mut short, mut latencies) = (0u64, 0u64, Vec::new());
    for task in tasks {
        let (d, s, l) = task.await??;
        total += d;
        short += s;
        latencies.extend(l);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get(((latencies.len().max(1) - 1) as f64 * 0.99).round() as usize)
        .copied()
        .unwrap_or(0.0);
    println!(
        "{}",
        json!({"checkouts": total, "short_stock": short, "seconds": seconds,
               "per_second": total as f64 / seconds, "p99_ms": p99})
    );
    Ok(())
}
