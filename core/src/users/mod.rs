//! Accounts: the `user` model and its queries, address books, credentials (register, log in,
//! admin bootstrap), sessions, password resets and the LGPD data-subject requests.
//!
//! Rows of `users` are never deleted: an erasure anonymises the row so orders and invoices
//! keep their foreign key, and `deleted_at` makes the account invisible everywhere here.

pub mod addresses;
pub mod credentials;
pub mod password_reset;
pub mod privacy;
mod profile;
pub mod sessions;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

pub use profile::{Caller, EMAIL_CHANGED_TAG, ProfileDeps, ProfileUpdate, update_profile};

use crate::{Error, Result, auth::Role, error::ResultExt};

/// The contract's `user`: never a hash or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    /// 11 digits, or null when not given yet.
    pub cpf: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// `users` as the queries here read it; `role` is text in the database.
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    cpf: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(User {
            id: row.id,
            name: row.name,
            email: row.email,
            cpf: row.cpf,
            role: parse_role(&row.role)?,
            created_at: row.created_at,
        })
    }
}

fn parse_role(raw: &str) -> Result<Role> {
    Role::parse(raw).ok_or_else(|| anyhow::anyhow!("unknown role {raw:?} in users").into())
}

/// What a new account is made of, already validated and hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub cpf: Option<String>,
    pub password_hash: String,
    pub role: Role,
}

pub(crate) fn email_taken() -> Error {
    Error::conflict("this e-mail address is already registered")
}

pub async fn insert(conn: &mut PgConnection, new: &NewUser) -> Result<User> {
    sqlx::query_as!(
        UserRow,
        r#"
        INSERT INTO users (id, name, email, cpf, password_hash, role)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING id, name, email, cpf, role, created_at
        "#,
        Uuid::now_v7(),
        new.name,
        new.email,
        new.cpf,
        new.password_hash,
        new.role.as_str(),
    )
    .fetch_one(conn)
    .await
    .on_constraint("users_email_key", email_taken)?
    .try_into()
}

/// An active (not anonymised) account.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<User> {
    sqlx::query_as!(
        UserRow,
        r#"
        SELECT id, name, email, cpf, role, created_at
        FROM users
        WHERE id = $1 AND deleted_at IS NULL
        "#,
        id,
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()
}

/// Active accounts, oldest first, with the total count.
pub async fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<(Vec<User>, i64)> {
    let rows = sqlx::query_as!(
        UserRow,
        r#"
        SELECT id, name, email, cpf, role, created_at
        FROM users
        WHERE deleted_at IS NULL
        ORDER BY created_at, id
        LIMIT $1 OFFSET $2
        "#,
        limit,
        offset,
    )
    .fetch_all(&mut *conn)
    .await?;
    let total =
        sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM users WHERE deleted_at IS NULL"#)
            .fetch_one(&mut *conn)
            .await?;
    let users = rows
        .into_iter()
        .map(User::try_from)
        .collect::<Result<_>>()?;
    Ok((users, total))
}

/// Gives an active account the admin role. Unknown e-mail → `NotFound`.
pub async fn promote(conn: &mut PgConnection, email: &str) -> Result<User> {
    let email = crate::validation::normalize_email(email)
        .ok_or_else(|| Error::invalid("email", "not a valid e-mail address"))?;
    sqlx::query_as!(
        UserRow,
        r#"
        UPDATE users SET role = 'admin', updated_at = now()
        WHERE email = $1 AND deleted_at IS NULL
        RETURNING id, name, email, cpf, role, created_at
        "#,
        email,
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()
}

/// Validates a display name: trimmed, 1 to 200 characters.
pub(crate) fn clean_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    match name.chars().count() {
        0 => Err("must not be empty"),
        1..=200 => Ok(name.to_owned()),
        _ => Err("must be at most 200 characters"),
    }
}

pub(crate) fn clean_email(raw: &str) -> Result<String, &'static str> {
    crate::validation::normalize_email(raw).ok_or("not a valid e-mail address")
}

pub(crate) fn clean_cpf(raw: &str) -> Result<String, &'static str> {
    crate::validation::normalize_cpf(raw).ok_or("not a valid CPF")
}
