//! Products: validation, writes (soft delete), lists and search.
//!
//! Every read here skips soft-deleted rows; old orders keep their own snapshot of the items.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::slug;
use crate::{
    Error, Result,
    error::{FieldErrors, ResultExt},
};

/// Highest accepted price: R$ 1 billion, far beyond any shop item, low enough that
/// price × quantity sums cannot overflow.
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000;
pub const MAX_WEIGHT_GRAMS: i64 = 1_000_000;
pub const MAX_DIMENSION_CM: i64 = 1_000;
pub const MAX_IMAGES: usize = 20;
const MAX_SEARCH_LEN: usize = 200;

/// The contract's `product`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i32,
    pub category_id: Option<Uuid>,
    pub featured: bool,
    pub weight_grams: i32,
    pub height_cm: i32,
    pub width_cm: i32,
    pub length_cm: i32,
    /// Mercosur nomenclature code (8 digits) for the NF-e.
    pub ncm: String,
    pub images: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The body of `POST /api/products` and `PUT /api/products/{id}` (a full update).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ProductInput {
    /// 1–64 letters, digits, `.`, `_` or `-`; unique (case-insensitively) among live products.
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price_cents: i64,
    /// On create the initial stock (default 0). On update, leaving it out keeps the current
    /// stock, so an edit cannot undo sales made meanwhile; `PATCH …/stock` moves stock.
    pub stock: Option<i64>,
    pub category_id: Option<Uuid>,
    #[serde(default)]
    pub featured: bool,
    pub weight_grams: i64,
    pub height_cm: i64,
    pub width_cm: i64,
    pub length_cm: i64,
    /// 8 digits; the dotted form `0901.21.00` is accepted.
    pub ncm: String,
    /// Absolute `http(s)` URLs.
    #[serde(default)]
    pub images: Vec<String>,
}

/// A validated, normalised [`ProductInput`].
#[derive(Debug, Clone)]
struct ValidProduct {
    sku: String,
    name: String,
    description: String,
    price_cents: i64,
    stock: Option<i32>,
    category_id: Option<Uuid>,
    featured: bool,
    weight_grams: i32,
    height_cm: i32,
    width_cm: i32,
    length_cm: i32,
    ncm: String,
    images: Vec<String>,
}

fn in_range(errors: &mut FieldErrors, field: &str, value: i64, min: i64, max: i64) -> Option<i32> {
    if value < min {
        errors.add(field, format!("must be at least {min}"));
        None
    } else if value > max {
        errors.add(field, format!("must be at most {max}"));
        None
    } else {
        i32::try_from(value).ok()
    }
}

