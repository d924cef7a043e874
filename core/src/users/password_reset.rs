//! Password reset by e-mail.
//!
//! A token is 32 random bytes (base64url in the link); only its SHA-256 is stored. It is
//! single use, expires after `PASSWORD_RESET_TTL`, and asking again replaces any earlier
//! unused token. The e-mail is a `send_email` job enqueued in the same transaction as the
//! token, so there is never a token without its e-mail or an e-mail without its token.
//! Asking for an unknown address does nothing, and the caller answers the same either way.
//!
//! A successful reset consumes every reset token of the account and ends the sessions
//! (bearer tokens) issued before it.

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    Error, Result,
    auth::password::{PasswordHasher, check_new_password},
    jobs::{self, send_email::SendEmail},
    mail::EmailMessage,
};

/// The mail tag of reset messages.
pub const TAG: &str = "password_reset";

/// What the reset e-mail needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct ResetSettings {
    pub ttl: Duration,
    /// Where the front end lives; the link is `{frontend_url}/reset-password?token=…`.
    pub frontend_url: String,
    pub store_name: String,
}

/// `POST /auth/forgot-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ForgotPassword {
    pub email: String,
}

/// `POST /auth/reset-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResetPassword {
    /// The token from the e-mailed link.
    pub token: String,
    /// The new password: at least 8 characters.
    pub password: String,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a reset for the account with this e-mail, if there is one. A malformed e-mail is
