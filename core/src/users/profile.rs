//! `PUT /users/me`: the fields a customer may change about themselves. Role, id and
//! timestamps are not among them: unknown fields in the request are ignored.
//!
//! Changing the e-mail needs the current password: the address is where reset links go, so
//! a stolen bearer token must not be enough to take the account over. The change notifies
//! the old address, ends the account's other sessions, voids outstanding reset links and
//! records the old address (`email_changes`) so an erasure finds mail sent to it.

use serde::Deserialize;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{User, UserRow, clean_cpf, clean_email, clean_name, email_taken, sessions};
use crate::{
    Error, Result,
    auth::password::PasswordHasher,
    error::{FieldErrors, ResultExt},
    jobs::{self, send_email::SendEmail},
    mail::templates::{EmailChanged, Templates},
};

/// The mail tag of the notice sent to the old address.
pub const EMAIL_CHANGED_TAG: &str = "email_changed";

/// Absent (or null) fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Ana Souza", "cpf": "529.982.247-25"}))]
pub struct ProfileUpdate {
    /// 1–200 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub name: Option<String>,
    /// A new address requires `current_password`.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// 11 digits, with or without the mask (`529.982.247-25`); the check digits must hold.
    /// Stored as 11 digits.
    #[schema(format = "cpf", pattern = r"^[.-]*([0-9][.-]*){11}$")]
    pub cpf: Option<String>,
    /// Required to change `email`; missing or wrong → 403 and nothing changes.
    #[schema(format = Password)]
    pub current_password: Option<String>,
}

struct CleanUpdate {
    name: Option<String>,
    email: Option<String>,
    cpf: Option<String>,
}

impl ProfileUpdate {
    fn validate(&self) -> Result<CleanUpdate> {
        let mut errors = FieldErrors::new();
        let mut check =
            |field: &str, raw: Option<&String>, clean: fn(&str) -> Result<String, &'static str>| {
                raw.and_then(|raw| match clean(raw) {
                    Ok(value) => Some(value),
                    Err(message) => {
                        errors.add(field, message);
                        None
                    }
                })
            };
        let update = CleanUpdate {
            name: check("name", self.name.as_ref(), clean_name),
            email: check("email", self.email.as_ref(), clean_email),
            cpf: check("cpf", self.cpf.as_ref(), clean_cpf),
        };
        errors.into_result()?;
        Ok(update)
    }
}

/// Who asks: the account and the session the request came with (which an e-mail change
/// keeps).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// What an e-mail change needs besides the database.
pub struct ProfileDeps<'a> {
    pub hasher: &'a PasswordHasher,
    pub templates: &'a Templates,
}

pub async fn update_profile(
    db: &PgPool,
    deps: &ProfileDeps<'_>,
    caller: Caller,
    update: ProfileUpdate,
) -> Result<User> {
    let clean = update.validate()?;
    let mut conn = db.acquire().await?;
    let current = sqlx::query!(
        "SELECT name, email, password_hash FROM users WHERE id = $1 AND deleted_at IS NULL",
        caller.user_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let new_email = clean
        .email
        .as_ref()
        .filter(|email| **email != current.email);
    let Some(new_email) = new_email else {
        return update_fields(&mut conn, caller.user_id, &clean).await;
    };
    // The hash takes a while: no connection is held meanwhile.
    drop(conn);
    let password_ok = match update.current_password.as_deref() {
        Some(password) => {
            deps.hasher
                .verify(password, Some(&current.password_hash))
                .await?
        }
        None => false,
    };
    if !password_ok {
        return Err(Error::Forbidden);
    }
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    // Only if neither the address nor the password changed since they were checked.
    let user: User = sqlx::query_as!(
        UserRow,
        r#"
        UPDATE users SET
            name = COALESCE($2, name),
            email = $3,
            cpf = COALESCE($4, cpf),
            updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL AND email = $5 AND password_hash = $6
        RETURNING id, name, email, cpf, role, created_at
        "#,
        caller.user_id,
        clean.name,
        new_email,
        clean.cpf,
        current.email,
        current.password_hash,
    )
    .fetch_optional(&mut *tx)
    .await
    .on_constraint("users_email_key", email_taken)?
    .ok_or_else(|| Error::conflict("the account changed while this request ran; try again"))?
    .try_into()?;
    let change_id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO email_changes (id, user_id, old_email) VALUES ($1, $2, $3)",
        change_id,
        caller.user_id,
        current.email,
    )
    .execute(&mut *tx)
    .await?;
    let ended = sessions::end_all(&mut tx, caller.user_id, Some(caller.session_id)).await?;
    // A link sent to the old address must not get the account back for whoever reads it.
    let voided = sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1 AND used_at IS NULL",
        caller.user_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let first_name = current
        .name
        .split_whitespace()
        .next()
        .unwrap_or(&current.name);
    let notice = deps.templates.email_changed(
        &current.email,
        &EmailChanged {
            name: first_name.to_owned(),
            new_email: new_email.clone(),
        },
    )?;
    jobs::enqueue(
        &mut tx,
        &SendEmail {
            message: notice,
            key: Some(format!("{EMAIL_CHANGED_TAG}:{change_id}")),
            order_id: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        user_id = %caller.user_id,
        other_sessions_ended = ended,
        reset_links_voided = voided,
        %change_id,
        "account e-mail changed"
    );
    Ok(user)
}

async fn update_fields(
    conn: &mut PgConnection,
    user_id: Uuid,
    clean: &CleanUpdate,
) -> Result<User> {
    sqlx::query_as!(
        UserRow,
        r#"
        UPDATE users SET
            name = COALESCE($2, name),
            cpf = COALESCE($3, cpf),
            updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING id, name, email, cpf, role, created_at
        "#,
        user_id,
        clean.name,
        clean.cpf,
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()
}