/// `0901.21.00` or `09012100` → `09012100`.
pub fn normalize_ncm(input: &str) -> Option<String> {
    let digits: String = input.trim().chars().filter(|c| *c != '.').collect();
    (digits.len() == 8 && digits.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

fn valid_sku(sku: &str) -> bool {
    let mut chars = sku.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && sku.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_image_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl ProductInput {
    fn validate(self) -> Result<ValidProduct> {
        let mut errors = FieldErrors::new();
        let sku = self.sku.trim().to_owned();
        if !valid_sku(&sku) {
            errors.add(
                "sku",
                "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            );
        }
        let name = self.name.trim().to_owned();
        if name.is_empty() {
            errors.add("name", "must not be empty");
        } else if name.chars().count() > 200 {
            errors.add("name", "must be at most 200 characters");
        }
        let description = self.description.trim().to_owned();
        if description.chars().count() > 20_000 {
            errors.add("description", "must be at most 20000 characters");
        }
        if self.price_cents < 1 {
            errors.add("price_cents", "must be positive");
        } else if self.price_cents > MAX_PRICE_CENTS {
            errors.add("price_cents", format!("must be at most {MAX_PRICE_CENTS}"));
        }
        let stock = self
            .stock
            .map(|s| in_range(&mut errors, "stock", s, 0, i64::from(i32::MAX)));
        let weight_grams = in_range(
            &mut errors,
            "weight_grams",
            self.weight_grams,
            1,
            MAX_WEIGHT_GRAMS,
        );
        let height_cm = in_range(
            &mut errors,
            "height_cm",
            self.height_cm,
            1,
            MAX_DIMENSION_CM,
        );
        let width_cm = in_range(&mut errors, "width_cm", self.width_cm, 1, MAX_DIMENSION_CM);
        let length_cm = in_range(
            &mut errors,
            "length_cm",
            self.length_cm,
            1,
            MAX_DIMENSION_CM,
        );
        let ncm = normalize_ncm(&self.ncm);
        if ncm.is_none() {
            errors.add("ncm", "must be 8 digits");
        }
        if self.images.len() > MAX_IMAGES {
            errors.add("images", format!("at most {MAX_IMAGES} images"));
        }
        let images: Vec<String> = self.images.iter().map(|u| u.trim().to_owned()).collect();
        if images.iter().any(|u| !valid_image_url(u)) {
            errors.add("images", "every image must be an absolute http(s) URL");
        }
        errors.into_result()?;
        match (weight_grams, height_cm, width_cm, length_cm, ncm) {
            (Some(weight_grams), Some(height_cm), Some(width_cm), Some(length_cm), Some(ncm)) => {
                Ok(ValidProduct {
                    sku,
                    name,
                    description,
                    price_cents: self.price_cents,
                    stock: stock.flatten(),
                    category_id: self.category_id,
                    featured: self.featured,
                    weight_grams,
                    height_cm,
                    width_cm,
                    length_cm,
                    ncm,
                    images,
                })
            }
            _ => Err(Error::invalid("product", "invalid values")),
        }
    }
}

fn write_errors<T>(result: Result<T, sqlx::Error>) -> Result<T> {
    result
        .on_constraint("products_sku_key", || {
            Error::conflict("a product with this SKU already exists")
        })
        .on_constraint("products_category_id_fkey", || {
            Error::invalid("category_id", "unknown category")
        })
}

impl slug::Slugged for Product {
    const LOCK_KEY: &'static str = "products.slug";
    const FALLBACK: &'static str = "produto";

    async fn slugs_like(
        conn: &mut PgConnection,
        base: &str,
        exclude: Option<Uuid>,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT slug FROM products
               WHERE deleted_at IS NULL AND (slug = $1 OR slug LIKE $1 || '-%')
                 AND ($2::uuid IS NULL OR id <> $2)"#,
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
            "SELECT name, slug FROM products WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            id
        )
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| (row.name, row.slug)))
    }
}

/// Creates a product; its slug comes from the name.
pub async fn create(conn: &mut PgConnection, input: ProductInput) -> Result<Product> {
    let p = input.validate()?;
    let mut tx = conn.begin().await?;
    let slug = slug::allocate::<Product>(&mut tx, &p.name, None).await?;
    let product = write_errors(
        sqlx::query_as!(
            Product,
            r#"INSERT INTO products (id, sku, name, slug, description, price_cents, stock,
                   category_id, featured, weight_grams, height_cm, width_cm, length_cm, ncm, images)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               RETURNING id, sku, name, slug, description, price_cents, stock, category_id,
                   featured, weight_grams, height_cm, width_cm, length_cm, ncm, images,
                   created_at, updated_at"#,
            Uuid::now_v7(),
            p.sku,
            p.name,
            slug,
            p.description,
            p.price_cents,
            p.stock.unwrap_or(0),
            p.category_id,
            p.featured,
            p.weight_grams,
            p.height_cm,
            p.width_cm,
            p.length_cm,
            p.ncm,
            &p.images,
        )
        .fetch_one(&mut *tx)
        .await,
    )?;
    tx.commit().await?;
    Ok(product)
}

