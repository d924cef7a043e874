//! Payment deadlines: the `expire_order` job and the `expire_due_orders` sweep cancel unpaid
//! orders through the running worker; paid ones are left alone.

use std::{sync::Arc, time::Duration};

use cart_core::{
    jobs::expire_order::{ExpireDueOrders, ExpireOrder},
    orders::{
        Actor, OrderState, OrderStatus, PaymentStatus, ShippingAddress,
        create::{self, ChosenShipping, NewOrder, NewOrderItem},
        status,
    },
};
use cart_queue::{Handler, JobError, Run};
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{self, RecordingMailer};

/// An unpaid order whose deadline is `deadline_in` from now (negative: already past).
pub(crate) async fn unpaid_order(pool: &PgPool, deadline_in: chrono::Duration) -> Uuid {
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, name, email, password_hash) VALUES ($1, 'Ana', $2, '!')")
        .bind(user)
        .bind(format!("{}@example.com", user.simple()))
        .execute(pool)
        .await
        .unwrap();
    let product = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO products (id, sku, name, slug, price_cents, stock, weight_grams,
                               height_cm, width_cm, length_cm, ncm)
         VALUES ($1, $2, 'Café', $3, 2590, 10, 300, 5, 12, 18, '09012100')",
    )
    .bind(product)
    .bind(format!("SKU-{}", &product.simple().to_string()[20..]))
    .bind(format!("cafe-{}", product.simple()))
    .execute(pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    create::insert(
        &mut conn,
        &NewOrder {
            user_id: user,
            items: vec![NewOrderItem {
                product_id: product,
                sku: "CAFE".into(),
                name: "Café".into(),
                unit_price_cents: 2590,
                quantity: 1,
                ncm: None,
                weight_grams: None,
            }],
            coupon: None,
            shipping: ChosenShipping {
                carrier: "Correios".into(),
                service: "PAC".into(),
                price_cents: 1850,
                days: 7,
                address: ShippingAddress {
                    label: None,
                    recipient: "Ana".into(),
                    cep: "01310100".into(),
                    street: "Avenida Paulista".into(),
                    number: "1".into(),
                    complement: None,
                    district: "Bela Vista".into(),
                    city: "São Paulo".into(),
                    state: "SP".into(),
                },
            },
            recipient_cpf: "52998224725".into(),
            expires_at: Utc::now() + deadline_in,
        },
    )
    .await
    .unwrap()
    .id
}

async fn state_of(pool: &PgPool, order_id: Uuid) -> (String, String) {
    sqlx::query_as("SELECT status, payment_status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn run() -> Run {
    Run {
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 25,
        request_id: "test".into(),
    }
}

#[sqlx::test(migrations = false)]
async fn the_running_worker_expires_an_order_at_its_deadline(pool: PgPool) {
    helpers::setup(&pool).await;
    let due = unpaid_order(&pool, chrono::Duration::seconds(-1)).await;
    let runtime = helpers::start(&pool);
    let job = helpers::enqueue(&pool, &ExpireOrder { order_id: due }).await;
    helpers::wait_for_status(&pool, &job, "Done", Duration::from_secs(20)).await;
    assert_eq!(
        state_of(&pool, due).await,
        ("cancelled".into(), "expired".into())
    );
    runtime.shutdown().await;
}

#[sqlx::test(migrations = false)]
async fn an_early_run_is_retried_and_a_paid_order_is_left_alone(pool: PgPool) {
    helpers::setup(&pool).await;
    let deps = helpers::deps(&pool, Arc::new(RecordingMailer::default()));
    let later = unpaid_order(&pool, chrono::Duration::minutes(30)).await;
    let err = ExpireOrder { order_id: later }
        .run(&deps, &run())
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(matches!(err, JobError::Retry(_)));

    let paid = unpaid_order(&pool, chrono::Duration::seconds(-1)).await;
    let mut conn = pool.acquire().await.unwrap();
    status::transition(
        &mut conn,
        paid,
        OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
        Actor::System,
        "paid",
    )
    .await
    .unwrap();
    ExpireOrder { order_id: paid }
        .run(&deps, &run())
        .await
        .unwrap();
    assert_eq!(
        state_of(&pool, paid).await,
        ("processing".into(), "paid".into())
    );
    // An order that no longer exists is nothing to do.
    ExpireOrder {
        order_id: Uuid::now_v7(),
    }
    .run(&deps, &run())
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_sweep_expires_every_due_order(pool: PgPool) {
    helpers::setup(&pool).await;
    let deps = helpers::deps(&pool, Arc::new(RecordingMailer::default()));
    let due = [
        unpaid_order(&pool, chrono::Duration::seconds(-5)).await,
        unpaid_order(&pool, chrono::Duration::seconds(-1)).await,
    ];
    let later = unpaid_order(&pool, chrono::Duration::minutes(30)).await;
    ExpireDueOrders { tick: Utc::now() }
        .run(&deps, &run())
        .await
        .unwrap();
    for id in due {
        assert_eq!(state_of(&pool, id).await.0, "cancelled");
    }
    assert_eq!(state_of(&pool, later).await.0, "pending_payment");
}
