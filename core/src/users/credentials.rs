//! Registering (which opens the first session), logging in and the admin bootstrap.
//!
//! These flows take the pool rather than one connection: a password hash takes a noticeable
//! time (and may wait for a hashing slot), and a flood of logins must not hold database
//! connections while it waits. Each database step borrows a connection only for itself.

use serde::Deserialize;
use sqlx::{Connection, PgConnection, PgPool};

use super::{NewUser, User, UserRow, clean_cpf, clean_email, clean_name, sessions};
use crate::{
    Error, Result,
    auth::{
        Role,
        jwt::JwtKeys,
        password::{PasswordHasher, check_new_password},
    },
    error::FieldErrors,
};

/// `POST /auth/register`. Unknown fields (`role`, `id`, …) are ignored: a client cannot
/// choose them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "name": "Ana Souza", "email": "ana@example.com", "password": "correct horse battery",
    "cpf": "529.982.247-25"
}))]
pub struct Registration {
    /// 1–200 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// At least 8 characters, counted after Unicode NFKC normalisation; never truncated.
    #[schema(format = Password, min_length = 8)]
    pub password: String,
    /// Optional; 11 digits, with or without the mask (`529.982.247-25`); the check digits must
    /// hold.
    #[serde(default)]
    #[schema(format = "cpf", pattern = r"^[.-]*([0-9][.-]*){11}$")]
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

/// Creates a customer account (role `user`) and its first session, together. Email taken →
/// `Conflict`.
pub async fn register(
    db: &PgPool,
    hasher: &PasswordHasher,
    jwt: &JwtKeys,
    input: Registration,
) -> Result<(User, sessions::Issued)> {
    let valid = input.validate()?;
    let password_hash = hasher.hash(&valid.password).await?;
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    let user = super::insert(
        &mut tx,
        &NewUser {
            name: valid.name,
            email: valid.email,
            cpf: valid.cpf,
            password_hash,
            role: Role::User,
        },
    )
    .await?;
    let session = sessions::open(&mut tx, jwt, &user).await?;
    tx.commit().await?;
    Ok((user, session))
}

/// `POST /auth/login`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Login {
    /// Any text: whatever does not match an account is the same 401.
    pub email: String,
    #[schema(format = Password)]
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
    /// An admin already has the address; its password is left alone.
    AlreadyAdmin(User),
    /// A customer account has the address. It is not promoted: registration does not verify
    /// addresses, so whoever registered it first would become admin. An operator promotes it
    /// deliberately with `cart-api users promote`.
    TakenByCustomer(User),
}

impl AdminBootstrap {
    fn of_existing(user: User) -> Self {
        if user.role == Role::Admin {
            Self::AlreadyAdmin(user)
        } else {
            Self::TakenByCustomer(user)
        }
    }
}

/// Makes sure an admin with `email` exists: creates it with `password` when the address is
/// free. An existing account is never changed (neither promoted nor given this password).
/// Safe to run on every start and from several instances at once.
pub async fn ensure_admin(
    db: &PgPool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<AdminBootstrap> {
    let email = clean_email(email).map_err(|m| Error::invalid("ADMIN_EMAIL", m))?;
    check_new_password(password).map_err(|m| Error::invalid("ADMIN_PASSWORD", m))?;
    let mut conn = db.acquire().await?;
    if let Some(user) = account_with_email(&mut conn, &email).await? {
        return Ok(AdminBootstrap::of_existing(user));
    }
    drop(conn);
    let password_hash = hasher.hash(password).await?;
    let mut conn = db.acquire().await?;
    create_admin_if_free(&mut conn, &email, &password_hash).await
}

/// Inserts the admin unless the address was taken meanwhile (a registration between the
/// check and this insert): then the account that won is reported and left as it is.
async fn create_admin_if_free(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
) -> Result<AdminBootstrap> {
    let inserted = sqlx::query_as!(
        UserRow,
        r#"
        INSERT INTO users (id, name, email, password_hash, role)
        VALUES ($1, 'Administrador', $2, $3, 'admin')
        ON CONFLICT ON CONSTRAINT users_email_key DO NOTHING
        RETURNING id, name, email, cpf, role, created_at
        "#,
        uuid::Uuid::now_v7(),
        email,
        password_hash,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok(AdminBootstrap::Created(row.try_into()?));
    }
    let winner = account_with_email(conn, email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("ADMIN_EMAIL conflicted with no account"))?;
    Ok(AdminBootstrap::of_existing(winner))
}

async fn account_with_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, name, email, cpf, role, created_at FROM users WHERE email = $1",
        email,
    )
    .fetch_optional(conn)
    .await?
    .map(User::try_from)
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn customer(conn: &mut PgConnection, email: &str) -> User {
        super::super::insert(
            conn,
            &NewUser {
                name: "Quem Chegou Antes".into(),
                email: email.into(),
                cpf: None,
                password_hash: "customer-hash".into(),
                role: Role::User,
            },
        )
        .await
        .unwrap()
    }

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&crate::auth::password::PasswordConfig::for_tests()).unwrap()
    }

    async fn stored(conn: &mut PgConnection, email: &str) -> (String, String) {
        sqlx::query_as("SELECT role, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(conn)
            .await
            .unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn a_customer_who_registered_the_admin_address_is_not_promoted(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let squatter = customer(&mut conn, "root@example.com").await;
        let outcome = ensure_admin(&pool, &hasher(), "Root@Example.com", "admin-senha-123")
            .await
            .unwrap();
        assert_eq!(outcome, AdminBootstrap::TakenByCustomer(squatter));
        assert_eq!(
            stored(&mut conn, "root@example.com").await,
            ("user".to_owned(), "customer-hash".to_owned())
        );
    }

    #[sqlx::test(migrations = false)]
    async fn a_registration_racing_the_bootstrap_insert_is_not_promoted(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        // The bootstrap found the address free; then this registration committed.
        let squatter = customer(&mut conn, "root@example.com").await;
        let outcome = create_admin_if_free(&mut conn, "root@example.com", "admin-hash")
            .await
            .unwrap();
        assert_eq!(outcome, AdminBootstrap::TakenByCustomer(squatter));
        assert_eq!(
            stored(&mut conn, "root@example.com").await,
            ("user".to_owned(), "customer-hash".to_owned())
        );
    }

    #[sqlx::test(migrations = false)]
    async fn an_existing_admin_keeps_its_password(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let hasher = hasher();
        let first = ensure_admin(&pool, &hasher, "root@example.com", "admin-senha-123")
            .await
            .unwrap();
        let AdminBootstrap::Created(admin) = first else {
            panic!("expected a new admin, got {first:?}");
        };
        let mut conn = pool.acquire().await.unwrap();
        let (_, hash_before) = stored(&mut conn, "root@example.com").await;
        let again = ensure_admin(&pool, &hasher, "root@example.com", "outra-senha-456")
            .await
            .unwrap();
        assert_eq!(again, AdminBootstrap::AlreadyAdmin(admin));
        assert_eq!(
            stored(&mut conn, "root@example.com").await,
            ("admin".to_owned(), hash_before)
        );
    }
}
