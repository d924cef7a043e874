//! The e-mail job against a recording mailer: sent once with the job id as idempotency key,
//! provider outages retried, rejections failed at once; reset links derived when sent.

use std::{sync::Arc, time::Duration};

use cart_core::{
    http_client::ProviderError,
    jobs::{send_email::SendEmail, send_password_reset::SendPasswordReset},
    mail::templates::{Branding, PasswordReset, Templates},
    users::password_reset::{self, ResetKey},
};
use cart_queue::{Handler, Run, Runtime};
use sqlx::PgPool;

use crate::helpers::{self, RecordingMailer, status, wait_for_status};

const SOON: Duration = Duration::from_secs(15);

fn reset_email() -> SendEmail {
    let templates = Templates::new(Branding::new("Loja", "https://loja.example")).unwrap();
    let message = templates
        .password_reset(
            "ana@example.com",
            &PasswordReset {
                name: "Ana".into(),
                token: "tok".into(),
                valid_for: Duration::from_secs(3600),
            },
        )
        .unwrap();
    SendEmail {
        message,
        key: None,
        order_id: None,
    }
}

fn start(pool: &PgPool, mailer: Arc<RecordingMailer>) -> Runtime {
    cart_worker::start(
        &helpers::registry(),
        &helpers::config(),
        helpers::deps(pool, mailer),
    )
}

#[sqlx::test(migrations = false)]
async fn an_email_is_sent_once_with_the_job_id_as_idempotency_key(pool: PgPool) {
    helpers::setup(&pool).await;
    let mailer = Arc::new(RecordingMailer::default());
    let email = reset_email();
    let id = helpers::enqueue(&pool, &email).await;

    let runtime = start(&pool, mailer.clone());
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;

    assert_eq!(mailer.sent(), vec![(email.message, id)]);
}

#[sqlx::test(migrations = false)]
async fn a_provider_outage_is_retried_and_a_rejection_fails_at_once(pool: PgPool) {
    helpers::setup(&pool).await;
    let outage = Arc::new(RecordingMailer::failing_with([
        ProviderError::Unavailable("503 Service Unavailable".into()),
        ProviderError::Unavailable("429 Too Many Requests".into()),
    ]));
    let id = helpers::enqueue(&pool, &reset_email()).await;
    let runtime = start(&pool, outage.clone());
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;
    assert_eq!(status(&pool, &id).await, ("Done".into(), 3));
    assert_eq!(outage.sent().len(), 1);

    let rejecting = Arc::new(RecordingMailer::failing_with([ProviderError::Rejected {
        status: 422,
        message: "invalid recipient".into(),
    }]));
    let id = helpers::enqueue(&pool, &reset_email()).await;
    let runtime = start(&pool, rejecting.clone());
    wait_for_status(&pool, &id, "Killed", SOON).await;
    runtime.shutdown().await;
    assert_eq!(status(&pool, &id).await, ("Killed".into(), 1));
    assert!(rejecting.sent().is_empty());
    let error: String = sqlx::query_scalar("SELECT error FROM job_failures WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.contains("invalid recipient"), "{error}");
}

#[sqlx::test(migrations = false)]
async fn an_email_with_a_key_is_enqueued_once(pool: PgPool) {
    helpers::setup(&pool).await;
    let email = SendEmail {
        key: Some("payment_confirmed:pay-1".into()),
        ..reset_email()
    };
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        cart_core::jobs::enqueue(&mut conn, &email)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cart_core::jobs::enqueue(&mut conn, &email)
            .await
            .unwrap()
            .is_none()
    );
}

/// A customer with a pending reset request made under `key`; answers the request id.
async fn reset_requested(pool: &PgPool, key: &ResetKey) -> uuid::Uuid {
    sqlx::query(
        "INSERT INTO users (id, name, email, password_hash)
         VALUES ('00000000-0000-7000-8000-000000000001', 'Ana Souza', 'ana@example.com', 'x')",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    password_reset::request_reset(
        &mut conn,
        password_reset::ForgotPassword {
            email: "ana@example.com".into(),
        },
        key,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    sqlx::query_scalar("SELECT id FROM password_reset_tokens")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn run(job_id: &str) -> Run {
    Run {
        job_id: job_id.into(),
        attempt: 1,
        max_attempts: 10,
        request_id: "test".into(),
    }
}

#[sqlx::test(migrations = false)]
async fn a_retried_reset_job_sends_the_same_link_under_the_same_key(pool: PgPool) {
    helpers::setup(&pool).await;
    let key = ResetKey::derive(helpers::RESET_SECRET);
    let reset_id = reset_requested(&pool, &key).await;
    let mailer = Arc::new(RecordingMailer::default());
    let deps = helpers::deps(&pool, mailer.clone());
    for _ in 0..2 {
        SendPasswordReset { reset_id }
            .run(&deps, &run("job-1"))
            .await
            .unwrap();
    }
    let sent = mailer.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1]);
    let (message, idempotency_key) = &sent[0];
    assert_eq!(idempotency_key, "job-1");
    assert_eq!(message.to, "ana@example.com");
    assert_eq!(message.tag, "password_reset");
    assert!(message.text.contains("Olá, Ana!"), "{}", message.text);
    assert!(message.text.contains("1 hora"), "{}", message.text);
    assert!(
        message
            .text
            .contains(&format!("?token={}", key.token_for(reset_id))),
        "{}",
        message.text
    );
}

#[sqlx::test(migrations = false)]
async fn after_a_jwt_secret_change_an_old_reset_request_sends_nothing(pool: PgPool) {
    helpers::setup(&pool).await;
    let before = ResetKey::derive(b"the-secret-before-the-rotation-0123456789");
    let reset_id = reset_requested(&pool, &before).await;
    let mailer = Arc::new(RecordingMailer::default());
    // The worker now runs with the new secret (helpers::RESET_SECRET).
    let deps = helpers::deps(&pool, mailer.clone());
    SendPasswordReset { reset_id }
        .run(&deps, &run("job-1"))
        .await
        .unwrap();
    assert!(
        mailer.sent().is_empty(),
        "a link that cannot work is not sent"
    );
}
