//! Database tests of checkout, cancellation and expiry: what is reserved, what is given back,
//! and that it happens exactly once under concurrency.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Barrier;
use uuid::Uuid;

use super::{CheckoutContext, CheckoutRequest, place_order};
use crate::{
    Error,
    http_client::ProviderError,
    mail::templates::{Branding, Templates},
    orders::{
        Actor, Order, OrderState, OrderStatus, PaymentStatus,
        cancel::{self, Expiry},
        lifecycle,
        read::{self, Viewer},
        status,
    },
    shipping::{QuoteRequest, ShippingOption, ShippingProvider},
    test_support::{insert_user, product},
};

/// A carrier that always offers PAC and SEDEX at fixed prices, or always fails.
struct StubCarrier {
    fail: bool,
}

#[async_trait]
impl ShippingProvider for StubCarrier {
    async fn quote(&self, _request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        if self.fail {
            return Err(ProviderError::Unavailable("carrier down".into()));
        }
        Ok(vec![
            ShippingOption {
                carrier: "Correios".into(),
                service: "PAC".into(),
                price_cents: 1850,
                days: 7,
            },
            ShippingOption {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 3200,
                days: 2,
            },
        ])
    }
}

const CPF: &str = "52998224725";

/// A customer with (or without) a CPF and one address; returns (user id, address id).
async fn customer(conn: &mut PgConnection, with_cpf: bool) -> (Uuid, Uuid) {
    let user = insert_user(conn, with_cpf.then_some(CPF)).await;
    let address = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO addresses (id, user_id, label, recipient, cep, street, number, district,
                                city, state, is_default)
         VALUES ($1, $2, 'Casa', 'Maria Silva', '01310100', 'Avenida Paulista', '1000',
                 'Bela Vista', 'São Paulo', 'SP', true)",
    )
    .bind(address)
    .bind(user)
    .execute(conn)
    .await
    .unwrap();
    (user, address)
}

async fn add_to_cart(conn: &mut PgConnection, user: Uuid, product: Uuid, quantity: i32) {
    sqlx::query("INSERT INTO carts (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(product)
        .bind(quantity)
        .execute(conn)
        .await
        .unwrap();
}

/// A 10 % coupon with at most `max_uses` uses.
async fn coupon(conn: &mut PgConnection, max_uses: Option<i32>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO coupons (id, code, kind, value, max_uses) VALUES ($1, $2, 'percent', 10, $3)",
    )
    .bind(id)
    .bind(format!("DEZ{}", &id.simple().to_string()[20..28]).to_uppercase())
    .bind(max_uses)
    .execute(conn)
    .await
    .unwrap();
    id
}

async fn attach_coupon(conn: &mut PgConnection, user: Uuid, coupon: Uuid) {
    sqlx::query("UPDATE carts SET coupon_id = $2 WHERE user_id = $1")
        .bind(user)
        .bind(coupon)
        .execute(conn)
        .await
        .unwrap();
}

