//! Tests of the order model: its settings, and (on the database) writing, reading, the state
//! machine and its events.

use chrono::{Duration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    OrdersConfig,
    create::{self, AppliedCoupon, ChosenShipping, NewOrder, NewOrderItem},
    lifecycle,
    model::ShippingAddress,
    read::{self, PageRequest, Viewer},
    status::{self, Actor, OrderState, OrderStatus, PaymentStatus},
};
use crate::{
    Error,
    mail::templates::{Branding, Templates},
    test_support::insert_user,
};

fn address() -> ShippingAddress {
    ShippingAddress {
        label: Some("Casa".into()),
        recipient: "Maria Silva".into(),
        cep: "01310100".into(),
        street: "Avenida Paulista".into(),
        number: "1000".into(),
        complement: None,
        district: "Bela Vista".into(),
        city: "São Paulo".into(),
        state: "SP".into(),
    }
}

/// An order of two catalog products with a coupon, not written yet.
async fn new_order(conn: &mut PgConnection, user_id: Uuid) -> NewOrder {
    let coffee = crate::test_support::product(conn, 2590, 10).await;
    let mug = crate::test_support::product(conn, 1000, 10).await;
    let coupon = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO coupons (id, code, kind, value) VALUES ($1, $2, 'percent', 10)
         ON CONFLICT DO NOTHING",
    )
    .bind(coupon)
    .bind(format!("BEMVINDO{}", &coupon.simple().to_string()[24..]).to_uppercase())
    .execute(&mut *conn)
    .await
    .unwrap();
    NewOrder {
        user_id,
        items: vec![
            NewOrderItem {
                product_id: coffee,
                sku: "CAFE-1".into(),
                name: "Café".into(),
                unit_price_cents: 2590,
                quantity: 2,
                ncm: Some("09012100".into()),
                weight_grams: Some(500),
            },
            NewOrderItem {
                product_id: mug,
                sku: "XICARA".into(),
                name: "Xícara".into(),
                unit_price_cents: 1000,
                quantity: 1,
                ncm: None,
                weight_grams: None,
            },
        ],
        coupon: Some(AppliedCoupon {
            id: coupon,
            code: "BEMVINDO".into(),
            discount_cents: 618,
        }),
        shipping: ChosenShipping {
            carrier: "Correios".into(),
            service: "PAC".into(),
            price_cents: 1850,
            days: 7,
            address: address(),
        },
        recipient_cpf: "52998224725".into(),
        expires_at: Utc::now() + Duration::minutes(30),
    }
}

async fn place(conn: &mut PgConnection, user_id: Uuid) -> Uuid {
    let order = new_order(conn, user_id).await;
    create::insert(conn, &order).await.unwrap().id
}

async fn place_for_new_user(conn: &mut PgConnection) -> Uuid {
    let user = insert_user(conn, None).await;
    place(conn, user).await
}

async fn events(conn: &mut PgConnection, order_id: Uuid) -> Vec<(Option<String>, String, String)> {
    sqlx::query_as(
        "SELECT from_status, to_status, actor FROM order_events WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn pay(conn: &mut PgConnection, order_id: Uuid) {
    status::transition(
        conn,
        order_id,
        OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
        Actor::System,
        "paid",
    )
    .await
    .unwrap();
}

const PAGE: PageRequest = PageRequest {
    limit: 20,
    offset: 0,
};

#[sqlx::test(migrations = false)]
async fn a_new_order_keeps_its_snapshots_and_totals(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let user = insert_user(&mut conn, None).await;
    let order = new_order(&mut conn, user).await;
    let created = create::insert(&mut conn, &order).await.unwrap();
    let order = read::get(&mut conn, created.id).await.unwrap();
    // Checkout answers with the order as written, without reading it back: it must be the
    // very order a read returns.
    assert_eq!(created.order, order);

    assert_eq!(order.number, created.number);
    assert!(order.number.starts_with("CART-"));
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.payment_status, PaymentStatus::PendingPayment);
    assert_eq!(order.subtotal_cents, 2 * 2590 + 1000);
    assert_eq!(order.discount_cents, 618);
    assert_eq!(order.shipping_cents, 1850);
    assert_eq!(order.total_cents, 6180 - 618 + 1850);
    assert_eq!(created.total_cents, order.total_cents);
    assert_eq!(order.coupon_code.as_deref(), Some("BEMVINDO"));
    assert_eq!(order.shipping.address, address());
    assert_eq!(order.shipping.service, "PAC");
    assert_eq!(order.items.len(), 2);
    let cafe = order.items.iter().find(|i| i.sku == "CAFE-1").unwrap();
    assert_eq!(cafe.line_total_cents, 5180);
    assert_eq!(order.tracking_number, None);

    let logged = events(&mut conn, order.id).await;
    assert_eq!(
        logged,
        vec![(None, "pending_payment".into(), user.to_string())]
    );
}