/// `Invalid`; an unknown one is `Ok` and does nothing.
pub async fn request_reset(
    conn: &mut PgConnection,
    input: ForgotPassword,
    settings: &ResetSettings,
) -> Result<()> {
    let email = super::clean_email(&input.email).map_err(|m| Error::invalid("email", m))?;
    let mut tx = conn.begin().await?;
    let Some(user) = sqlx::query!(
        "SELECT id, name, email FROM users WHERE email = $1 AND deleted_at IS NULL FOR UPDATE",
        email
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    // Only the newest link works.
    sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1 AND used_at IS NULL",
        user.id
    )
    .execute(&mut *tx)
    .await?;
    let token = new_token();
    let token_id = Uuid::now_v7();
    let ttl = chrono::Duration::from_std(settings.ttl)
        .map_err(|e| anyhow::anyhow!("PASSWORD_RESET_TTL out of range: {e}"))?;
    sqlx::query!(
        r#"
        INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at)
        VALUES ($1, $2, $3, $4)
        "#,
        token_id,
        user.id,
        digest(&token),
        Utc::now() + ttl,
    )
    .execute(&mut *tx)
    .await?;
    let message = reset_email(&user.email, &user.name, &token, settings);
    jobs::enqueue(
        &mut tx,
        &SendEmail {
            message,
            key: Some(format!("{TAG}:{token_id}")),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn invalid_token() -> Error {
    Error::invalid(
        "token",
        "this reset link is invalid, was already used or has expired",
    )
}

/// Sets a new password with a reset token. An unknown, used or expired token is `Invalid`
/// (422, `errors.token`), as is a password under 8 characters (`errors.password`).
pub async fn reset_password(
    db: &PgPool,
    hasher: &PasswordHasher,
    input: ResetPassword,
) -> Result<()> {
    check_new_password(&input.password).map_err(|m| Error::invalid("password", m))?;
    let token_hash = digest(input.token.trim());
    // A cheap look before the expensive hash; the transaction below checks again under lock.
    let usable = sqlx::query_scalar!(
        r#"
        SELECT EXISTS (
            SELECT 1 FROM password_reset_tokens
            WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
        ) AS "usable!"
        "#,
        token_hash
    )
    .fetch_one(db)
    .await?;
    if !usable {
        return Err(invalid_token());
    }
    let password_hash = hasher.hash(&input.password).await?;

    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    let Some(user_id) = sqlx::query_scalar!(
        r#"
        UPDATE password_reset_tokens SET used_at = now()
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
        RETURNING user_id
        "#,
        token_hash
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(invalid_token());
    };
    let updated = sqlx::query!(
        r#"
        UPDATE users SET password_hash = $2, sessions_valid_after = $3, updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        "#,
        user_id,
        password_hash,
        Utc::now(),
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(invalid_token());
    }
    // Every other outstanding link of the account dies with this one.
    sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The reset message, in Portuguese. `tag` is `password_reset`.
pub fn reset_email(to: &str, name: &str, token: &str, settings: &ResetSettings) -> EmailMessage {
    let link = format!(
        "{}/reset-password?token={token}",
        settings.frontend_url.trim_end_matches('/')
    );
    let validity = describe_duration(settings.ttl);
    let store = &settings.store_name;
    let first_name = name.split_whitespace().next().unwrap_or(name);
    let text = format!(
        "Olá, {first_name}!\n\n\
         Recebemos um pedido para redefinir a senha da sua conta na {store}.\n\
         Para escolher uma nova senha, acesse o link abaixo (válido por {validity}):\n\n\
         {link}\n\n\
         Se você não pediu a redefinição, ignore este e-mail: sua senha continua a mesma.\n\n\
         {store}\n"
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"pt-BR\"><body>\n\
         <p>Olá, {name}!</p>\n\
         <p>Recebemos um pedido para redefinir a senha da sua conta na {store_html}.</p>\n\
         <p><a href=\"{link_html}\">Escolher uma nova senha</a> (link válido por {validity}).</p>\n\
         <p>Se o botão não funcionar, copie este endereço no navegador:<br>{link_html}</p>\n\
         <p>Se você não pediu a redefinição, ignore este e-mail: sua senha continua a mesma.</p>\n\
         <p>{store_html}</p>\n</body></html>\n",
        name = escape_html(first_name),
        store_html = escape_html(store),
        link_html = escape_html(&link),
    );
    EmailMessage {
        to: to.to_owned(),
        subject: format!("Redefinição de senha — {store}"),
        text,
        html,
        tag: TAG.to_owned(),
    }
}

/// "1 hora", "30 minutos", "2 horas".
fn describe_duration(ttl: Duration) -> String {
    let minutes = (ttl.as_secs() / 60).max(1);
    match (minutes % 60, minutes / 60) {
        (0, 1) => "1 hora".to_owned(),
        (0, hours) => format!("{hours} horas"),
        (1, 0) => "1 minuto".to_owned(),
        _ => format!("{minutes} minutos"),
    }
}

fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ResetSettings {
        ResetSettings {
            ttl: Duration::from_secs(3600),
            frontend_url: "https://loja.example/".into(),
            store_name: "Loja <Teste>".into(),
        }
    }

    #[test]
    fn the_reset_email_links_to_the_front_end_with_the_token() {
        let msg = reset_email(
            "ana@example.com",
            "<b>Ana</b> Souza",
            "tok_EN-123",
            &settings(),
        );
        assert_eq!(msg.to, "ana@example.com");
        assert_eq!(msg.tag, "password_reset");
        assert!(msg.subject.contains("Redefinição de senha"));
        let link = "https://loja.example/reset-password?token=tok_EN-123";
        assert!(msg.text.contains(link), "{}", msg.text);
        assert!(msg.html.contains(link), "{}", msg.html);
        assert!(msg.text.contains("1 hora"));
        // Names and store names are escaped in HTML.
        assert!(msg.html.contains("&lt;b&gt;Ana&lt;/b&gt;"));
        assert!(!msg.html.contains("<b>"));
        assert!(msg.html.contains("Loja &lt;Teste&gt;"));
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(digest(&a).len(), 32);
    }

    #[test]
    fn validity_reads_naturally() {
        assert_eq!(describe_duration(Duration::from_secs(3600)), "1 hora");
        assert_eq!(describe_duration(Duration::from_secs(7200)), "2 horas");
        assert_eq!(describe_duration(Duration::from_secs(1800)), "30 minutos");
        assert_eq!(
            describe_duration(Duration::from_secs(90 * 60)),
            "90 minutos"
        );
    }
}
