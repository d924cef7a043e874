//! Categories: a tree through `parent_id` (cycles refused by the database), hard-deleted
//! only when empty.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::slug;
use crate::{Error, Result, error::FieldErrors, error::ResultExt};

/// The contract's `category`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub parent_id: Option<Uuid>,
}

/// The body of `POST /api/categories` and `PUT /api/categories/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CategoryInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub parent_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryPage {
    pub items: Vec<Category>,
    pub total: i64,
}

impl CategoryInput {
    fn validate(self) -> Result<Self> {
        let mut errors = FieldErrors::new();
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errors.add("name", "must not be empty");
        } else if name.chars().count() > 120 {
            errors.add("name", "must be at most 120 characters");
        }
        let description = self.description.trim().to_owned();
        if description.chars().count() > 2000 {
            errors.add("description", "must be at most 2000 characters");
        }
        errors.into_result()?;
        Ok(Self {
            name,
            description,
            parent_id: self.parent_id,
        })
    }
}

/// Constraint violations a create or update can hit.
fn write_errors<T>(result: Result<T, sqlx::Error>) -> Result<T> {
    result
        .on_constraint("categories_parent_id_fkey", || {
            Error::invalid("parent_id", "unknown category")
        })
        .on_constraint("categories_not_own_parent", || {
            Error::invalid("parent_id", "a category cannot be its own parent")
        })
        .on_constraint("categories_no_cycle", || {
            Error::invalid("parent_id", "would make the category its own ancestor")
        })
}

impl slug::Slugged for Category {
    const LOCK_KEY: &'static str = "categories.slug";
    const FALLBACK: &'static str = "categoria";

    async fn slugs_like(
        conn: &mut PgConnection,
        base: &str,
        exclude: Option<Uuid>,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT slug FROM categories
               WHERE (slug = $1 OR slug LIKE $1 || '-%') AND ($2::uuid IS NULL OR id <> $2)"#,
            base,
            exclude,
        )
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn lock_name_and_slug(
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<Option<(String, String)>> {
        Ok(sqlx::query!(
            "SELECT name, slug FROM categories WHERE id = $1 FOR UPDATE",
            id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| (row.name, row.slug)))
    }
}

pub async fn create(conn: &mut PgConnection, input: CategoryInput) -> Result<Category> {
    let c = input.validate()?;
    let mut tx = conn.begin().await?;
    let slug = slug::allocate::<Category>(&mut tx, &c.name, None).await?;
    let category = write_errors(
        sqlx::query_as!(
            Category,
            "INSERT INTO categories (id, name, slug, description, parent_id)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id, name, slug, description, parent_id",
            Uuid::now_v7(),
            c.name,
            slug,
            c.description,
            c.parent_id,
        )
        .fetch_one(&mut *tx)
        .await,
    )?;
    tx.commit().await?;
    Ok(category)
}

/// Replaces a category's fields; the slug follows a changed name.
pub async fn update(conn: &mut PgConnection, id: Uuid, input: CategoryInput) -> Result<Category> {
    let c = input.validate()?;
    let mut tx = conn.begin().await?;
    let slug = slug::for_update::<Category>(&mut tx, id, &c.name).await?;
    let category = write_errors(
        sqlx::query_as!(
            Category,
            "UPDATE categories SET name = $2, slug = $3, description = $4, parent_id = $5,
                 updated_at = now()
             WHERE id = $1
             RETURNING id, name, slug, description, parent_id",
            id,
            c.name,
            slug,
            c.description,
            c.parent_id,
        )
        .fetch_one(&mut *tx)
        .await,
    )?;
    tx.commit().await?;
    Ok(category)
}

/// Deletes a category that holds no live products and no subcategories (`Conflict`
/// otherwise). Soft-deleted products that pointed at it lose their category.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let mut tx = conn.begin().await?;
    let has_products = sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM products WHERE category_id = $1 AND deleted_at IS NULL
           ) AS "has!""#,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    if has_products {
        return Err(Error::conflict("the category still has products"));
    }
    sqlx::query!(
        "UPDATE products SET category_id = NULL WHERE category_id = $1 AND deleted_at IS NOT NULL",
        id
    )
    .execute(&mut *tx)
    .await?;
    let deleted = sqlx::query!("DELETE FROM categories WHERE id = $1", id)
        .execute(&mut *tx)
        .await
        .on_constraint("categories_parent_id_fkey", || {
            Error::conflict("the category has subcategories")
        })
        // A product added meanwhile.
        .on_constraint("products_category_id_fkey", || {
            Error::conflict("the category still has products")
        })?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Category> {
    sqlx::query_as!(
        Category,
        "SELECT id, name, slug, description, parent_id FROM categories WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

pub async fn exists(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM categories WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(conn)
    .await?)
}

/// Categories by name (then id), a page at a time.
pub async fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<CategoryPage> {
    let items = sqlx::query_as!(
        Category,
        "SELECT id, name, slug, description, parent_id FROM categories
         ORDER BY lower(immutable_unaccent(name)), id
         LIMIT $1 OFFSET $2",
        limit,
        offset
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM categories"#)
        .fetch_one(&mut *conn)
        .await?;
    Ok(CategoryPage { items, total })
}