/// Replaces a live product's fields. The slug follows a changed name; stock is kept unless
/// the input names it.
pub async fn update(conn: &mut PgConnection, id: Uuid, input: ProductInput) -> Result<Product> {
    let p = input.validate()?;
    let mut tx = conn.begin().await?;
    let slug = slug::for_update::<Product>(&mut tx, id, &p.name).await?;
    let product = write_errors(
        sqlx::query_as!(
            Product,
            r#"UPDATE products SET sku = $2, name = $3, slug = $4, description = $5,
                   price_cents = $6, stock = COALESCE($7, stock), category_id = $8, featured = $9,
                   weight_grams = $10, height_cm = $11, width_cm = $12, length_cm = $13,
                   ncm = $14, images = $15, updated_at = now()
               WHERE id = $1
               RETURNING id, sku, name, slug, description, price_cents, stock, category_id,
                   featured, weight_grams, height_cm, width_cm, length_cm, ncm, images,
                   created_at, updated_at"#,
            id,
            p.sku,
            p.name,
            slug,
            p.description,
            p.price_cents,
            p.stock,
            p.category_id,
            p.featured,
            p.weight_grams,
            p.height_cm,
            p.width_cm,
            p.length_cm,
            p.ncm,
            &p.images,
        )
        .fetch_one(&mut *tx)
        .await,
    )?;
    tx.commit().await?;
    Ok(product)
}

/// Soft-deletes a live product. Carts are cleaned by `cart::drop_product` in the same
/// transaction (the caller's), reads skip it from now on.
pub async fn soft_delete(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    let deleted = sqlx::query!(
        "UPDATE products SET deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL",
        id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// A live product.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Product> {
    sqlx::query_as!(
        Product,
        r#"SELECT id, sku, name, slug, description, price_cents, stock, category_id, featured,
               weight_grams, height_cm, width_cm, length_cm, ncm, images, created_at, updated_at
           FROM products WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

/// List orders; ties are broken by id so pages never overlap or skip.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    Name,
}

impl ProductSort {
    fn order_by(self) -> &'static str {
        match self {
            ProductSort::Newest => "created_at DESC, id DESC",
            ProductSort::PriceAsc => "price_cents ASC, id ASC",
            ProductSort::PriceDesc => "price_cents DESC, id ASC",
            // The database collation is not Portuguese-aware; compare unaccented lower case.
            ProductSort::Name => "lower(immutable_unaccent(name)) ASC, id ASC",
        }
    }
}

/// Which live products a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductFilter {
    All,
    Featured,
    /// The category and all its descendants.
    Category(Uuid),
}

/// One page of a product list, with the total over all pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub total: i64,
}

const COLUMNS: &str = "id, sku, name, slug, description, price_cents, stock, category_id, \
    featured, weight_grams, height_cm, width_cm, length_cm, ncm, images, created_at, updated_at";

const CATEGORY_TREE: &str = "WITH RECURSIVE category_tree AS ( \
        SELECT id FROM categories WHERE id = $1 \
        UNION ALL \
        SELECT c.id FROM categories c JOIN category_tree t ON c.parent_id = t.id) ";

/// A page of live products. `Category` of an unknown category is `NotFound`.
pub async fn list(
    conn: &mut PgConnection,
    filter: ProductFilter,
    sort: ProductSort,
    limit: i64,
    offset: i64,
) -> Result<ProductPage> {
    let (with, condition, category) = match filter {
        ProductFilter::All => ("", "deleted_at IS NULL", None),
        ProductFilter::Featured => ("", "deleted_at IS NULL AND featured", None),
        ProductFilter::Category(id) => {
            if !super::categories::exists(&mut *conn, id).await? {
                return Err(Error::NotFound);
            }
            (
                CATEGORY_TREE,
                "deleted_at IS NULL AND category_id IN (SELECT id FROM category_tree)",
                Some(id),
            )
        }
    };
    // Only fixed fragments are spliced in; every value is a bind parameter.
    let (limit_param, offset_param) = if category.is_some() {
        ("$2", "$3")
    } else {
        ("$1", "$2")
    };
    let page_sql = format!(
        "{with}SELECT {COLUMNS} FROM products WHERE {condition} ORDER BY {} \
         LIMIT {limit_param} OFFSET {offset_param}",
        sort.order_by()
    );
    let count_sql = format!("{with}SELECT count(*) FROM products WHERE {condition}");

    let mut page = sqlx::query_as::<_, Product>(sqlx::AssertSqlSafe(page_sql));
    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    if let Some(id) = category {
        page = page.bind(id);
        count = count.bind(id);
    }
    let items = page.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let total = count.fetch_one(&mut *conn).await?;
    Ok(ProductPage { items, total })
}

