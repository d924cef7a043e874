//! `cart-worker orders timeline` against a real database and a running worker: an order paid
//! through a signed webhook that the worker reconciles, whose NF-e the provider refuses (its
//! item has no NCM), read as a table and as JSON, by number and by id.

use std::time::Duration;

use cart_core::{
    orders::timeline::{self, Level, Source},
    payments::{
        flow::{self, PaymentMethod, PaymentSettings},
        sandbox::txid_for,
        signature::sign_propay,
        webhooks::{self, PROPAY_PIX_PAID, SignatureHeaders, WebhookSource},
    },
    testing::TEST_PROPAY_SECRET,
};
use cart_worker::cli::{self, Cli, CliError, Ctx};
use clap::Parser;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    helpers::{self, wait_for},
    orders::unpaid_order,
};

/// Runs `cart-worker orders <args>`, as the binary does, into a buffer.
async fn orders(pool: &PgPool, args: &[&str]) -> (Result<(), CliError>, String) {
    let argv = ["cart-worker", "orders"]
        .into_iter()
        .chain(args.iter().copied());
    let command = Cli::try_parse_from(argv).unwrap().command.unwrap();
    let registry = helpers::registry();
    let mut out = Vec::new();
    let mut input: &[u8] = b"";
    let result = {
        let mut ctx = Ctx {
            pool,
            registry: &registry,
            actor: None,
            out: &mut out,
            input: &mut input,
        };
        cli::run_operator(command, &mut ctx).await
    };
    (result, String::from_utf8(out).unwrap())
}

async fn ok(pool: &PgPool, args: &[&str]) -> String {
    let (result, out) = orders(pool, args).await;
    if let Err(e) = result {
        panic!("orders {args:?} failed: {e}\n{out}");
    }
    out
}

/// The order paid in full by PIX, its payment confirmed by the provider's webhook: what the
/// worker has left behind once every job has run.
async fn paid_through_the_worker(pool: &PgPool) -> (Uuid, String, String) {
    let order_id = unpaid_order(pool, chrono::Duration::minutes(30)).await;
    let (user_id, number, email, total): (Uuid, String, String, i64) = sqlx::query_as(
        "SELECT o.user_id, o.number, u.email, o.total_cents
         FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
    .unwrap();
    let settings = PaymentSettings::for_tests();
    let payment_id = {
        let mut conn = pool.acquire().await.unwrap();
        flow::start(&mut conn, &settings, user_id, order_id, PaymentMethod::Pix)
            .await
            .unwrap()
            .payment()
            .id
    };
    let runtime = helpers::start(pool);
    wait_for("the PIX charge", Duration::from_secs(20), || async {
        let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(pool)
            .await
            .unwrap();
        status == "pending"
    })
    .await;
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": format!("ev-{payment_id}"),
        "event": PROPAY_PIX_PAID,
        "txid": txid_for(payment_id),
        "amount_cents": total,
        "paid_at": chrono::Utc::now(),
    }))
    .unwrap();
    let signature = sign_propay(TEST_PROPAY_SECRET.as_bytes(), &body);
    let headers = SignatureHeaders {
        propay: Some(&signature),
        ..Default::default()
    };
    let mut conn = pool.acquire().await.unwrap();
    webhooks::ingest(
        &mut conn,
        &settings.verifiers,
        WebhookSource::ProPay,
        &headers,
        &body,
    )
    .await
    .unwrap();
    // Reconciled, the e-mail sent, the NF-e refused: the timeline says when it is all over.
    wait_for("every job to end", Duration::from_secs(30), || async {
        let story = timeline::timeline(pool, order_id).await.unwrap().unwrap();
        let ended = |source: Source, text: &str| {
            story
                .entries
                .iter()
                .any(|e| e.source == source && e.summary.contains(text))
        };
        ended(Source::Email, ": sent") && ended(Source::Job, "emit_invoice: failed")
    })
    .await;
    runtime.shutdown().await;
    (order_id, number, email)
}