#[sqlx::test(migrations = false)]
async fn the_database_refuses_inconsistent_totals_and_states(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = place_for_new_user(&mut conn).await;
    let bad_total = sqlx::query("UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        bad_total.to_string().contains("orders_total_matches"),
        "{bad_total}"
    );
    let bad_state = sqlx::query("UPDATE orders SET status = 'processing' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(
        bad_state
            .to_string()
            .contains("orders_status_payment_consistent"),
        "{bad_state}"
    );
}

#[sqlx::test(migrations = false)]
async fn owners_and_admins_see_an_order_and_others_get_not_found(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let owner = insert_user(&mut conn, None).await;
    let id = place(&mut conn, owner).await;
    let as_owner = Viewer {
        user_id: owner,
        is_admin: false,
    };
    let as_admin = Viewer {
        user_id: Uuid::now_v7(),
        is_admin: true,
    };
    let as_stranger = Viewer {
        user_id: Uuid::now_v7(),
        is_admin: false,
    };
    read::get_visible(&mut conn, id, as_owner).await.unwrap();
    read::get_visible(&mut conn, id, as_admin).await.unwrap();
    assert!(matches!(
        read::get_visible(&mut conn, id, as_stranger).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        read::get_visible(&mut conn, Uuid::now_v7(), as_admin).await,
        Err(Error::NotFound)
    ));
}

#[sqlx::test(migrations = false)]
async fn lists_are_newest_first_paginated_and_filtered(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let user = insert_user(&mut conn, None).await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(place(&mut conn, user).await);
    }
    let other = place_for_new_user(&mut conn).await;
    pay(&mut conn, mine[1]).await;

    let (first, total) = read::list_for_user(
        &mut conn,
        user,
        None,
        PageRequest {
            limit: 2,
            offset: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        first.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![mine[4], mine[3]]
    );
    let (last, _) = read::list_for_user(
        &mut conn,
        user,
        None,
        PageRequest {
            limit: 2,
            offset: 4,
        },
    )
    .await
    .unwrap();
    assert_eq!(last.iter().map(|o| o.id).collect::<Vec<_>>(), vec![mine[0]]);
    assert!(last[0].items.len() == 2);

    let (processing, total) =
        read::list_for_user(&mut conn, user, Some(OrderStatus::Processing), PAGE)
            .await
            .unwrap();
    assert_eq!(total, 1);
    assert_eq!(processing[0].id, mine[1]);

    let (everything, total) = read::list_all(&mut conn, None, PAGE).await.unwrap();
    assert_eq!(total, 6);
    assert_eq!(everything[0].id, other);
    let (pending, total) = read::list_all(&mut conn, Some(OrderStatus::PendingPayment), PAGE)
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert!(
        pending
            .iter()
            .all(|o| o.status == OrderStatus::PendingPayment)
    );
}

#[sqlx::test(migrations = false)]
async fn public_tracking_finds_an_order_by_number_in_any_case(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = place_for_new_user(&mut conn).await;
    let order = read::get(&mut conn, id).await.unwrap();
    let tracking = read::track(&mut conn, &order.number.to_lowercase())
        .await
        .unwrap();
    assert_eq!(tracking.number, order.number);
    assert_eq!(tracking.status, OrderStatus::PendingPayment);
    assert_eq!(tracking.carrier.as_deref(), Some("Correios"));
    assert_eq!(tracking.tracking_number, None);
    assert!(matches!(
        read::track(&mut conn, "CART-00000000").await,
        Err(Error::NotFound)
    ));
}

