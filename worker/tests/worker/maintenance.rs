//! The prune job: what it deletes and what it keeps.

use std::sync::Arc;

use cart_core::jobs::maintenance::PruneJobs;
use cart_queue::{Handler, Run};
use cart_worker::Deps;
use sqlx::PgPool;

use crate::helpers::{self, RecordingMailer};

/// A test job forced into `status`, finished `age` ago.
async fn job(pool: &PgPool, status: &str, attempts: i32, age: &str) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let raw = cart_queue::Encoded::raw("test_record", b"{}".to_vec(), 3, None);
    let id = cart_queue::enqueue(&mut conn, &raw).await.unwrap().unwrap();
    drop(conn);
    sqlx::query(
        "UPDATE apalis.jobs SET status = $2, attempts = $3,
                done_at = CASE WHEN $2 = 'Pending' THEN NULL ELSE now() - $4::interval END
         WHERE id = $1",
    )
    .bind(&id)
    .bind(status)
    .bind(attempts)
    .bind(age)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn exists(pool: &PgPool, id: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM apalis.jobs WHERE id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn pruning_deletes_old_finished_jobs_in_batches_and_keeps_the_rest(pool: PgPool) {
    helpers::setup(&pool).await;
    let mut old_done = Vec::new();
    for _ in 0..5 {
        old_done.push(job(&pool, "Done", 1, "25 hours").await);
    }
    let recent_done = job(&pool, "Done", 1, "1 hour").await;
    let old_killed = job(&pool, "Killed", 1, "15 days").await;
    let old_exhausted = job(&pool, "Failed", 3, "15 days").await;
    let recent_failed = job(&pool, "Killed", 1, "13 days").await;
    let old_retrying = job(&pool, "Failed", 1, "15 days").await;
    let pending = job(&pool, "Pending", 0, "0").await;
    sqlx::query(
        "INSERT INTO job_failures (job_id, kind, attempt, error) VALUES ($1, 'test_record', 1, 'x')",
    )
    .bind(&old_killed)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen)
         VALUES ('gone-1', 'test_record', 'PgStorage', now() - interval '2 days'),
                ('alive-1', 'test_record', 'PgStorage', now())",
    )
    .execute(&pool)
    .await
    .unwrap();

    let deps = Deps {
        settings: Arc::new(cart_worker::JobSettings {
            prune_batch: 2,
            ..helpers::settings()
        }),
        ..helpers::deps(&pool, Arc::new(RecordingMailer::default()))
    };
    let run = Run {
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 3,
        request_id: "test".into(),
    };
    PruneJobs {
        tick: chrono::Utc::now(),
    }
    .run(&deps, &run)
    .await
    .unwrap();

    for id in old_done.iter().chain([&old_killed, &old_exhausted]) {
        assert!(!exists(&pool, id).await, "{id} should be pruned");
    }
    for id in [&recent_done, &recent_failed, &old_retrying, &pending] {
        assert!(exists(&pool, id).await, "{id} should be kept");
    }
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM job_failures")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failures, 0, "a pruned job's history goes with it");
    let workers: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.workers ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(workers, vec!["alive-1".to_owned()]);
}