async fn stock_of(conn: &mut PgConnection, product: Uuid) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(product)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn coupon_uses(conn: &mut PgConnection, coupon: Uuid) -> i32 {
    sqlx::query_scalar("SELECT uses FROM coupons WHERE id = $1")
        .bind(coupon)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn cart_lines(conn: &mut PgConnection, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM cart_items WHERE user_id = $1")
        .bind(user)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn jobs_with_key(conn: &mut PgConnection, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(conn)
        .await
        .unwrap()
}

fn request(address_id: Uuid) -> CheckoutRequest {
    CheckoutRequest {
        address_id,
        shipping_service: "pac".into(),
    }
}

async fn checkout(conn: &mut PgConnection, user: Uuid, address: Uuid) -> crate::Result<Order> {
    let carrier = StubCarrier { fail: false };
    let templates = Templates::new(Branding::new("Loja Teste", "https://loja.example")).unwrap();
    let ctx = CheckoutContext {
        shipping: &carrier,
        sender_cep: "01310100",
        payment_ttl: Duration::from_secs(1800),
        templates: &templates,
        max_unpaid_orders: 0,
    };
    place_order(conn, &ctx, user, &request(address)).await
}

async fn mark_paid(pool: &PgPool, order_id: Uuid) {
    let mut conn = pool.acquire().await.unwrap();
    status::transition(
        &mut conn,
        order_id,
        OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
        Actor::System,
        "paid",
    )
    .await
    .unwrap();
}

async fn make_due(conn: &mut PgConnection, order_id: Uuid) {
    sqlx::query("UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(order_id)
        .execute(conn)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn checkout_reserves_stock_counts_the_coupon_and_empties_the_cart(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 5).await;
    let mug = product(&mut conn, 1000, 1).await;
    let (user, address) = customer(&mut conn, true).await;
    add_to_cart(&mut conn, user, coffee, 2).await;
    add_to_cart(&mut conn, user, mug, 1).await;
    let ten_percent = coupon(&mut conn, Some(5)).await;
    attach_coupon(&mut conn, user, ten_percent).await;

    let order = checkout(&mut conn, user, address).await.unwrap();

    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.payment_status, PaymentStatus::PendingPayment);
    assert_eq!(order.subtotal_cents, 6180);
    assert_eq!(order.discount_cents, 618);
    assert_eq!(order.shipping_cents, 1850);
    assert_eq!(order.total_cents, 6180 - 618 + 1850);
    assert_eq!(order.shipping.service, "PAC");
    assert_eq!(order.shipping.days, 7);
    assert_eq!(order.shipping.address.recipient, "Maria Silva");
    assert!(order.coupon_code.as_deref().unwrap().starts_with("DEZ"));
    assert_eq!(order.items.len(), 2);
    assert_eq!(stock_of(&mut conn, coffee).await, 3);
    assert_eq!(stock_of(&mut conn, mug).await, 0);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 1);
    assert_eq!(cart_lines(&mut conn, user).await, 0);

    let cpf: String = sqlx::query_scalar("SELECT recipient_cpf FROM orders WHERE id = $1")
        .bind(order.id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(cpf, CPF);
    let ncm: Option<String> =
        sqlx::query_scalar("SELECT ncm FROM order_items WHERE order_id = $1 LIMIT 1")
            .bind(order.id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(ncm.as_deref(), Some("09012100"));

    // The follow-up jobs: the e-mail now, the expiry check at the deadline.
    let placed = format!("order_placed:{}", order.id);
    assert_eq!(jobs_with_key(&mut conn, &placed).await, 1);
    let mail: Vec<u8> =
        sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE idempotency_key = $1")
            .bind(&placed)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let mail: serde_json::Value = serde_json::from_slice(&mail).unwrap();
    let message = &mail["payload"]["message"];
    assert_eq!(message["tag"], "order_placed");
    assert!(message["to"].as_str().unwrap().ends_with("@example.com"));
    assert!(message["subject"].as_str().unwrap().contains(&order.number));
    let (kind, due_at_deadline): (String, bool) = sqlx::query_as(
        "SELECT j.job_type, j.run_at = o.expires_at FROM apalis.jobs j, orders o
         WHERE j.idempotency_key = $1 AND o.id = $2",
    )
    .bind(format!("expire_order:{}", order.id))
    .bind(order.id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(kind, "expire_order");
    assert!(due_at_deadline);
}

#[sqlx::test(migrations = false)]
async fn checkout_refuses_what_it_cannot_sell_and_writes_nothing(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 1).await;

    // Empty cart.
    let (user, address) = customer(&mut conn, true).await;
    let err = checkout(&mut conn, user, address).await.unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(f) if f.0.contains_key("cart")),
        "{err:?}"
    );

    // No CPF.
    let (no_cpf, no_cpf_address) = customer(&mut conn, false).await;
    add_to_cart(&mut conn, no_cpf, coffee, 1).await;
    let err = checkout(&mut conn, no_cpf, no_cpf_address)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(f) if f.0.contains_key("cpf")),
        "{err:?}"
    );

    // Someone else's address.
    add_to_cart(&mut conn, user, coffee, 2).await;
    let err = checkout(&mut conn, user, no_cpf_address).await.unwrap_err();
    assert!(
        matches!(&err, Error::Invalid(f) if f.0.contains_key("address_id")),
        "{err:?}"
    );

    // Short stock names the product.
    let err = checkout(&mut conn, user, address).await.unwrap_err();
    let Error::Conflict(detail) = &err else {
        panic!("expected a conflict, got {err:?}")
    };
    assert!(detail.contains("Café"), "{detail}");

    // Unknown shipping service.
    let carrier = StubCarrier { fail: false };
    let templates = Templates::new(Branding::new("Loja", "https://loja.example")).unwrap();
    let ctx = CheckoutContext {
        shipping: &carrier,
        sender_cep: "01310100",
        payment_ttl: Duration::from_secs(60),
        templates: &templates,
        max_unpaid_orders: 0,
    };
    let teleport = CheckoutRequest {
        address_id: address,
        shipping_service: "TELEPORTE".into(),
    };
    let err = place_order(&mut conn, &ctx, user, &teleport)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid(f) if f.0.contains_key("shipping_service")));

    // The carrier is down: 503, nothing written.
    let down = StubCarrier { fail: true };
    let ctx = CheckoutContext {
        shipping: &down,
        ..ctx
    };
    let err = place_order(&mut conn, &ctx, user, &request(address))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");

    assert_eq!(stock_of(&mut conn, coffee).await, 1);
    assert_eq!(cart_lines(&mut conn, user).await, 1);
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(orders, 0);
}

