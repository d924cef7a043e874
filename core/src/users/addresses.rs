//! A customer's address book. Whenever a customer has addresses exactly one is the default:
//! the first address becomes it, deleting the default hands it to the newest remaining one,
//! and it can only be moved, never unset. Every change locks the owner's `users` row, so
//! concurrent changes to one address book take turns.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{
    Error, Result,
    error::FieldErrors,
    validation::{Uf, normalize_cep, normalize_uf},
};

/// The contract's `address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Address {
    pub id: Uuid,
    /// A name the customer gives it ("Casa", "Trabalho").
    pub label: Option<String>,
    pub recipient: String,
    /// 8 digits.
    pub cep: String,
    pub street: String,
    pub number: String,
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    /// A Brazilian UF (`SP`, `RJ`, …).
    #[schema(value_type = Uf)]
    pub state: String,
    pub is_default: bool,
}

/// The body of create (`POST`) and full update (`PUT`). Text fields are trimmed; the
/// lengths count what is left.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "label": "Casa", "recipient": "Ana Souza", "cep": "01310-100", "street": "Avenida Paulista",
    "number": "1000", "complement": "apto 42", "district": "Bela Vista", "city": "São Paulo",
    "state": "SP", "is_default": true
}))]
pub struct AddressInput {
    /// A name for it ("Casa", "Trabalho"), up to 50 characters; blank means none.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub label: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub recipient: String,
    /// `01310100` or `01310-100`.
    #[schema(pattern = r"^[0-9]{5}-?[0-9]{3}$")]
    pub cep: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub street: String,
    /// Text: `123`, `S/N`, `1500 bloco B`.
    #[schema(
        min_length = 1,
        max_length = 20,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub number: String,
    /// Up to 200 characters; blank means none.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub complement: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub district: String,
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub city: String,
    /// A UF; lower case is accepted too.
    #[schema(value_type = Uf)]
    pub state: String,
    /// `true` makes this the default. The first address is the default regardless.
    #[serde(default)]
    pub is_default: Option<bool>,
}

struct CleanAddress {
    label: Option<String>,
    recipient: String,
    cep: String,
    street: String,
    number: String,
    complement: Option<String>,
    district: String,
    city: String,
    state: String,
    is_default: Option<bool>,
}

fn required(errors: &mut FieldErrors, field: &str, raw: &str, max: usize) -> String {
    let value = raw.trim();
    if value.is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    }
    value.to_owned()
}

fn optional(
    errors: &mut FieldErrors,
    field: &str,
    raw: Option<&str>,
    max: usize,
) -> Option<String> {
    let value = raw.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    }
    Some(value.to_owned())
}

impl AddressInput {
    fn validate(self) -> Result<CleanAddress> {
        let mut errors = FieldErrors::new();
        let cep = normalize_cep(&self.cep).unwrap_or_else(|| {
            errors.add("cep", "must be 8 digits (a hyphen is accepted: 01310-100)");
            String::new()
        });
        let state = normalize_uf(&self.state).unwrap_or_else(|| {
            errors.add("state", "must be a Brazilian UF such as SP or RJ");
            String::new()
        });
        let clean = CleanAddress {
            label: optional(&mut errors, "label", self.label.as_deref(), 50),
            recipient: required(&mut errors, "recipient", &self.recipient, 200),
            cep,
            street: required(&mut errors, "street", &self.street, 200),
            number: required(&mut errors, "number", &self.number, 20),
            complement: optional(&mut errors, "complement", self.complement.as_deref(), 200),
            district: required(&mut errors, "district", &self.district, 100),
            city: required(&mut errors, "city", &self.city, 100),
            state,
            is_default: self.is_default,
        };
        errors.into_result()?;
        Ok(clean)
    }
}

/// Serialises changes to one user's address book; `NotFound` for an unknown or anonymised
/// user.
async fn lock_owner(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query_scalar!(
        "SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        user_id
    )
    .fetch_optional(conn)
    .await?
    .map(|_| ())
    .ok_or(Error::NotFound)
}

