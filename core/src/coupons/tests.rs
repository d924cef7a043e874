use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::sync::Barrier;

use super::*;
use crate::test_support::insert_user;

fn coupon(kind: CouponKind, value: i64) -> Coupon {
    Coupon {
        id: Uuid::now_v7(),
        code: "TEST".into(),
        kind,
        value,
        min_subtotal_cents: 0,
        max_uses: None,
        max_uses_per_user: None,
        uses: 0,
        starts_at: None,
        ends_at: None,
        active: true,
    }
}

#[test]
fn percent_discounts_round_half_up_and_fixed_ones_never_exceed_the_subtotal() {
    assert_eq!(discount_cents(CouponKind::Percent, 10, 12_345), 1_235);
    assert_eq!(discount_cents(CouponKind::Percent, 100, 999), 999);
    assert_eq!(discount_cents(CouponKind::Fixed, 1_500, 1_000), 1_000);
    assert_eq!(discount_cents(CouponKind::Fixed, 1_500, 5_000), 1_500);
    assert_eq!(discount_cents(CouponKind::Fixed, 1_500, 0), 0);
    assert_eq!(discount_cents(CouponKind::Percent, 100, i64::MAX), i64::MAX);
}

#[test]
fn rules_are_checked_in_order() {
    let now = Utc::now();
    let mut c = coupon(CouponKind::Percent, 10);
    assert_eq!(inapplicable_reason(&c, now, 0, 100), None);
    c.min_subtotal_cents = 5_000;
    assert_eq!(
        inapplicable_reason(&c, now, 0, 4_999),
        Some(Inapplicable::BelowMinimum {
            min_subtotal_cents: 5_000
        })
    );
    assert_eq!(inapplicable_reason(&c, now, 0, 5_000), None);
    c.max_uses_per_user = Some(1);
    assert_eq!(
        inapplicable_reason(&c, now, 1, 5_000),
        Some(Inapplicable::UserLimitReached)
    );
    c.max_uses = Some(3);
    c.uses = 3;
    assert_eq!(
        inapplicable_reason(&c, now, 0, 5_000),
        Some(Inapplicable::Exhausted)
    );
    c.ends_at = Some(now);
    assert_eq!(
        inapplicable_reason(&c, now, 0, 5_000),
        Some(Inapplicable::Expired)
    );
    c.starts_at = Some(now + ChronoDuration::hours(1));
    c.ends_at = Some(now + ChronoDuration::hours(2));
    assert_eq!(
        inapplicable_reason(&c, now, 0, 5_000),
        Some(Inapplicable::NotStarted)
    );
    c.active = false;
    assert_eq!(
        inapplicable_reason(&c, now, 0, 5_000),
        Some(Inapplicable::Inactive)
    );
}

#[test]
fn codes_are_upper_cased_and_checked() {
    assert_eq!(
        normalize_code(" bemvindo10 ").as_deref(),
        Some("BEMVINDO10")
    );
    assert_eq!(normalize_code("a"), None);
    assert_eq!(normalize_code("com espaço"), None);
}

async fn users(pool: &PgPool, n: usize) -> Vec<Uuid> {
    let mut conn = pool.acquire().await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(insert_user(&mut conn, None).await);
    }
    ids
}

fn input(code: &str, max_uses: Option<i64>, max_uses_per_user: Option<i64>) -> CouponInput {
    CouponInput {
        code: code.into(),
        kind: "percent".into(),
        value: 10,
        min_subtotal_cents: 0,
        max_uses,
        max_uses_per_user,
        starts_at: None,
        ends_at: None,
        active: true,
    }
}

/// A pool wide enough for real contention (the test pool allows only a few connections).
async fn wide_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

/// Runs `redeem` in `n` concurrent transactions released together; returns how many committed.
async fn redeem_concurrently(pool: &PgPool, coupon_id: Uuid, users: Vec<Uuid>) -> usize {
    let barrier = Arc::new(Barrier::new(users.len()));
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user_id| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                // Released together; more transactions than connections queue for one.
                barrier.wait().await;
                let mut tx = pool.begin().await.unwrap();
                match redeem(&mut tx, coupon_id, user_id, Uuid::now_v7()).await {
                    Ok(()) => {
                        tx.commit().await.unwrap();
                        true
                    }
                    Err(Error::Invalid(_)) => false,
                    Err(other) => panic!("unexpected error: {other:?}"),
                }
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        if task.await.unwrap() {
            committed += 1;
        }
    }
    committed
}

#[sqlx::test(migrations = false)]
async fn fifty_concurrent_redemptions_of_a_single_use_coupon_let_exactly_one_through(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coupon = create(&mut conn, input("ONCE", Some(1), None))
        .await
        .unwrap();
    drop(conn);
    let wide = wide_pool(&pool).await;
    // 50 transactions; the 20-connection pool keeps up to 20 of them open at once.
    let customers = users(&pool, 50).await;
    let committed = redeem_concurrently(&wide, coupon.id, customers).await;
    wide.close().await;
    assert_eq!(committed, 1);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(get(&mut conn, coupon.id).await.unwrap().uses, 1);
    let redemptions = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM coupon_redemptions WHERE coupon_id = $1"#,
        coupon.id
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(redemptions, 1);
}

