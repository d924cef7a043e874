//! Registering, logging in and the admin bootstrap.
//!
//! These flows take the pool rather than one connection: a password hash takes a noticeable
//! time (and may wait for a hashing slot), and a flood of logins must not hold database
//! connections while it waits. Each database step borrows a connection only for itself.

use serde::Deserialize;
use sqlx::PgPool;

use super::{NewUser, User, clean_cpf, clean_email, clean_name};
use crate::{
    Error, Result,
    auth::{
        Role,
        password::{PasswordHasher, check_new_password},
    },
    error::FieldErrors,
};

/// `POST /auth/register`. Unknown fields (`role`, `id`, …) are ignored: a client cannot
/// choose them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Registration {
    pub name: String,
    pub email: String,
    /// At least 8 characters; never truncated.
    pub password: String,
    /// Optional; with or without the mask. Check digits are verified.
    #[serde(default)]
    pub cpf: Option<String>,
}

struct ValidRegistration {
    name: String,
    email: String,
    cpf: Option<String>,
    password: String,
}

impl Registration {
    fn validate(self) -> Result<ValidRegistration> {
        let mut errors = FieldErrors::new();
        let name = clean_name(&self.name)
            .map_err(|m| errors.add("name", m))
            .ok();
        let email = clean_email(&self.email)
            .map_err(|m| errors.add("email", m))
            .ok();
        let cpf = match self.cpf.as_deref() {
            None => None,
            Some(raw) => clean_cpf(raw).map_err(|m| errors.add("cpf", m)).ok(),
        };
        if let Err(message) = check_new_password(&self.password) {
            errors.add("password", message);
        }
        match (name, email) {
            (Some(name), Some(email)) if errors.is_empty() => Ok(ValidRegistration {
                name,
                email,
                cpf,
                password: self.password,
            }),
            _ => Err(Error::Invalid(errors)),
        }
    }
}

/// Creates a customer account (role `user`). Email taken → `Conflict`.
pub async fn register(db: &PgPool, hasher: &PasswordHasher, input: Registration) -> Result<User> {
    let valid = input.validate()?;
    let password_hash = hasher.hash(&valid.password).await?;
    let mut conn = db.acquire().await?;
    super::insert(
        &mut conn,
        &NewUser {
            name: valid.name,
            email: valid.email,
            cpf: valid.cpf,
            password_hash,
            role: Role::User,
        },
    )
    .await
}

/// `POST /auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Login {
    pub email: String,
    pub password: String,
}

fn bad_credentials() -> Error {
    Error::Unauthorized("e-mail or password do not match".into())
}

/// Checks the credentials. Every mismatch (unknown e-mail, wrong password, anonymised
/// account, malformed e-mail) is the same `Unauthorized`, after the same amount of hashing.
pub async fn login(db: &PgPool, hasher: &PasswordHasher, input: Login) -> Result<User> {
    let stored = match crate::validation::normalize_email(&input.email) {
        Some(email) => {
            sqlx::query!(
                r#"
                SELECT id, password_hash FROM users
                WHERE email = $1 AND deleted_at IS NULL
                "#,
                email,
            )
            .fetch_optional(db)
            .await?
        }
        None => None,
    };
    let hash = stored.as_ref().map(|row| row.password_hash.as_str());
    if !hasher.verify(&input.password, hash).await? {
        return Err(bad_credentials());
    }
    let Some(row) = stored else {
        return Err(bad_credentials());
    };
    if hasher.needs_rehash(&row.password_hash) {
        upgrade_hash(db, hasher, row.id, &row.password_hash, &input.password).await;
    }
    let mut conn = db.acquire().await?;
    super::find(&mut conn, row.id).await.map_err(|e| match e {
        Error::NotFound => bad_credentials(),
        other => other,
    })
}

/// Re-hashes with today's parameters after a successful login. Best effort: a failure
/// leaves the old (still valid) hash and is only logged.
async fn upgrade_hash(
    db: &PgPool,
    hasher: &PasswordHasher,
    user_id: uuid::Uuid,
    old_hash: &str,
    password: &str,
) {
    let result = async {
        let new_hash = hasher.hash(password).await?;
        // Only when nobody changed the password in between.
        sqlx::query!(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            user_id,
            old_hash,
            new_hash,
        )
        .execute(db)
        .await?;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%user_id, error = %e, "could not upgrade a password hash");
    }
}

/// What the start-up admin bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    Created(User),
    Promoted(User),
    AlreadyAdmin(User),
}

/// Makes sure an admin with `email` exists: creates it with `password`, or promotes the
/// existing account (whose password is left alone). Safe to run on every start and from
/// several instances at once.
pub async fn ensure_admin(
    db: &PgPool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<AdminBootstrap> {
    let email = clean_email(email).map_err(|m| Error::invalid("ADMIN_EMAIL", m))?;
    check_new_password(password).map_err(|m| Error::invalid("ADMIN_PASSWORD", m))?;
    let existing = sqlx::query!(
        "SELECT id, role FROM users WHERE email = $1 AND deleted_at IS NULL",
        email,
    )
    .fetch_optional(db)
    .await?;
    let mut conn = db.acquire().await?;
    if let Some(row) = existing {
        let already = row.role == Role::Admin.as_str();
        let user = super::promote(&mut conn, &email).await?;
        return Ok(if already {
            AdminBootstrap::AlreadyAdmin(user)
        } else {
            AdminBootstrap::Promoted(user)
        });
    }
    drop(conn);
    let password_hash = hasher.hash(password).await?;
    let row = sqlx::query_as!(
        super::UserRow,
        r#"
        INSERT INTO users (id, name, email, password_hash, role)
        VALUES ($1, 'Administrador', $2, $3, 'admin')
        ON CONFLICT ON CONSTRAINT users_email_key
            DO UPDATE SET role = 'admin', updated_at = now()
        RETURNING id, name, email, cpf, role, created_at
        "#,
        uuid::Uuid::now_v7(),
        email,
        password_hash,
    )
    .fetch_one(db)
    .await?;
    Ok(AdminBootstrap::Created(row.try_into()?))
}