#[sqlx::test(migrations = false)]
async fn a_failure_after_the_stock_is_taken_rolls_everything_back(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 5).await;
    let (user, address) = customer(&mut conn, true).await;
    add_to_cart(&mut conn, user, coffee, 2).await;
    let limited = coupon(&mut conn, Some(3)).await;
    attach_coupon(&mut conn, user, limited).await;
    // The last step of checkout (enqueueing its jobs) will fail: the queue table is gone.
    sqlx::query("ALTER TABLE apalis.jobs RENAME TO jobs_unavailable")
        .execute(&mut *conn)
        .await
        .unwrap();

    let err = checkout(&mut conn, user, address).await.unwrap_err();
    assert!(matches!(err, Error::Db(_)), "{err:?}");

    assert_eq!(stock_of(&mut conn, coffee).await, 5);
    assert_eq!(cart_lines(&mut conn, user).await, 1);
    assert_eq!(coupon_uses(&mut conn, limited).await, 0);
    let still_attached: Option<Uuid> =
        sqlx::query_scalar("SELECT coupon_id FROM carts WHERE user_id = $1")
            .bind(user)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(still_attached, Some(limited));
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items)
              + (SELECT count(*) FROM order_events) + (SELECT count(*) FROM coupon_redemptions)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(written, 0);
}

#[sqlx::test(migrations = false)]
async fn cancelling_an_unpaid_order_gives_stock_and_coupon_back_once(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 5).await;
    let (user, address) = customer(&mut conn, true).await;
    add_to_cart(&mut conn, user, coffee, 2).await;
    let ten_percent = coupon(&mut conn, None).await;
    attach_coupon(&mut conn, user, ten_percent).await;
    let order = checkout(&mut conn, user, address).await.unwrap();
    assert_eq!(stock_of(&mut conn, coffee).await, 3);

    let owner = Viewer {
        user_id: user,
        is_admin: false,
    };
    let stranger = Viewer {
        user_id: Uuid::now_v7(),
        is_admin: false,
    };
    assert!(matches!(
        cancel::cancel(&mut conn, order.id, stranger).await,
        Err(Error::NotFound)
    ));
    let cancelled = cancel::cancel(&mut conn, order.id, owner).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.payment_status, PaymentStatus::Expired);
    assert_eq!(stock_of(&mut conn, coffee).await, 5);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 0);

    // Again, and an expiry after it: conflicts and no-ops, nothing given back twice.
    assert!(matches!(
        cancel::cancel(&mut conn, order.id, owner).await,
        Err(Error::Conflict(_))
    ));
    make_due(&mut conn, order.id).await;
    assert_eq!(
        cancel::expire_one(&mut conn, order.id).await.unwrap(),
        Expiry::NotPending
    );
    assert_eq!(stock_of(&mut conn, coffee).await, 5);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 0);
    assert_eq!(
        jobs_with_key(&mut conn, &format!("refund:{}", order.id)).await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn cancelling_a_paid_order_asks_for_a_refund_and_shipped_ones_cannot_be_cancelled(
    pool: PgPool,
) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 5).await;
    let (user, address) = customer(&mut conn, true).await;
    let owner = Viewer {
        user_id: user,
        is_admin: false,
    };
    add_to_cart(&mut conn, user, coffee, 1).await;
    let first = checkout(&mut conn, user, address).await.unwrap();
    mark_paid(&pool, first.id).await;
    // A paid order never expires.
    make_due(&mut conn, first.id).await;
    assert_eq!(
        cancel::expire_one(&mut conn, first.id).await.unwrap(),
        Expiry::NotPending
    );
    let cancelled = cancel::cancel(&mut conn, first.id, owner).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.payment_status, PaymentStatus::RefundPending);
    assert_eq!(stock_of(&mut conn, coffee).await, 5);
    let refund = format!("refund:{}", first.id);
    assert_eq!(jobs_with_key(&mut conn, &refund).await, 1);
    let (kind, attempts): (String, i32) =
        sqlx::query_as("SELECT job_type, max_attempts FROM apalis.jobs WHERE idempotency_key = $1")
            .bind(&refund)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), attempts), ("refund_payment", 10));

    add_to_cart(&mut conn, user, coffee, 1).await;
    let second = checkout(&mut conn, user, address).await.unwrap();
    mark_paid(&pool, second.id).await;
    let templates = Templates::new(Branding::new("Loja", "https://loja.example")).unwrap();
    lifecycle::mark_shipped(
        &mut conn,
        &templates,
        second.id,
        "QB1BR",
        "Correios",
        Actor::System,
    )
    .await
    .unwrap();
    assert_eq!(
        jobs_with_key(&mut conn, &format!("order_shipped:{}", second.id)).await,
        1
    );
    let err = cancel::cancel(&mut conn, second.id, owner)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(stock_of(&mut conn, coffee).await, 4);
}

