//! `cart-worker jobs …` against a real database, through the same parser and code the binary
//! uses, with the terminal replaced by buffers.

use std::time::Duration;

use cart_worker::cli::{self, Cli, CliError, Command, Ctx};
use clap::Parser;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{self, record, runs, wait_for_status};

/// Runs `cart-worker jobs <args>` as operator "tester", typing `input` at any prompt.
pub(crate) async fn jobs(
    pool: &PgPool,
    args: &[&str],
    input: &str,
) -> (Result<(), CliError>, String) {
    let argv = ["cart-worker", "jobs", "--actor", "tester"]
        .into_iter()
        .chain(args.iter().copied());
    let Some(Command::Jobs(parsed)) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not a jobs command");
    };
    let registry = helpers::registry();
    let mut out = Vec::new();
    let mut input = input.as_bytes();
    let result = {
        let mut ctx = Ctx {
            pool,
            registry: &registry,
            actor: cli::actor(parsed.actor).unwrap(),
            out: &mut out,
            input: &mut input,
        };
        cli::run_jobs(parsed.command, &mut ctx).await
    };
    (result, String::from_utf8(out).unwrap())
}

pub(crate) async fn ok(pool: &PgPool, args: &[&str]) -> String {
    let (result, out) = jobs(pool, args, "").await;
    if let Err(e) = result {
        panic!("jobs {args:?} failed: {e}\n{out}");
    }
    out
}

pub(crate) async fn exit_code(pool: &PgPool, args: &[&str], input: &str) -> u8 {
    jobs(pool, args, input)
        .await
        .0
        .map_or_else(|e| e.exit_code(), |()| 0)
}

/// A test job forced into a state.
async fn job_in(pool: &PgPool, key: &str, status: &str, attempts: i32) -> String {
    let id = helpers::enqueue(pool, &record(key)).await;
    sqlx::query(
        r#"UPDATE apalis.jobs SET status = $2, attempts = $3,
                  last_result = CASE WHEN $2 IN ('Failed', 'Killed')
                                     THEN '{"Err": "boom"}'::jsonb END,
                  done_at = CASE WHEN $2 IN ('Done', 'Failed', 'Killed') THEN now() END
           WHERE id = $1"#,
    )
    .bind(&id)
    .bind(status)
    .bind(attempts)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn audit(pool: &PgPool) -> Vec<(String, String, Vec<String>, Value)> {
    sqlx::query_as("SELECT actor, action, job_ids, details FROM operator_audit ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn stats_counts_jobs_by_kind_and_state(pool: PgPool) {
    helpers::setup(&pool).await;
    job_in(&pool, "a", "Pending", 0).await;
    job_in(&pool, "b", "Pending", 0).await;
    job_in(&pool, "c", "Done", 1).await;
    job_in(&pool, "d", "Failed", 3).await;
    job_in(&pool, "e", "Failed", 1).await;
    job_in(&pool, "f", "Killed", 1).await;

    let out = ok(&pool, &["stats", "--json"]).await;
    let stats: Vec<Value> = serde_json::from_str(&out).unwrap();
    let test_record = stats.iter().find(|s| s["kind"] == "test_record").unwrap();
    assert_eq!(test_record["pending"], 2);
    assert_eq!(test_record["done"], 1);
    assert_eq!(test_record["retrying"], 1);
    assert_eq!(test_record["failed"], 2);
    assert!(test_record["oldest_pending_secs"].as_i64().unwrap() >= 0);
    // Registered kinds without jobs are listed too.
    assert!(
        stats
            .iter()
            .any(|s| s["kind"] == "send_email" && s["pending"] == 0)
    );

    let table = ok(&pool, &["stats"]).await;
    assert!(
        table.contains("KIND") && table.contains("OLDEST PENDING"),
        "{table}"
    );
    assert!(table.contains("test_record"), "{table}");
}

#[sqlx::test(migrations = false)]
async fn list_filters_by_state_kind_age_and_limit(pool: PgPool) {
    helpers::setup(&pool).await;
    let failed = job_in(&pool, "x", "Killed", 1).await;
    let pending = job_in(&pool, "y", "Pending", 0).await;
    let newest = job_in(&pool, "z", "Pending", 0).await;

    let out = ok(&pool, &["list", "--state", "failed", "--json"]).await;
    let jobs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], failed.as_str());
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["last_error"], "boom");

    let out = ok(
        &pool,
        &["list", "--state", "pending", "--limit", "1", "--json"],
    )
    .await;
    let jobs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], newest.as_str(), "newest first");

    let out = ok(&pool, &["list", "--kind", "send_email", "--json"]).await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 0);

    let out = ok(&pool, &["list", "--since", "1h", "--json"]).await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 3);
    let out = ok(
        &pool,
        &["list", "--since", "2999-01-01T00:00:00Z", "--json"],
    )
    .await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&out).unwrap().len(), 0);

    let table = ok(&pool, &["list"]).await;
    assert!(
        table.contains(&pending) && table.contains("ATTEMPTS"),
        "{table}"
    );
    assert!(
        ok(&pool, &["list", "--kind", "nothing"])
            .await
            .contains("no jobs match")
    );
}