/// Full-text search over name and SKU (weight A) and description (B), Portuguese stemming,
/// accents ignored; names within a typo or two (trigram similarity) match too. Full-text
/// matches rank first, by `ts_rank_cd`, then typo matches by similarity, then id.
pub async fn search(
    conn: &mut PgConnection,
    query: &str,
    limit: i64,
    offset: i64,
) -> Result<ProductPage> {
    let query = query.trim();
    if query.is_empty() {
        return Err(Error::invalid("q", "must not be empty"));
    }
    if query.contains('\0') {
        return Err(Error::invalid("q", "must not contain NUL characters"));
    }
    if query.chars().count() > MAX_SEARCH_LEN {
        return Err(Error::invalid(
            "q",
            format!("must be at most {MAX_SEARCH_LEN} characters"),
        ));
    }
    // `immutable_unaccent($1) <<% immutable_unaccent(name)` is strict word similarity, served
    // by products_name_trgm_idx; `search @@ …` by products_search_idx.
    let items = sqlx::query_as!(
        Product,
        r#"SELECT id, sku, name, slug, description, price_cents, stock, category_id, featured,
               weight_grams, height_cm, width_cm, length_cm, ncm, images, created_at, updated_at
           FROM products
           WHERE deleted_at IS NULL
             AND (search @@ websearch_to_tsquery('portuguese', immutable_unaccent($1))
                  OR immutable_unaccent($1) <<% immutable_unaccent(name)
                  OR lower(sku) = lower($1))
           ORDER BY
             (search @@ websearch_to_tsquery('portuguese', immutable_unaccent($1))) DESC,
             ts_rank_cd(search, websearch_to_tsquery('portuguese', immutable_unaccent($1))) DESC,
             strict_word_similarity(immutable_unaccent($1), immutable_unaccent(name)) DESC,
             id
           LIMIT $2 OFFSET $3"#,
        query,
        limit,
        offset,
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM products
           WHERE deleted_at IS NULL
             AND (search @@ websearch_to_tsquery('portuguese', immutable_unaccent($1))
                  OR immutable_unaccent($1) <<% immutable_unaccent(name)
                  OR lower(sku) = lower($1))"#,
        query,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(ProductPage { items, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProductInput {
        ProductInput {
            sku: "CAF-500".into(),
            name: " Café Especial ".into(),
            description: String::new(),
            price_cents: 4590,
            stock: Some(3),
            category_id: None,
            featured: false,
            weight_grams: 500,
            height_cm: 20,
            width_cm: 10,
            length_cm: 8,
            ncm: "0901.21.00".into(),
            images: vec!["https://cdn.example.com/cafe.jpg".into()],
        }
    }

    #[test]
    fn a_valid_input_is_normalised() {
        let p = input().validate().unwrap();
        assert_eq!(p.name, "Café Especial");
        assert_eq!(p.ncm, "09012100");
        assert_eq!(p.stock, Some(3));
    }

    #[test]
    fn bad_values_are_reported_per_field() {
        let mut bad = input();
        bad.name = "  ".into();
        bad.price_cents = -1;
        bad.ncm = "0901".into();
        bad.height_cm = -2;
        bad.stock = Some(-1);
        bad.sku = "-x".into();
        bad.images = vec!["ftp://x".into()];
        let Err(Error::Invalid(errors)) = bad.validate() else {
            panic!("expected field errors");
        };
        for field in [
            "name",
            "price_cents",
            "ncm",
            "height_cm",
            "stock",
            "sku",
            "images",
        ] {
            assert!(
                errors.0.contains_key(field),
                "{field} missing in {errors:?}"
            );
        }
    }
}