#[sqlx::test(migrations = false)]
async fn the_timeline_of_an_order_shows_every_record_and_what_failed(pool: PgPool) {
    helpers::setup(&pool).await;
    let (order_id, number, email) = paid_through_the_worker(&pool).await;

    // By number, in any case.
    let out = ok(
        &pool,
        &[
            "timeline",
            &format!("  {}  ", number.to_lowercase()),
            "--json",
        ],
    )
    .await;
    let story: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(story["order"]["id"], order_id.to_string());
    assert_eq!(story["order"]["number"], number.as_str());
    assert_eq!(story["order"]["status"], "processing");
    assert_eq!(story["order"]["payment_status"], "paid");
    assert_eq!(story["order"]["buyer_email"], email.as_str());
    let entries = story["entries"].as_array().unwrap();
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let with = |source: &str, text: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["source"] == source && e["summary"].as_str().unwrap().contains(text))
            .collect()
    };
    assert_eq!(with("order", "placed").len(), 1);
    assert_eq!(with("order", "payment confirmed").len(), 1);
    assert_eq!(with("payment", "paid R$").len(), 1);
    assert_eq!(with("webhook", "reconciled: paid").len(), 1);
    let rejected = with("invoice", "NF-e rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["level"], "error");
    assert!(
        rejected[0]["summary"].as_str().unwrap().contains("NCM"),
        "{}",
        rejected[0]["summary"]
    );

    // The jobs that served it, directly and through its payment and webhook event.
    for kind in ["initiate_payment", "reconcile_payment", "emit_invoice"] {
        let jobs = with("job", &format!("{kind}: "));
        assert_eq!(jobs.len(), 1, "{kind}: {entries:#?}");
        assert_eq!(jobs[0]["details"]["kind"], kind);
    }
    assert_eq!(with("job", "initiate_payment: done").len(), 1);
    assert_eq!(with("job", "reconcile_payment: done").len(), 1);
    let emission = with("job", "emit_invoice: failed for good after attempt 1 of");
    assert_eq!(emission.len(), 1);
    assert_eq!(emission[0]["level"], "error");
    assert!(
        emission[0]["details"]["last_error"]
            .as_str()
            .unwrap()
            .contains("NCM")
    );

    // The e-mail: what and to whom, masked; never the address itself.
    let emails = with("email", "payment_confirmed e-mail to ");
    assert_eq!(emails.len(), 1, "{entries:#?}");
    let masked = format!("{}***@example.com", &email[..1]);
    assert_eq!(emails[0]["details"]["to"], masked.as_str());
    assert_eq!(emails[0]["details"]["tag"], "payment_confirmed");
    assert_eq!(emails[0]["details"]["state"], "done");
    assert!(
        emails[0]["details"]["subject"]
            .as_str()
            .unwrap()
            .contains(&number)
    );
    assert!(
        !serde_json::to_string(&story["entries"])
            .unwrap()
            .contains(&email)
    );

    // By id, as a table: the header, then one line per entry, what failed marked.
    let table = ok(&pool, &["timeline", &order_id.to_string()]).await;
    assert!(
        table.contains(&format!("order          {number} ({order_id})")),
        "{table}"
    );
    assert!(table.contains("status         processing, paid"), "{table}");
    assert!(
        table.contains(&format!("buyer          {email}")),
        "{table}"
    );
    assert!(table.contains("errors         2"), "{table}");
    assert!(
        table.contains("TIME") && table.contains("SOURCE") && table.contains("WHAT HAPPENED"),
        "{table}"
    );
    let rejected_line = table
        .lines()
        .find(|l| l.contains("NF-e rejected"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        rejected_line.contains("ERROR") && rejected_line.contains("invoice"),
        "{table}"
    );
    assert!(
        table.contains(&format!("payment_confirmed e-mail to {masked}: sent")),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains(" | ")).count(),
        entries.len() + 1,
        "a header row and one row per entry: {table}"
    );

    // The core view and the CLI's JSON are one and the same.
    let core = timeline::timeline(&pool, order_id).await.unwrap().unwrap();
    assert_eq!(core.entries.len(), entries.len());
    assert_eq!(
        core.entries
            .iter()
            .filter(|e| e.level == Level::Error)
            .count(),
        2
    );
}

#[sqlx::test(migrations = false)]
async fn an_unknown_order_is_not_found(pool: PgPool) {
    helpers::setup(&pool).await;
    for reference in [Uuid::now_v7().to_string(), "CART-00000000".to_owned()] {
        let (result, out) = orders(&pool, &["timeline", &reference]).await;
        let err = result.expect_err(&reference);
        assert_eq!(err.exit_code(), 3, "{reference}: {err}");
        assert!(err.to_string().contains(&reference), "{err}");
        assert!(out.is_empty(), "{out}");
    }
    assert!(Cli::try_parse_from(["cart-worker", "orders", "timeline"]).is_err());
}