#[sqlx::test(migrations = false)]
async fn purging_reset_tokens_keeps_only_the_usable_ones(pool: PgPool) {
    helpers::setup(&pool).await;
    sqlx::query(
        "INSERT INTO users (id, name, email, password_hash)
         VALUES ('00000000-0000-7000-8000-000000000001', 'Ana', 'ana@example.com', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (id, expires, used) in [
        ("00000000-0000-7000-8000-0000000000a1", "1 hour", false),
        ("00000000-0000-7000-8000-0000000000a2", "-1 minute", false),
        ("00000000-0000-7000-8000-0000000000a3", "1 hour", true),
    ] {
        sqlx::query(
            "INSERT INTO password_reset_tokens (id, user_id, token_hash, expires_at, used_at)
             VALUES ($1::uuid, '00000000-0000-7000-8000-000000000001',
                     sha256($1::bytea), now() + $2::interval,
                     CASE WHEN $3 THEN now() END)",
        )
        .bind(id)
        .bind(expires)
        .bind(used)
        .execute(&pool)
        .await
        .unwrap();
    }
    let deps = helpers::deps(&pool, Arc::new(RecordingMailer::default()));
    let run = Run {
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 3,
        request_id: "test".into(),
    };
    cart_core::jobs::maintenance::PurgeResetTokens {
        tick: chrono::Utc::now(),
    }
    .run(&deps, &run)
    .await
    .unwrap();

    let left: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM password_reset_tokens ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        vec!["00000000-0000-7000-8000-0000000000a1".to_owned()]
    );
}

#[sqlx::test(migrations = false)]
async fn purging_sessions_keeps_only_the_open_ones(pool: PgPool) {
    helpers::setup(&pool).await;
    sqlx::query(
        "INSERT INTO users (id, name, email, password_hash)
         VALUES ('00000000-0000-7000-8000-000000000001', 'Ana', 'ana@example.com', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (id, expires, revoked) in [
        ("00000000-0000-7000-8000-0000000000b1", "1 hour", false),
        ("00000000-0000-7000-8000-0000000000b2", "-1 minute", false),
        ("00000000-0000-7000-8000-0000000000b3", "1 hour", true),
    ] {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, expires_at, revoked_at)
             VALUES ($1::uuid, '00000000-0000-7000-8000-000000000001',
                     now() + $2::interval, CASE WHEN $3 THEN now() END)",
        )
        .bind(id)
        .bind(expires)
        .bind(revoked)
        .execute(&pool)
        .await
        .unwrap();
    }
    let deps = Deps {
        settings: Arc::new(cart_worker::JobSettings {
            prune_batch: 1,
            ..helpers::settings()
        }),
        ..helpers::deps(&pool, Arc::new(RecordingMailer::default()))
    };
    let run = Run {
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 3,
        request_id: "test".into(),
    };
    cart_core::jobs::maintenance::PurgeSessions {
        tick: chrono::Utc::now(),
    }
    .run(&deps, &run)
    .await
    .unwrap();

    let left: Vec<String> = sqlx::query_scalar("SELECT id::text FROM sessions ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec!["00000000-0000-7000-8000-0000000000b1".to_owned()]
    );
}

#[sqlx::test(migrations = false)]
async fn purging_abandoned_carts_keeps_the_recent_ones(pool: PgPool) {
    helpers::setup(&pool).await;
    for (id, email, age) in [
        (
            "00000000-0000-7000-8000-000000000001",
            "old@example.com",
            "31 days",
        ),
        (
            "00000000-0000-7000-8000-000000000002",
            "new@example.com",
            "29 days",
        ),
    ] {
        sqlx::query(
            "INSERT INTO users (id, name, email, password_hash) VALUES ($1::uuid, 'U', $2, 'x')",
        )
        .bind(id)
        .bind(email)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO carts (user_id, updated_at) VALUES ($1::uuid, now() - $2::interval)",
        )
        .bind(id)
        .bind(age)
        .execute(&pool)
        .await
        .unwrap();
    }
    let deps = helpers::deps(&pool, Arc::new(RecordingMailer::default()));
    let run = Run {
        job_id: "test".into(),
        attempt: 1,
        max_attempts: 3,
        request_id: "test".into(),
    };
    cart_core::jobs::maintenance::PurgeAbandonedCarts {
        tick: chrono::Utc::now(),
    }
    .run(&deps, &run)
    .await
    .unwrap();

    let left: Vec<String> = sqlx::query_scalar("SELECT user_id::text FROM carts")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        left,
        vec!["00000000-0000-7000-8000-000000000002".to_owned()],
        "only the cart untouched for more than CART_TTL (30 days) goes"
    );
}