#[sqlx::test(migrations = false)]
async fn the_ticker_expires_only_unpaid_orders_past_their_deadline(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 10).await;
    let ten_percent = coupon(&mut conn, None).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        let (user, address) = customer(&mut conn, true).await;
        add_to_cart(&mut conn, user, coffee, 2).await;
        attach_coupon(&mut conn, user, ten_percent).await;
        orders.push(checkout(&mut conn, user, address).await.unwrap().id);
    }
    assert_eq!(stock_of(&mut conn, coffee).await, 4);
    make_due(&mut conn, orders[0]).await;
    make_due(&mut conn, orders[1]).await;

    // Not yet due by the job's own check.
    assert!(matches!(
        cancel::expire_one(&mut conn, orders[2]).await.unwrap(),
        Expiry::NotDue(_)
    ));
    assert_eq!(
        cancel::expire_due(&mut conn, chrono::Utc::now())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        cancel::expire_due(&mut conn, chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(stock_of(&mut conn, coffee).await, 8);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 1);
    let expired = read::get(&mut conn, orders[0]).await.unwrap();
    assert_eq!(expired.status, OrderStatus::Cancelled);
    assert_eq!(expired.payment_status, PaymentStatus::Expired);
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM order_events WHERE order_id = $1 AND actor = 'system'",
    )
    .bind(orders[0])
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(reason, "payment window expired");

    // Judged at a later instant, the last one is due too.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(cancel::expire_due(&mut conn, later).await.unwrap(), 1);
    assert_eq!(stock_of(&mut conn, coffee).await, 10);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 0);
}

#[sqlx::test(migrations = false)]
async fn cancel_and_expiry_racing_give_back_exactly_once(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coffee = product(&mut conn, 2590, 1000).await;
    let ten_percent = coupon(&mut conn, None).await;
    const ROUNDS: usize = 25;
    let mut orders = Vec::new();
    for _ in 0..ROUNDS {
        let (user, address) = customer(&mut conn, true).await;
        add_to_cart(&mut conn, user, coffee, 3).await;
        attach_coupon(&mut conn, user, ten_percent).await;
        let order = checkout(&mut conn, user, address).await.unwrap();
        orders.push((order.id, user));
    }
    assert_eq!(stock_of(&mut conn, coffee).await, 1000 - 3 * ROUNDS as i32);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, ROUNDS as i32);

    for (order_id, user) in orders {
        // Due one at a time, so the ticker of each round sees only this round's order.
        make_due(&mut conn, order_id).await;
        let barrier = Arc::new(Barrier::new(3));
        let owner = Viewer {
            user_id: user,
            is_admin: false,
        };
        let cancel_task = {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conn = pool.acquire().await.unwrap();
                cancel::cancel(&mut conn, order_id, owner).await.is_ok()
            })
        };
        let expire_task = {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conn = pool.acquire().await.unwrap();
                cancel::expire_one(&mut conn, order_id).await.unwrap() == Expiry::Expired
            })
        };
        let ticker_task = {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conn = pool.acquire().await.unwrap();
                cancel::expire_due(&mut conn, chrono::Utc::now())
                    .await
                    .unwrap()
            })
        };
        let cancelled = cancel_task.await.unwrap();
        let expired = expire_task.await.unwrap();
        let ticked = ticker_task.await.unwrap();
        assert_eq!(
            usize::from(cancelled) + usize::from(expired) + ticked as usize,
            1,
            "exactly one of cancel, expiry job and ticker may win"
        );
    }
    assert_eq!(stock_of(&mut conn, coffee).await, 1000);
    assert_eq!(coupon_uses(&mut conn, ten_percent).await, 0);
    let released: i64 =
        sqlx::query_scalar("SELECT count(*) FROM coupon_redemptions WHERE released_at IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(released, ROUNDS as i64);
}