#[sqlx::test(migrations = false)]
async fn show_prints_payload_attempts_and_failure_history(pool: PgPool) {
    helpers::setup(&pool).await;
    let id =
        cart_core::request_id::scope("req-show".into(), helpers::enqueue(&pool, &record("shown")))
            .await;
    sqlx::query(
        "INSERT INTO job_failures (job_id, kind, attempt, error, permanent, retry_at)
         VALUES ($1, 'test_record', 1, 'first failure', false, now()),
                ($1, 'test_record', 2, 'second failure', true, NULL)",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .unwrap();

    let out = ok(&pool, &["show", &id, "--json"]).await;
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["kind"], "test_record");
    assert_eq!(job["payload"]["key"], "shown");
    assert_eq!(job["request_id"], "req-show");
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["failures"].as_array().unwrap().len(), 2);
    assert_eq!(job["failures"][1]["error"], "second failure");

    let text = ok(&pool, &["show", &id.to_lowercase()]).await;
    assert!(text.contains("\"key\": \"shown\""), "{text}");
    assert!(
        text.contains("first failure") && text.contains("FAILED AT"),
        "{text}"
    );

    assert_eq!(
        exit_code(&pool, &["show", "01JDQ3N0000000000000000000"], "").await,
        3
    );
    assert_eq!(exit_code(&pool, &["show", "not-an-id"], "").await, 2);
}

#[sqlx::test(migrations = false)]
async fn a_job_that_failed_for_good_is_listed_as_failed_and_runs_again_after_retry(pool: PgPool) {
    helpers::setup(&pool).await;
    helpers::fail_next(&pool, "stubborn", 1000).await;
    let id = helpers::enqueue(&pool, &record("stubborn")).await;

    let runtime = helpers::start(&pool);
    crate::helpers::wait_for(
        "all of the kind's attempts to fail",
        Duration::from_secs(20),
        || async { helpers::status(&pool, &id).await == ("Failed".into(), 3) },
    )
    .await;

    let out = ok(&pool, &["list", "--state", "failed", "--json"]).await;
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["attempts"], 3);

    // The cause is fixed; the operator retries it.
    helpers::fail_next(&pool, "stubborn", 0).await;
    assert!(ok(&pool, &["retry", &id]).await.contains("retried 1 job"));
    wait_for_status(&pool, &id, "Done", Duration::from_secs(15)).await;
    runtime.shutdown().await;

    assert_eq!(runs(&pool, "stubborn").await, 1);
    assert_eq!(helpers::status(&pool, &id).await, ("Done".into(), 1));
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM job_failures WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(history, 3, "the failure history is kept");
    let audit = audit(&pool).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].0.as_str(), audit[0].1.as_str()),
        ("tester", "jobs.retry")
    );
    assert_eq!(audit[0].2, vec![id]);
}

#[sqlx::test(migrations = false)]
async fn retry_refuses_unknown_and_unfailed_jobs_and_changes_nothing(pool: PgPool) {
    helpers::setup(&pool).await;
    let failed = job_in(&pool, "f", "Killed", 1).await;
    let running = job_in(&pool, "r", "Running", 1).await;

    assert_eq!(
        exit_code(&pool, &["retry", &failed, &running, "--yes"], "").await,
        4
    );
    assert_eq!(
        exit_code(
            &pool,
            &["retry", &failed, "01JDQ3N0000000000000000000", "--yes"],
            ""
        )
        .await,
        3
    );
    assert_eq!(exit_code(&pool, &["retry", "oops"], "").await, 2);
    assert_eq!(helpers::status(&pool, &failed).await.0, "Killed");
    assert!(audit(&pool).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn retry_all_failed_asks_first_and_honours_kind_and_dry_run(pool: PgPool) {
    helpers::setup(&pool).await;
    let a = job_in(&pool, "a", "Killed", 1).await;
    let b = job_in(&pool, "b", "Failed", 3).await;
    let retrying = job_in(&pool, "c", "Failed", 1).await;

    let out = ok(&pool, &["retry", "--all-failed", "--dry-run"]).await;
    assert!(
        out.contains("would retry 2 job(s)") && out.contains(&a) && out.contains(&b),
        "{out}"
    );
    assert!(
        !out.contains(&retrying),
        "a job still retrying is not failed"
    );
    assert_eq!(helpers::status(&pool, &a).await.0, "Killed");

    let (result, out) = jobs(&pool, &["retry", "--all-failed"], "n\n").await;
    assert!(matches!(result, Err(CliError::Cancelled)), "{out}");
    assert!(out.contains("Retry 2 job(s)? [y/N]"), "{out}");
    assert_eq!(helpers::status(&pool, &b).await.0, "Failed");

    let out = ok(
        &pool,
        &["retry", "--all-failed", "--kind", "send_email", "--yes"],
    )
    .await;
    assert!(out.contains("no failed jobs"), "{out}");

    let (result, _) = jobs(
        &pool,
        &["retry", "--all-failed", "--kind", "test_record"],
        "y\n",
    )
    .await;
    result.unwrap();
    for id in [&a, &b] {
        assert_eq!(helpers::status(&pool, id).await, ("Pending".into(), 0));
    }
    assert_eq!(helpers::status(&pool, &retrying).await.0, "Failed");
    let audit = audit(&pool).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].2.len(), 2);
    assert_eq!(audit[0].3["kind"], "test_record");
}

