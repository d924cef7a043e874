use std::time::Duration;

use sqlx::PgPool;

use super::*;
use crate::{
    catalog::{ProductInput, products},
    coupons::CouponInput,
    test_support::insert_user,
};

async fn product(conn: &mut PgConnection, sku: &str, price_cents: i64, stock: i64) -> Uuid {
    products::create(
        conn,
        ProductInput {
            sku: sku.into(),
            name: format!("Produto {sku}"),
            description: String::new(),
            price_cents,
            stock: Some(stock),
            category_id: None,
            featured: false,
            weight_grams: 300,
            height_cm: 10,
            width_cm: 10,
            length_cm: 10,
            ncm: "09012100".into(),
            images: vec![],
        },
    )
    .await
    .unwrap()
    .id
}

#[sqlx::test(migrations = false)]
async fn purge_abandoned_deletes_only_carts_older_than_the_ttl(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let item = product(&mut conn, "P1", 1000, 5).await;
    let (old_user, fresh_user) = (
        insert_user(&mut conn, None).await,
        insert_user(&mut conn, None).await,
    );
    add_item(&mut conn, old_user, item, 1).await.unwrap();
    add_item(&mut conn, fresh_user, item, 2).await.unwrap();
    sqlx::query!(
        "UPDATE carts SET updated_at = now() - interval '31 days' WHERE user_id = $1",
        old_user
    )
    .execute(&mut *conn)
    .await
    .unwrap();

    let purged = purge_abandoned(&mut conn, Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(get(&mut conn, old_user).await.unwrap().items.is_empty());
    assert_eq!(get(&mut conn, fresh_user).await.unwrap().items.len(), 1);
    let orphan_lines = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM cart_items WHERE user_id = $1"#,
        old_user
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(orphan_lines, 0);
}

#[sqlx::test(migrations = false)]
async fn checkout_reads_the_locked_lines_with_product_data_and_clear_empties_the_cart(
    pool: PgPool,
) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let a = product(&mut conn, "A1", 1000, 5).await;
    let b = product(&mut conn, "B1", 250, 1).await;
    let gone = product(&mut conn, "G1", 999, 5).await;
    let user = insert_user(&mut conn, None).await;
    add_item(&mut conn, user, b, 1).await.unwrap();
    add_item(&mut conn, user, a, 3).await.unwrap();
    add_item(&mut conn, user, gone, 1).await.unwrap();
    crate::coupons::create(
        &mut conn,
        CouponInput {
            code: "DEZ".into(),
            kind: "percent".into(),
            value: 10,
            min_subtotal_cents: 0,
            max_uses: None,
            max_uses_per_user: None,
            starts_at: None,
            ends_at: None,
            active: true,
        },
    )
    .await
    .unwrap();
    apply_coupon(&mut conn, user, "dez").await.unwrap();
    // The product runs short and another is deleted after being added.
    sqlx::query!("UPDATE products SET stock = 0 WHERE id = $1", b)
        .execute(&mut *conn)
        .await
        .unwrap();
    products::soft_delete(&mut conn, gone).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let locked = lock_for_checkout(&mut tx, user).await.unwrap();
    let mut ids = vec![a, b];
    ids.sort();
    assert_eq!(
        locked
            .lines
            .iter()
            .map(|l| l.product_id)
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(locked.subtotal_cents(), 3 * 1000 + 250);
    let short: Vec<Uuid> = locked.short_lines().map(|l| l.product_id).collect();
    assert_eq!(short, vec![b]);
    assert_eq!(locked.coupon.as_ref().map(|c| c.code.as_str()), Some("DEZ"));
    assert!(
        locked
            .lines
            .iter()
            .all(|l| l.ncm == "09012100" && l.weight_grams == 300)
    );
    clear(&mut tx, user).await.unwrap();
    tx.commit().await.unwrap();

    let cart = get(&mut conn, user).await.unwrap();
    assert!(cart.items.is_empty());
    assert!(cart.coupon.is_none());
    assert!(lock_for_checkout(&mut conn, user).await.unwrap().is_empty());
}

#[sqlx::test(migrations = false)]
async fn line_quantities_are_bounded_by_stock_and_totals_use_current_prices(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let item = product(&mut conn, "Q1", 1990, 3).await;
    let user = insert_user(&mut conn, None).await;
    add_item(&mut conn, user, item, 2).await.unwrap();
    assert!(matches!(
        add_item(&mut conn, user, item, 2).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        add_item(&mut conn, user, item, 0).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        add_item(&mut conn, user, Uuid::now_v7(), 1).await,
        Err(Error::NotFound)
    ));
    sqlx::query!("UPDATE products SET price_cents = 2500 WHERE id = $1", item)
        .execute(&mut *conn)
        .await
        .unwrap();
    let cart = get(&mut conn, user).await.unwrap();
    assert_eq!(cart.items[0].line_total_cents, 5000);
    assert_eq!(cart.total_cents, 5000);
}
