//! `PUT /users/me`: the fields a customer may change about themselves. Role, id and
//! timestamps are not among them: unknown fields in the request are ignored.

use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{User, UserRow, clean_cpf, clean_email, clean_name, email_taken};
use crate::{Error, Result, error::FieldErrors, error::ResultExt};

/// Absent (or null) fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    pub email: Option<String>,
    /// With or without the mask (`529.982.247-25`); stored as 11 digits.
    pub cpf: Option<String>,
}

struct CleanUpdate {
    name: Option<String>,
    email: Option<String>,
    cpf: Option<String>,
}

impl ProfileUpdate {
    fn validate(self) -> Result<CleanUpdate> {
        let mut errors = FieldErrors::new();
        let mut check =
            |field: &str, raw: Option<String>, clean: fn(&str) -> Result<String, &'static str>| {
                raw.and_then(|raw| match clean(&raw) {
                    Ok(value) => Some(value),
                    Err(message) => {
                        errors.add(field, message);
                        None
                    }
                })
            };
        let update = CleanUpdate {
            name: check("name", self.name, clean_name),
            email: check("email", self.email, clean_email),
            cpf: check("cpf", self.cpf, clean_cpf),
        };
        errors.into_result()?;
        Ok(update)
    }
}

pub async fn update_profile(
    conn: &mut PgConnection,
    user_id: Uuid,
    update: ProfileUpdate,
) -> Result<User> {
    let update = update.validate()?;
    sqlx::query_as!(
        UserRow,
        r#"
        UPDATE users SET
            name = COALESCE($2, name),
            email = COALESCE($3, email),
            cpf = COALESCE($4, cpf),
            updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING id, name, email, cpf, role, created_at
        "#,
        user_id,
        update.name,
        update.email,
        update.cpf,
    )
    .fetch_optional(conn)
    .await
    .on_constraint("users_email_key", email_taken)?
    .ok_or(Error::NotFound)?
    .try_into()
}