async fn clear_default(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE addresses SET is_default = false, updated_at = now() WHERE user_id = $1 AND is_default",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One page of the address book, default first, and how many addresses it holds.
pub async fn list_page(
    conn: &mut PgConnection,
    user_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Address>, i64)> {
    let items = sqlx::query_as!(
        Address,
        r#"
        SELECT id, label, recipient, cep, street, number, complement, district, city, state,
               is_default
        FROM addresses
        WHERE user_id = $1
        ORDER BY is_default DESC, created_at, id
        LIMIT $2 OFFSET $3
        "#,
        user_id,
        limit,
        offset,
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM addresses WHERE user_id = $1"#,
        user_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((items, total))
}

pub async fn list(conn: &mut PgConnection, user_id: Uuid) -> Result<Vec<Address>> {
    Ok(sqlx::query_as!(
        Address,
        r#"
        SELECT id, label, recipient, cep, street, number, complement, district, city, state,
               is_default
        FROM addresses
        WHERE user_id = $1
        ORDER BY is_default DESC, created_at, id
        "#,
        user_id
    )
    .fetch_all(conn)
    .await?)
}

pub async fn create(
    conn: &mut PgConnection,
    user_id: Uuid,
    input: AddressInput,
) -> Result<Address> {
    let clean = input.validate()?;
    let mut tx = conn.begin().await?;
    lock_owner(&mut tx, user_id).await?;
    let has_default = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM addresses WHERE user_id = $1 AND is_default) AS "exists!""#,
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let is_default = !has_default || clean.is_default == Some(true);
    if is_default {
        clear_default(&mut tx, user_id).await?;
    }
    let address = sqlx::query_as!(
        Address,
        r#"
        INSERT INTO addresses
            (id, user_id, label, recipient, cep, street, number, complement, district, city,
             state, is_default)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING id, label, recipient, cep, street, number, complement, district, city, state,
                  is_default
        "#,
        Uuid::now_v7(),
        user_id,
        clean.label,
        clean.recipient,
        clean.cep,
        clean.street,
        clean.number,
        clean.complement,
        clean.district,
        clean.city,
        clean.state,
        is_default,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(address)
}

/// Whether the address exists and belongs to `user_id`, and if it is the default.
async fn current_default(conn: &mut PgConnection, user_id: Uuid, address_id: Uuid) -> Result<bool> {
    sqlx::query_scalar!(
        "SELECT is_default FROM addresses WHERE id = $1 AND user_id = $2",
        address_id,
        user_id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

/// Full update. `is_default: true` moves the default here; `false` on the default is
/// refused (make another address the default instead); absent leaves it as it is.
pub async fn update(
    conn: &mut PgConnection,
    user_id: Uuid,
    address_id: Uuid,
    input: AddressInput,
) -> Result<Address> {
    let clean = input.validate()?;
    let mut tx = conn.begin().await?;
    lock_owner(&mut tx, user_id).await?;
    let was_default = current_default(&mut tx, user_id, address_id).await?;
    let is_default = match clean.is_default {
        Some(false) if was_default => {
            return Err(Error::invalid(
                "is_default",
                "one address is always the default: make another address the default instead",
            ));
        }
        Some(true) if !was_default => {
            clear_default(&mut tx, user_id).await?;
            true
        }
        _ => was_default,
    };
    let address = sqlx::query_as!(
        Address,
        r#"
        UPDATE addresses SET
            label = $3, recipient = $4, cep = $5, street = $6, number = $7, complement = $8,
            district = $9, city = $10, state = $11, is_default = $12, updated_at = now()
        WHERE id = $1 AND user_id = $2
        RETURNING id, label, recipient, cep, street, number, complement, district, city, state,
                  is_default
        "#,
        address_id,
        user_id,
        clean.label,
        clean.recipient,
        clean.cep,
        clean.street,
        clean.number,
        clean.complement,
        clean.district,
        clean.city,
        clean.state,
        is_default,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(address)
}

/// Deletes the address; when it was the default, the newest remaining address takes over.
pub async fn delete(conn: &mut PgConnection, user_id: Uuid, address_id: Uuid) -> Result<()> {
    let mut tx = conn.begin().await?;
    lock_owner(&mut tx, user_id).await?;
    let was_default = sqlx::query_scalar!(
        "DELETE FROM addresses WHERE id = $1 AND user_id = $2 RETURNING is_default",
        address_id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    if was_default {
        sqlx::query!(
            r#"
            UPDATE addresses SET is_default = true, updated_at = now()
            WHERE id = (SELECT id FROM addresses WHERE user_id = $1
                        ORDER BY created_at DESC, id DESC LIMIT 1)
            "#,
            user_id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Makes the address the only default.
pub async fn make_default(
    conn: &mut PgConnection,
    user_id: Uuid,
    address_id: Uuid,
) -> Result<Address> {
    let mut tx = conn.begin().await?;
    lock_owner(&mut tx, user_id).await?;
    if !current_default(&mut tx, user_id, address_id).await? {
        clear_default(&mut tx, user_id).await?;
    }
    let address = sqlx::query_as!(
        Address,
        r#"
        UPDATE addresses SET is_default = true, updated_at = now()
        WHERE id = $1 AND user_id = $2
        RETURNING id, label, recipient, cep, street, number, complement, district, city, state,
                  is_default
        "#,
        address_id,
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(address)
}

/// Every address of the user, with timestamps, for the data export.
#[derive(Debug, Serialize)]
pub(crate) struct StoredAddress {
    #[serde(flatten)]
    pub address: Address,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) async fn stored_for_export(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Vec<StoredAddress>> {
    let rows = sqlx::query!(
        r#"
        SELECT id, label, recipient, cep, street, number, complement, district, city, state,
               is_default, created_at, updated_at
        FROM addresses WHERE user_id = $1
        ORDER BY created_at, id
        "#,
        user_id
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredAddress {
            address: Address {
                id: r.id,
                label: r.label,
                recipient: r.recipient,
                cep: r.cep,
                street: r.street,
                number: r.number,
                complement: r.complement,
                district: r.district,
                city: r.city,
                state: r.state,
                is_default: r.is_default,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}
