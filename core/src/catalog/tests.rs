use sqlx::{PgConnection, PgPool, postgres::PgPoolOptions};
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

/// The two tables whose slugs `slug::allocate` and `slug::for_update` keep, driven through
/// their own create and update.
#[derive(Debug, Clone, Copy)]
enum SluggedTable {
    Products,
    Categories,
}

impl SluggedTable {
    async fn create(self, conn: &mut PgConnection, name: &str) -> (Uuid, String) {
        match self {
            Self::Products => {
                let product = products::create(
                    conn,
                    ProductInput {
                        name: name.into(),
                        ..product_input(&format!("SLUG-{}", Uuid::now_v7().simple()), 1)
                    },
                )
                .await
                .unwrap();
                (product.id, product.slug)
            }
            Self::Categories => {
                let category = categories::create(conn, category_input(name))
                    .await
                    .unwrap();
                (category.id, category.slug)
            }
        }
    }

    async fn rename(self, conn: &mut PgConnection, id: Uuid, name: &str) -> crate::Result<String> {
        match self {
            Self::Products => {
                let input = ProductInput {
                    name: name.into(),
                    ..product_input(&format!("SLUG-{}", id.simple()), 1)
                };
                products::update(conn, id, input).await.map(|p| p.slug)
            }
            Self::Categories => categories::update(conn, id, category_input(name))
                .await
                .map(|c| c.slug),
        }
    }
}

fn category_input(name: &str) -> CategoryInput {
    CategoryInput {
        name: name.into(),
        description: String::new(),
        parent_id: None,
    }
}

#[sqlx::test(migrations = false)]
async fn both_tables_suffix_taken_slugs_and_move_them_on_rename(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for table in [SluggedTable::Products, SluggedTable::Categories] {
        let (first, first_slug) = table.create(&mut conn, "Caneca Azul").await;
        let (second, second_slug) = table.create(&mut conn, "Caneca  azul!").await;
        let (third, third_slug) = table.create(&mut conn, "Cânéca Azul").await;
        assert_eq!(
            [
                first_slug.as_str(),
                second_slug.as_str(),
                third_slug.as_str()
            ],
            ["caneca-azul", "caneca-azul-2", "caneca-azul-3"],
            "{table:?}"
        );
        // The same name keeps the slug; another name of the same slug keeps it too (the row's
        // own slug is not taken from it).
        let same = table
            .rename(&mut conn, second, "Caneca  azul!")
            .await
            .unwrap();
        assert_eq!(same, "caneca-azul-2", "{table:?}");
        let respelled = table.rename(&mut conn, first, "CANECA AZUL").await.unwrap();
        assert_eq!(respelled, "caneca-azul", "{table:?}");
        // A new name moves it, and the old one is free again.
        let moved = table
            .rename(&mut conn, third, "Xícara Grande")
            .await
            .unwrap();
        assert_eq!(moved, "xicara-grande", "{table:?}");
        let (_, reused) = table.create(&mut conn, "Caneca Azul").await;
        assert_eq!(reused, "caneca-azul-3", "{table:?}");
        // A name without letters or digits falls back to the table's word.
        let (_, fallback) = table.create(&mut conn, "!!!").await;
        let expected = match table {
            SluggedTable::Products => "produto",
            SluggedTable::Categories => "categoria",
        };
        assert_eq!(fallback, expected, "{table:?}");
        assert!(matches!(
            table.rename(&mut conn, Uuid::now_v7(), "Outra").await,
            Err(Error::NotFound)
        ));
    }
}

#[sqlx::test(migrations = false)]
async fn concurrent_writers_of_one_name_get_distinct_slugs_in_both_tables(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let wide = PgPoolOptions::new()
        .max_connections(8)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    for table in [SluggedTable::Products, SluggedTable::Categories] {
        let writers: Vec<_> = (0..6)
            .map(|_| {
                let wide = wide.clone();
                tokio::spawn(async move {
                    let mut conn = wide.acquire().await.unwrap();
                    table.create(&mut conn, "Garrafa Térmica").await.1
                })
            })
            .collect();
        let mut slugs = Vec::new();
        for writer in writers {
            slugs.push(writer.await.unwrap());
        }
        slugs.sort();
        let mut expected: Vec<String> = (2..=6).map(|n| format!("garrafa-termica-{n}")).collect();
        expected.insert(0, "garrafa-termica".into());
        expected.sort();
        assert_eq!(slugs, expected, "{table:?}");
    }
    wide.close().await;
}