#[sqlx::test(migrations = false)]
async fn a_users_concurrent_redemptions_respect_the_per_user_limit(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coupon = create(&mut conn, input("TWICE", None, Some(2)))
        .await
        .unwrap();
    drop(conn);
    let customer = users(&pool, 1).await[0];
    let wide = wide_pool(&pool).await;
    let committed = redeem_concurrently(&wide, coupon.id, vec![customer; 12]).await;
    wide.close().await;
    assert_eq!(committed, 2);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(
        uses_by_user(&mut conn, coupon.id, customer).await.unwrap(),
        2
    );
    // Another user is not affected.
    let other = insert_user(&mut conn, None).await;
    redeem(&mut conn, coupon.id, other, Uuid::now_v7())
        .await
        .unwrap();
    assert_eq!(get(&mut conn, coupon.id).await.unwrap().uses, 3);
}

#[sqlx::test(migrations = false)]
async fn release_gives_a_use_back_exactly_once(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coupon = create(&mut conn, input("BACK", Some(1), Some(1)))
        .await
        .unwrap();
    let (customer, other, order) = (
        insert_user(&mut conn, None).await,
        insert_user(&mut conn, None).await,
        Uuid::now_v7(),
    );
    redeem(&mut conn, coupon.id, customer, order).await.unwrap();
    let Err(Error::Invalid(errors)) = redeem(&mut conn, coupon.id, other, Uuid::now_v7()).await
    else {
        panic!("a used-up coupon must be refused");
    };
    assert!(errors.0["coupon"][0].contains("used up"));

    assert!(release(&mut conn, order).await.unwrap());
    assert!(!release(&mut conn, order).await.unwrap());
    assert!(!release(&mut conn, Uuid::now_v7()).await.unwrap());
    assert_eq!(get(&mut conn, coupon.id).await.unwrap().uses, 0);
    assert_eq!(
        uses_by_user(&mut conn, coupon.id, customer).await.unwrap(),
        0
    );
    // The use is available again, to the same user too.
    redeem(&mut conn, coupon.id, customer, Uuid::now_v7())
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn concurrent_releases_of_one_order_give_back_one_use(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let coupon = create(&mut conn, input("RACE", Some(5), None))
        .await
        .unwrap();
    let order = Uuid::now_v7();
    let (first, second) = (
        insert_user(&mut conn, None).await,
        insert_user(&mut conn, None).await,
    );
    redeem(&mut conn, coupon.id, first, order).await.unwrap();
    redeem(&mut conn, coupon.id, second, Uuid::now_v7())
        .await
        .unwrap();
    drop(conn);
    let wide = wide_pool(&pool).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let wide = wide.clone();
            tokio::spawn(async move {
                let mut tx = wide.begin().await.unwrap();
                let released = release(&mut tx, order).await.unwrap();
                tx.commit().await.unwrap();
                released
            })
        })
        .collect();
    let mut released = 0;
    for task in tasks {
        if task.await.unwrap() {
            released += 1;
        }
    }
    wide.close().await;
    assert_eq!(released, 1);
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(get(&mut conn, coupon.id).await.unwrap().uses, 1);
}

#[sqlx::test(migrations = false)]
async fn redeem_refuses_inactive_expired_and_deleted_coupons_and_a_second_coupon_per_order(
    pool: PgPool,
) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut inactive = input("OFF", None, None);
    inactive.active = false;
    let inactive = create(&mut conn, inactive).await.unwrap();
    let mut expired = input("OLD", None, None);
    expired.starts_at = Some(Utc::now() - ChronoDuration::days(2));
    expired.ends_at = Some(Utc::now() - ChronoDuration::days(1));
    let expired = create(&mut conn, expired).await.unwrap();
    let deleted = create(&mut conn, input("GONE", None, None)).await.unwrap();
    soft_delete(&mut conn, deleted.id).await.unwrap();

    let customer = insert_user(&mut conn, None).await;
    for (id, expected) in [
        (inactive.id, "not active"),
        (expired.id, "expired"),
        (deleted.id, "unknown"),
    ] {
        let Err(Error::Invalid(errors)) = redeem(&mut conn, id, customer, Uuid::now_v7()).await
        else {
            panic!("expected a refusal for {expected}");
        };
        assert!(errors.0["coupon"][0].contains(expected), "{errors:?}");
    }

    let ok = create(&mut conn, input("OK", None, None)).await.unwrap();
    let order = Uuid::now_v7();
    redeem(&mut conn, ok.id, customer, order).await.unwrap();
    assert!(matches!(
        redeem(&mut conn, ok.id, customer, order).await,
        Err(Error::Conflict(_))
    ));
    // The refused second redemption counted nothing.
    assert_eq!(get(&mut conn, ok.id).await.unwrap().uses, 1);
}

#[sqlx::test(migrations = false)]
async fn codes_are_unique_case_insensitively_and_limits_cannot_drop_below_uses(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let first = create(&mut conn, input("Promo", Some(3), None))
        .await
        .unwrap();
    assert_eq!(first.code, "PROMO");
    assert!(matches!(
        create(&mut conn, input("promo", None, None)).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        find_by_code(&mut conn, "pRoMo")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(first.id)
    );
    let customer = insert_user(&mut conn, None).await;
    for _ in 0..2 {
        redeem(&mut conn, first.id, customer, Uuid::now_v7())
            .await
            .unwrap();
    }
    let Err(Error::Invalid(errors)) =
        update(&mut conn, first.id, input("PROMO", Some(1), None)).await
    else {
        panic!("max_uses below uses must be refused");
    };
    assert!(errors.0.contains_key("max_uses"));
}
