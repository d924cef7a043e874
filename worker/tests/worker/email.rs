//! The e-mail job against a recording mailer: sent once with the job id as idempotency key,
//! provider outages retried, rejections failed at once.

use std::{sync::Arc, time::Duration};

use cart_core::{
    http_client::ProviderError,
    jobs::send_email::SendEmail,
    mail::templates::{Branding, PasswordReset, Templates},
};
use cart_worker::Runtime;
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
    SendEmail { message, key: None }
}

fn start(pool: &PgPool, mailer: Arc<RecordingMailer>) -> Runtime {
    Runtime::start(
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
