use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

use super::{CategoryInput, ProductInput, categories, products, stock};
use crate::Error;

fn product_input(sku: &str, stock: i64) -> ProductInput {
    ProductInput {
        sku: sku.into(),
        name: format!("Produto {sku}"),
        description: String::new(),
        price_cents: 1000,
        stock: Some(stock),
        category_id: None,
        featured: false,
        weight_grams: 100,
        height_cm: 1,
        width_cm: 1,
        length_cm: 1,
        ncm: "09012100".into(),
        images: vec![],
    }
}

#[sqlx::test(migrations = false)]
async fn take_only_takes_what_remains_and_put_back_restores(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = products::create(&mut conn, product_input("T-1", 3))
        .await
        .unwrap()
        .id;
    assert!(stock::take(&mut conn, id, 2).await.unwrap());
    assert!(!stock::take(&mut conn, id, 2).await.unwrap());
    assert_eq!(products::get(&mut conn, id).await.unwrap().stock, 1);
    stock::put_back(&mut conn, id, 2).await.unwrap();
    assert_eq!(products::get(&mut conn, id).await.unwrap().stock, 3);
    assert!(matches!(
        stock::take(&mut conn, id, 0).await,
        Err(Error::Invalid(_))
    ));
    assert!(!stock::take(&mut conn, Uuid::now_v7(), 1).await.unwrap());

    products::soft_delete(&mut conn, id).await.unwrap();
    assert!(!stock::take(&mut conn, id, 1).await.unwrap());
    // Putting back stock of an order for a product deleted since still works.
    stock::put_back(&mut conn, id, 1).await.unwrap();
    let stock: i32 = sqlx::query_scalar!("SELECT stock FROM products WHERE id = $1", id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(stock, 4);
}

#[sqlx::test(migrations = false)]
async fn the_database_refuses_negative_stock_even_without_the_conditional_update(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let id = products::create(&mut conn, product_input("T-2", 1))
        .await
        .unwrap()
        .id;
    let err = sqlx::query!("UPDATE products SET stock = stock - 2 WHERE id = $1", id)
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("products_stock_not_negative")
    );
}

#[sqlx::test(migrations = false)]
async fn two_concurrent_moves_cannot_make_a_cycle(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let input = |name: &str| CategoryInput {
        name: name.into(),
        description: String::new(),
        parent_id: None,
    };
    let a = categories::create(&mut conn, input("A")).await.unwrap();
    let b = categories::create(&mut conn, input("B")).await.unwrap();
    drop(conn);
    let wide = PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    // Each move holds its transaction open a moment, so the two overlap. Names stay the same,
    // so no slug is allocated (that takes a lock of its own).
    let mv = |child: Uuid, name: &'static str, parent: Uuid| {
        let wide = wide.clone();
        tokio::spawn(async move {
            let mut tx = wide.begin().await.unwrap();
            let moved = categories::update(
                &mut tx,
                child,
                CategoryInput {
                    name: name.into(),
                    description: String::new(),
                    parent_id: Some(parent),
                },
            )
            .await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            match moved {
                Ok(_) => {
                    tx.commit().await.unwrap();
                    true
                }
                Err(Error::Invalid(_)) => false,
                Err(other) => panic!("unexpected {other:?}"),
            }
        })
    };
    let (first, second) = (mv(a.id, "A", b.id), mv(b.id, "B", a.id));
    let outcomes = [first.await.unwrap(), second.await.unwrap()];
    wide.close().await;
    assert_eq!(outcomes.iter().filter(|moved| **moved).count(), 1);
}