#[sqlx::test(migrations = false)]
async fn discard_deletes_waiting_or_failed_jobs_and_audits_what_it_deleted(pool: PgPool) {
    helpers::setup(&pool).await;
    let pending = job_in(&pool, "p", "Pending", 0).await;
    let failed = job_in(&pool, "f", "Killed", 1).await;
    let running = job_in(&pool, "r", "Running", 1).await;
    let done = job_in(&pool, "d", "Done", 1).await;

    assert_eq!(exit_code(&pool, &["discard", &running], "").await, 4);
    assert_eq!(exit_code(&pool, &["discard", &done], "").await, 4);
    assert_eq!(
        exit_code(&pool, &["discard", &pending, &failed], "no\n").await,
        5
    );

    let out = ok(&pool, &["discard", &pending]).await;
    assert!(out.contains("discarded 1 job"), "{out}");
    let (result, _) = jobs(&pool, &["discard", &failed, &running], "y\n").await;
    assert_eq!(
        result.unwrap_err().exit_code(),
        4,
        "one refused job stops all"
    );
    ok(&pool, &["discard", &failed, "--yes"]).await;

    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, vec![running.clone(), done.clone()]);
    let audit = audit(&pool).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].1, "jobs.discard");
    assert_eq!(audit[0].2, vec![pending]);
    assert_eq!(audit[0].3["jobs"][0]["envelope"]["payload"]["key"], "p");
    assert_eq!(audit[1].3["jobs"][0]["last_error"], "boom");
}

#[sqlx::test(migrations = false)]
async fn enqueue_checks_the_kind_and_payload_and_audits_the_new_job(pool: PgPool) {
    helpers::setup(&pool).await;
    assert_eq!(
        exit_code(&pool, &["enqueue", "nope", "--payload", "{}"], "").await,
        2
    );
    assert_eq!(
        exit_code(
            &pool,
            &["enqueue", "test_record", "--payload", "{not json"],
            ""
        )
        .await,
        2
    );
    assert_eq!(
        exit_code(
            &pool,
            &["enqueue", "test_record", "--payload", r#"{"key": 5}"#],
            ""
        )
        .await,
        2
    );

    let out = ok(
        &pool,
        &[
            "enqueue",
            "test_record",
            "--payload",
            r#"{"key": "manual"}"#,
        ],
    )
    .await;
    let id = out.trim().rsplit(' ').next().unwrap().to_owned();
    let (bytes, max_attempts): (Vec<u8>, i32) =
        sqlx::query_as("SELECT job, max_attempts FROM apalis.jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let envelope: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(envelope["payload"]["key"], "manual");
    assert!(envelope["request_id"].as_str().unwrap().starts_with("cli-"));
    assert_eq!(max_attempts, 3);

    let tick = r#"{"tick": "2026-11-25T12:00:00Z"}"#;
    ok(&pool, &["enqueue", "test_tick", "--payload", tick]).await;
    assert_eq!(
        exit_code(&pool, &["enqueue", "test_tick", "--payload", tick], "").await,
        4,
        "the same tick twice is a duplicate"
    );
    let audit = audit(&pool).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].1, "jobs.enqueue");
    assert_eq!(audit[0].2, vec![id]);
    assert_eq!(audit[0].3["payload"]["key"], "manual");

    // A kind that works for an order says so in the stored envelope, as when the API enqueues.
    let order_id = "0193a0b2-5c4d-7e8f-9a0b-1c2d3e4f5a6b";
    let payload = format!(r#"{{"order_id": "{order_id}"}}"#);
    ok(&pool, &["enqueue", "expire_order", "--payload", &payload]).await;
    let stored: serde_json::Value = sqlx::query_scalar(
        "SELECT convert_from(job, 'UTF8')::jsonb FROM apalis.jobs WHERE job_type = 'expire_order'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored["order_id"], order_id);
}
