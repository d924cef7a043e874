//! Rows and values that the unit tests of several modules start from.

use sqlx::PgConnection;
use uuid::Uuid;

pub(crate) mod invoices;

/// An account straight in the table (no password hashing: tests need only the row).
pub(crate) async fn insert_user(conn: &mut PgConnection, cpf: Option<&str>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, name, email, cpf, password_hash) VALUES ($1, 'Cliente', $2, $3, '!')",
    )
    .bind(id)
    .bind(format!("{}@example.com", id.simple()))
    .bind(cpf)
    .execute(conn)
    .await
    .unwrap();
    id
}

/// A live product with the given price and stock, its SKU, name and slug made unique by its id.
pub(crate) async fn product(conn: &mut PgConnection, price_cents: i64, stock: i32) -> Uuid {
    let id = Uuid::now_v7();
    let tag = id.simple().to_string();
    sqlx::query(
        "INSERT INTO products (id, sku, name, slug, price_cents, stock, weight_grams,
                               height_cm, width_cm, length_cm, ncm)
         VALUES ($1, $2, $3, $4, $5, $6, 300, 5, 12, 18, '09012100')",
    )
    .bind(id)
    .bind(format!("SKU-{}", &tag[20..]))
    .bind(format!("Café {}", &tag[26..]))
    .bind(format!("cafe-{tag}"))
    .bind(price_cents)
    .bind(stock)
    .execute(conn)
    .await
    .unwrap();
    id
}
