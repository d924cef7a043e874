//! LGPD data-subject requests: access (art. 18, II — everything stored about the caller)
//! and erasure by anonymisation (art. 18, IV and VI). Both are recorded in `lgpd_requests`.
//!
//! The export is one JSON document. Its sections are: the profile, the address book, the
//! password reset requests, earlier privacy requests, the orders with their payments and
//! invoices, and the rows of every table listed in [`USER_OWNED_TABLES`]. To export a new area, add a section to [`export`] or, for a table
//! whose rows simply belong to a user by `user_id`, a line to that list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{Error, Result, jobs::scrub_outbox::ScrubOutbox, mail::recipient_digest};

/// Tables of other areas whose rows belong to a user through a `user_id` column. Each is
/// exported as stored; one that does not exist (yet) exports as an empty list.
pub const USER_OWNED_TABLES: &[&str] = &[
    "carts",
    "cart_items",
    "idempotency_keys",
    "sessions",
    "email_changes",
];

#[derive(Debug, Serialize)]
struct StoredProfile {
    id: Uuid,
    name: String,
    email: String,
    cpf: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct StoredResetRequest {
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct StoredPrivacyRequest {
    kind: String,
    requested_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

fn to_json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| anyhow::anyhow!("serialising the export: {e}").into())
}

/// Everything stored about an active account, as one JSON document, and the request logged.
pub async fn export(conn: &mut PgConnection, user_id: Uuid) -> Result<Value> {
    let mut tx = conn.begin().await?;
    let profile = sqlx::query_as!(
        StoredProfile,
        r#"
        SELECT id, name, email, cpf, role, created_at, updated_at
        FROM users WHERE id = $1 AND deleted_at IS NULL
        "#,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let addresses = super::addresses::stored_for_export(&mut tx, user_id).await?;
    let reset_requests = sqlx::query_as!(
        StoredResetRequest,
        r#"
        SELECT created_at, expires_at, used_at FROM password_reset_tokens
        WHERE user_id = $1 ORDER BY created_at
        "#,
        user_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let privacy_requests = sqlx::query_as!(
        StoredPrivacyRequest,
        r#"
        SELECT kind, requested_at, completed_at FROM lgpd_requests
        WHERE user_id = $1 ORDER BY requested_at
        "#,
        user_id
    )
    .fetch_all(&mut *tx)
    .await?;

    let mut document = serde_json::Map::new();
    document.insert("generated_at".into(), to_json(&Utc::now())?);
    document.insert("profile".into(), to_json(&profile)?);
    document.insert("addresses".into(), to_json(&addresses)?);
    document.insert("password_reset_requests".into(), to_json(&reset_requests)?);
    document.insert("privacy_requests".into(), to_json(&privacy_requests)?);
    document.insert(
        "orders".into(),
        crate::orders::privacy::export_for_user(&mut tx, user_id).await?,
    );
    document.insert(
        "payments".into(),
        crate::orders::privacy::payments_for_user(&mut tx, user_id).await?,
    );
    document.insert(
        "invoices".into(),
        crate::orders::privacy::invoices_for_user(&mut tx, user_id).await?,
    );
    for table in USER_OWNED_TABLES {
        document.insert(
            (*table).into(),
            rows_of_user(&mut tx, table, user_id).await?,
        );
    }

    let sections: Vec<&String> = document.keys().collect();
    let details = json!({ "sections": sections });
    sqlx::query!(
        r#"
        INSERT INTO lgpd_requests (id, user_id, kind, completed_at, details)
        VALUES ($1, $2, 'access', now(), $3)
        "#,
        Uuid::now_v7(),
        user_id,
        details
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Value::Object(document))
}

/// The user's rows of `table` as a JSON array; `[]` when the table (or its `user_id`
/// column) does not exist.
async fn rows_of_user(conn: &mut PgConnection, table: &str, user_id: Uuid) -> Result<Value> {
    let exists = sqlx::query_scalar!(
        r#"
        SELECT EXISTS (
            SELECT 1 FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'user_id'
        ) AS "exists!"
        "#,
        table
    )
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Ok(Value::Array(vec![]));
    }
    // `table` comes from `USER_OWNED_TABLES`, never from a request; quoted all the same.
    let sql = format!(
        r#"SELECT COALESCE(jsonb_agg(to_jsonb(t)), '[]'::jsonb) FROM "{}" t WHERE t.user_id = $1"#,
        table.replace('"', "\"\"")
    );
    let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(rows)
}

/// The name an anonymised account keeps (the column is required).
pub const ANONYMISED_NAME: &str = "Conta removida";

/// How long after an erasure the outbox is scrubbed: long enough for an e-mail that was
/// being sent at that moment (left to finish, see below) to have landed.
const OUTBOX_SCRUB_DELAY: chrono::Duration = chrono::Duration::minutes(2);

/// Anonymises an active account (LGPD erasure). Name, e-mail, CPF and password are replaced
/// irreversibly; addresses, reset tokens, sessions, earlier addresses, the cart, stored
/// idempotent answers and e-mails queued for any of the account's addresses are deleted;
/// the bodies of webhooks about its payments lose the buyer's personal fields; a job deletes
/// the outbox copies of mail sent to it. The row itself stays (with `deleted_at`) because
/// orders and invoices refer to it and fiscal law requires keeping them. Logged in
/// `lgpd_requests` with what was kept and why. Login and every existing token stop working.
pub async fn anonymise(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    let mut tx = conn.begin().await?;
    let person = sqlx::query!(
        "SELECT name, email, cpf FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let mut emails = sqlx::query_scalar!(
        "SELECT old_email FROM email_changes WHERE user_id = $1",
        user_id
    )
    .fetch_all(&mut *tx)
    .await?;
    emails.push(person.email.clone());
    emails.sort();
    emails.dedup();

    let placeholder = format!("deleted-{}@anonymized.invalid", Uuid::new_v4());
    sqlx::query!(
        r#"
        UPDATE users SET
            name = $2,
            email = $3,
            cpf = NULL,
            -- Not a PHC string: no password verifies against it.
            password_hash = '!',
            role = 'user',
            deleted_at = now(),
            updated_at = now()
        WHERE id = $1
        "#,
        user_id,
        ANONYMISED_NAME,
        placeholder
    )
    .execute(&mut *tx)
    .await?;
    let addresses = sqlx::query!("DELETE FROM addresses WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let reset_tokens = sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1",
        user_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let sessions = sqlx::query!("DELETE FROM sessions WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let earlier_emails = sqlx::query!("DELETE FROM email_changes WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // The cart says what the person was about to buy; stored answers to repeated requests
    // hold the order's address snapshot. Neither is a record anyone must keep.
    let carts = sqlx::query!("DELETE FROM carts WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let idempotency_keys = sqlx::query!("DELETE FROM idempotency_keys WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // E-mail jobs (queued, sent or failed) carry the address and the message; one being sent
    // right now is left to finish, and the outbox scrub below runs after it.
    let email_jobs = cart_queue::admin::delete_by_recipient(
        &mut tx,
        <crate::jobs::send_email::SendEmail as crate::jobs::Job>::NAME,
        &emails,
    )
    .await?;
    let webhook_bodies = crate::payments::privacy::redact_webhook_bodies(
        &mut tx,
        user_id,
        &crate::payments::privacy::Identifiers {
            emails: emails.clone(),
            name: Some(person.name.clone()),
            cpf: person.cpf.clone(),
        },
    )
    .await?;
    crate::jobs::enqueue_at(
        &mut tx,
        &ScrubOutbox {
            recipients: emails.iter().map(|e| recipient_digest(e)).collect(),
        },
        Some(Utc::now() + OUTBOX_SCRUB_DELAY),
    )
    .await?;

    let details = json!({
        "scrubbed": ["name", "email", "cpf", "password"],
        "deleted": {
            "addresses": addresses,
            "password_reset_tokens": reset_tokens,
            "sessions": sessions,
            "earlier_emails": earlier_emails,
            "carts": carts,
            "idempotency_keys": idempotency_keys,
            "email_jobs": email_jobs,
        },
        "redacted": {
            "webhook_bodies": webhook_bodies,
        },
        "scheduled": ["outbox copies of mail sent to the account's addresses (scrub_outbox job)"],
        "kept": [
            {
                "data": "account id, role and timestamps (no personal data)",
                "reason": "orders, payments and invoices refer to the account",
            },
            {
                "data": "orders, payments and invoices (NF-e), with the name, CPF and address snapshots taken at checkout",
                "reason": "fiscal records must be kept for at least 5 years (LGPD art. 16, I: compliance with a legal obligation; CTN art. 173, 174 and 195; the NF-e XML custody rule)",
            },
            {
                "data": "webhook events of the payments (ids, types, outcomes, amounts, timestamps; personal fields removed)",
                "reason": "evidence of how each payment was settled, part of the fiscal record",
            },
            {
                "data": "this record and earlier privacy requests",
                "reason": "proof that the data-subject requests were answered (LGPD art. 37)",
            },
        ],
    });
    sqlx::query!(
        r#"
        INSERT INTO lgpd_requests (id, user_id, kind, completed_at, details)
        VALUES ($1, $2, 'anonymisation', now(), $3)
        "#,
        Uuid::now_v7(),
        user_id,
        details
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(%user_id, "account anonymised on request");
    Ok(())
}