#[sqlx::test(migrations = false)]
async fn an_illegal_transition_is_a_conflict_and_leaves_no_event(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = place_for_new_user(&mut conn).await;
    let err = status::transition(
        &mut conn,
        id,
        OrderState::new(OrderStatus::Shipped, PaymentStatus::Paid),
        Actor::System,
        "skip ahead",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(events(&mut conn, id).await.len(), 1);
    assert!(matches!(
        status::transition(
            &mut conn,
            Uuid::now_v7(),
            OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
            Actor::System,
            "",
        )
        .await,
        Err(Error::NotFound)
    ));
}

#[sqlx::test(migrations = false)]
async fn shipping_and_delivery_follow_payment_and_are_logged(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let admin = Actor::User(Uuid::now_v7());
    let templates = Templates::new(Branding::new("Loja", "https://loja.example")).unwrap();
    let id = place_for_new_user(&mut conn).await;

    // Unpaid orders do not ship; delivery needs shipping first.
    let unpaid = lifecycle::mark_shipped(&mut conn, &templates, id, "BR123", "Correios", admin)
        .await
        .unwrap_err();
    assert!(matches!(unpaid, Error::Conflict(_)), "{unpaid:?}");
    pay(&mut conn, id).await;
    assert!(matches!(
        lifecycle::mark_delivered(&mut conn, id, admin).await,
        Err(Error::Conflict(_))
    ));
    let invalid = lifecycle::mark_shipped(&mut conn, &templates, id, "  ", "", admin)
        .await
        .unwrap_err();
    let Error::Invalid(fields) = invalid else {
        panic!("expected 422, got {invalid:?}")
    };
    assert!(fields.0.contains_key("tracking_number") && fields.0.contains_key("carrier"));

    let shipped = lifecycle::mark_shipped(
        &mut conn,
        &templates,
        id,
        " BR123456789 ",
        "Correios",
        admin,
    )
    .await
    .unwrap();
    assert_eq!(shipped.status, OrderStatus::Shipped);
    assert_eq!(shipped.tracking_number.as_deref(), Some("BR123456789"));
    assert_eq!(shipped.carrier.as_deref(), Some("Correios"));
    assert!(matches!(
        lifecycle::mark_shipped(&mut conn, &templates, id, "BR9", "Correios", admin).await,
        Err(Error::Conflict(_))
    ));
    let delivered = lifecycle::mark_delivered(&mut conn, id, admin)
        .await
        .unwrap();
    assert_eq!(delivered.status, OrderStatus::Delivered);

    let logged: Vec<String> = events(&mut conn, id)
        .await
        .into_iter()
        .map(|(_, to, _)| to)
        .collect();
    assert_eq!(
        logged,
        ["pending_payment", "processing", "shipped", "delivered"]
    );
}

#[sqlx::test(migrations = false)]
async fn events_carry_the_request_id(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = place_for_new_user(&mut conn).await;
    crate::request_id::scope("req-42".into(), pay(&mut conn, id)).await;
    let request_ids: Vec<Option<String>> =
        sqlx::query_scalar("SELECT request_id FROM order_events WHERE order_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(request_ids, vec![None, Some("req-42".into())]);
}

#[sqlx::test(migrations = false)]
async fn concurrent_transitions_of_one_order_apply_once(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let id = {
        let mut conn = pool.acquire().await.unwrap();
        place_for_new_user(&mut conn).await
    };
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (pool, barrier) = (pool.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            // The test pool has only a few connections: wait first, then connect.
            barrier.wait().await;
            let mut tx = pool.begin().await.unwrap();
            let result = status::transition(
                &mut tx,
                id,
                OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
                Actor::System,
                "paid",
            )
            .await;
            tx.commit().await.unwrap();
            result.is_ok()
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += usize::from(task.await.unwrap());
    }
    assert_eq!(applied, 1);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(events(&mut conn, id).await.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn the_lgpd_export_lists_the_users_orders_with_items_and_history(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let user = insert_user(&mut conn, Some("52998224725")).await;
    let id = place(&mut conn, user).await;
    pay(&mut conn, id).await;
    place_for_new_user(&mut conn).await;

    let document = crate::users::privacy::export(&mut conn, user)
        .await
        .unwrap();
    let orders = document["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    assert_eq!(order["id"], id.to_string());
    assert_eq!(order["recipient_cpf"], "52998224725");
    assert_eq!(order["shipping_address"]["cep"], "01310100");
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    let history: Vec<&str> = order["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending_payment", "processing"]);
}

#[test]
fn the_payment_window_must_cover_the_pix_expiry() {
    let config = OrdersConfig {
        payment_ttl: std::time::Duration::from_secs(1800),
        ..OrdersConfig::default()
    };
    config
        .check_covers(std::time::Duration::from_secs(1800))
        .unwrap();
    config
        .check_covers(std::time::Duration::from_secs(600))
        .unwrap();
    assert!(
        config
            .check_covers(std::time::Duration::from_secs(3600))
            .is_err()
    );
}
