//! The operator board (`/board`) through the worker's router, against a real database:
//! sign-in, sessions and CSRF, the pages, retry and discard with their audit rows, and
//! redaction.

use axum::{
    Router,
    body::Body,
    http::{Method, Request, header},
};
use cart_queue::{Encoded, Envelope, Origin, Serves};
use cart_worker::board::BoardConfig;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;

use cart_worker::jobs::testing::Record;

use crate::helpers::{self, record};

const TOKEN: &str = "board-test-token-0123456789abcdef";

fn router(pool: &PgPool) -> Router {
    let board = BoardConfig::new(TOKEN).unwrap();
    cart_worker::http::router(pool.clone(), cart_worker::metrics::install(), Some(&board)).unwrap()
}

struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn send(pool: &PgPool, request: Request<Body>) -> Answer {
    let response = router(pool).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(pool: &PgPool, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(pool, request.body(Body::empty()).unwrap()).await
}

async fn post(pool: &PgPool, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    send(pool, request.body(Body::from(body)).unwrap()).await
}

/// Signs in as an operator would; answers the `Cookie` header the browser would send.
async fn sign_in(pool: &PgPool) -> String {
    let answer = post(pool, "/board/login", None, &[("token", TOKEN)]).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let set = answer.header(header::SET_COOKIE).to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token in the forms of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A test job that failed for good, with one recorded failure.
async fn failed_job(pool: &PgPool, key: &str) -> String {
    let id = helpers::enqueue(pool, &record(key)).await;
    fail(pool, &id, "test job asked to fail").await;
    id
}

async fn fail(pool: &PgPool, id: &str, error: &str) {
    sqlx::query(
        r#"UPDATE apalis.jobs SET status = 'Killed', attempts = max_attempts, done_at = now(),
                  last_result = jsonb_build_object('Err', $2::text)
           WHERE id = $1"#,
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_failures (job_id, kind, attempt, error, permanent)
         SELECT id, job_type, attempts, $2, true FROM apalis.jobs WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .unwrap();
}

async fn state_of(pool: &PgPool, id: &str) -> Option<String> {
    cart_queue::admin::targets(pool, &[id.to_owned()])
        .await
        .unwrap()
        .pop()
        .map(|target| target.state)
}

/// (actor, action, job ids, details) of every audit row, oldest first.
async fn audit(pool: &PgPool) -> Vec<(String, String, Vec<String>, Value)> {
    sqlx::query_as("SELECT actor, action, job_ids, details FROM operator_audit ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn without_a_session_every_page_and_action_is_refused(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = failed_job(&pool, "refused").await;
    let id = id.as_str();
    let valid = sign_in(&pool).await;
    let page = get(&pool, &format!("/board/jobs/{id}"), Some(&valid)).await;
    let csrf = csrf_of(&page.body);
    let csrf = csrf.as_str();

    // No cookie, a made-up one, and a genuine one from a board with another token.
    let other_token = {
        let board = BoardConfig::new("another-board-token-0123456789abcdef").unwrap();
        let router =
            cart_worker::http::router(pool.clone(), cart_worker::metrics::install(), Some(&board))
                .unwrap();
        let answer = router
            .oneshot(
                Request::post("/board/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("token=another-board-token-0123456789abcdef"))
                    .unwrap(),
            )
            .await
            .unwrap();
        let set = answer.headers()[header::SET_COOKIE].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    };
    let forged = format!(
        "cart_board=v1.{}.{}",
        chrono::Utc::now().timestamp(),
        "0".repeat(64)
    );
    let pages = [
        "/board".to_owned(),
        "/board/failed".to_owned(),
        "/board/failed?state=retrying&kind=test_record".to_owned(),
        format!("/board/jobs/{id}"),
        format!("/board/confirm?action=retry&id={id}"),
        "/board/confirm?action=discard&all=failed".to_owned(),
        "/board/search?q=test_record".to_owned(),
        format!("/board/search?q={id}"),
    ];
    let actions: [(&str, Vec<(&str, &str)>); 5] = [
        (
            "/board/jobs/retry",
            vec![("csrf", csrf), ("scope", "job"), ("id", id)],
        ),
        (
            "/board/jobs/retry",
            vec![("csrf", csrf), ("scope", "all-failed")],
        ),
        (
            "/board/jobs/discard",
            vec![("csrf", csrf), ("scope", "job"), ("id", id)],
        ),
        (
            "/board/jobs/discard",
            vec![("csrf", csrf), ("scope", "all-failed")],
        ),
        ("/board/logout", vec![("csrf", csrf)]),
    ];
    for cookie in [None, Some(forged.as_str()), Some(other_token.as_str())] {
        for path in &pages {
            let answer = get(&pool, path, cookie).await;
            assert_eq!(answer.status, 401, "GET {path} with {cookie:?}");
            assert!(answer.body.contains("Sign in"), "{}", answer.body);
            assert!(
                !answer.body.contains("<table"),
                "GET {path} showed the queue"
            );
            assert!(
                !answer.body.contains("asked to fail"),
                "GET {path} showed the job"
            );
        }
        for (path, form) in &actions {
            let answer = post(&pool, path, cookie, form).await;
            assert_eq!(answer.status, 401, "POST {path} with {cookie:?}");
            assert!(answer.header(header::SET_COOKIE).is_empty());
        }
    }
    assert_eq!(state_of(&pool, id).await.as_deref(), Some("failed"));
    assert!(audit(&pool).await.is_empty());

    // The stylesheet is not a page: it is public, and says nothing about the queue.
    let css = get(&pool, "/board/static/board.css", None).await;
    assert_eq!(css.status, 200);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));
}

#[sqlx::test(migrations = false)]
async fn signing_in_takes_the_token_and_sets_a_strict_cookie(pool: PgPool) {
    helpers::setup(&pool).await;
    let longer = format!("{TOKEN}x");
    let shouted = TOKEN.to_uppercase();
    for wrong in ["", "board-test-token", longer.as_str(), shouted.as_str()] {
        let answer = post(&pool, "/board/login", None, &[("token", wrong)]).await;
        assert_eq!(answer.status, 401, "{wrong:?}");
        assert!(answer.header(header::SET_COOKIE).is_empty());
        assert!(
            answer.body.contains("not the board&#x27;s token"),
            "{}",
            answer.body
        );
    }

    let answer = post(
        &pool,
        "/board/login",
        None,
        &[("token", TOKEN), ("next", "/board/failed?kind=test_record")],
    )
    .await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header(header::LOCATION),
        "/board/failed?kind=test_record"
    );
    let cookie = answer.header(header::SET_COOKIE);
    for attribute in [
        "cart_board=v1.",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/board",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // Another site is never where a sign-in leads.
    let answer = post(
        &pool,
        "/board/login",
        None,
        &[("token", TOKEN), ("next", "https://evil.example/")],
    )
    .await;
    assert_eq!(answer.header(header::LOCATION), "/board");

    // The session works on every page, and signing out clears it in the browser.
    let session = sign_in(&pool).await;
    let overview = get(&pool, "/board", Some(&session)).await;
    assert_eq!(overview.status, 200);
    let csrf = csrf_of(&overview.body);
    let out = post(
        &pool,
        "/board/logout",
        Some(&session),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
}

#[sqlx::test(migrations = false)]
async fn a_form_without_the_sessions_csrf_token_is_refused(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = failed_job(&pool, "csrf").await;
    let id = id.as_str();
    let session = sign_in(&pool).await;
    let page = get(&pool, &format!("/board/jobs/{id}"), Some(&session)).await;
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    let csrf = csrf.as_str();
    // Another session (same token, another second) has another CSRF token.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let other_session = sign_in(&pool).await;
    assert_ne!(other_session, session);
    let other_csrf = csrf_of(&get(&pool, "/board", Some(&other_session)).await.body);
    assert_ne!(other_csrf, csrf);

    for (what, form) in [
        ("missing", vec![("scope", "job"), ("id", id)]),
        ("empty", vec![("csrf", ""), ("scope", "job"), ("id", id)]),
        (
            "wrong",
            vec![("csrf", "0123abcd"), ("scope", "job"), ("id", id)],
        ),
        (
            "another session's",
            vec![("csrf", other_csrf.as_str()), ("scope", "job"), ("id", id)],
        ),
    ] {
        for path in ["/board/jobs/retry", "/board/jobs/discard"] {
            let answer = post(&pool, path, Some(&session), &form).await;
            assert_eq!(answer.status, 403, "{what} CSRF token on {path}");
            assert!(answer.body.contains("Nothing was changed"));
        }
    }
    let answer = post(&pool, "/board/logout", Some(&session), &[]).await;
    assert_eq!(answer.status, 403);
    assert_eq!(state_of(&pool, id).await.as_deref(), Some("failed"));
    assert!(audit(&pool).await.is_empty());

    let answer = post(
        &pool,
        "/board/jobs/retry",
        Some(&session),
        &[("csrf", csrf), ("scope", "job"), ("id", id)],
    )
    .await;
    assert_eq!(answer.status, 303);
    assert_eq!(state_of(&pool, id).await.as_deref(), Some("pending"));
}

#[sqlx::test(migrations = false)]
async fn retry_and_discard_one_job_or_all_failed_of_a_kind_each_with_an_audit_row(pool: PgPool) {
    helpers::setup(&pool).await;
    let first = failed_job(&pool, "a").await;
    let second = failed_job(&pool, "b").await;
    let noop = helpers::enqueue(&pool, &cart_worker::jobs::testing::Noop { n: 1 }).await;
    fail(&pool, &noop, "noop failed").await;
    let waiting = helpers::enqueue(&pool, &record("waiting")).await;
    let session = sign_in(&pool).await;

    // The list, filtered by kind, offers both; the confirmation says how many.
    let list = get(&pool, "/board/failed?kind=test_record", Some(&session)).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&first) && list.body.contains(&second));
    assert!(!list.body.contains(&noop));
    assert!(
        list.body
            .contains("2 job(s) failed for good of kind test_record")
    );
    let csrf = csrf_of(&list.body);
    let csrf = csrf.as_str();
    let confirm = get(
        &pool,
        "/board/confirm?action=retry&all=failed&kind=test_record",
        Some(&session),
    )
    .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Retry 2 job(s)"), "{}", confirm.body);
    assert!(confirm.body.contains(r#"name="scope" value="all-failed""#));

    let answer = post(
        &pool,
        "/board/jobs/retry",
        Some(&session),
        &[
            ("csrf", csrf),
            ("scope", "all-failed"),
            ("kind", "test_record"),
        ],
    )
    .await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header(header::LOCATION),
        "/board/failed?kind=test_record&notice=retried&n=2"
    );
    assert_eq!(state_of(&pool, &first).await.as_deref(), Some("pending"));
    assert_eq!(state_of(&pool, &second).await.as_deref(), Some("pending"));
    assert_eq!(state_of(&pool, &noop).await.as_deref(), Some("failed"));
    let shown = get(&pool, answer.header(header::LOCATION), Some(&session)).await;
    assert!(shown.body.contains("Retried 2 job(s)"));

    // One job: a waiting one may be discarded, a finished one may not.
    let answer = post(
        &pool,
        "/board/jobs/discard",
        Some(&session),
        &[("csrf", csrf), ("scope", "job"), ("id", noop.as_str())],
    )
    .await;
    assert_eq!(answer.status, 303);
    assert_eq!(state_of(&pool, &noop).await, None);
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE id = $1")
        .bind(&waiting)
        .execute(&pool)
        .await
        .unwrap();
    for path in ["/board/jobs/discard", "/board/jobs/retry"] {
        let answer = post(
            &pool,
            path,
            Some(&session),
            &[("csrf", csrf), ("scope", "job"), ("id", waiting.as_str())],
        )
        .await;
        assert_eq!(answer.status, 409, "{path}");
        assert!(answer.body.contains("Nothing was changed"));
    }
    assert_eq!(state_of(&pool, &waiting).await.as_deref(), Some("done"));
    let unknown = post(
        &pool,
        "/board/jobs/retry",
        Some(&session),
        &[
            ("csrf", csrf),
            ("scope", "job"),
            ("id", "01JD0000000000000000000000"),
        ],
    )
    .await;
    assert_eq!(unknown.status, 404);

    let rows = audit(&pool).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut retried = rows[0].2.clone();
    retried.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), retried),
        ("board", "jobs.retry", expected)
    );
    assert_eq!(
        rows[0].3,
        json!({"all_failed": true, "kind": "test_record"})
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2.clone()),
        ("board", "jobs.discard", vec![noop.clone()])
    );
    let discarded = &rows[1].3["jobs"][0];
    assert_eq!(discarded["kind"], "test_noop");
    assert_eq!(discarded["envelope"]["payload"], json!({"n": 1}));
    assert_eq!(discarded["last_error"], "noop failed");
}

#[sqlx::test(migrations = false)]
async fn the_job_page_shows_no_secret_of_the_payload_or_the_errors(pool: PgPool) {
    helpers::setup(&pool).await;
    let envelope = Envelope {
        origin: Origin {
            request_id: Some("req-board".into()),
            traceparent: None,
        },
        serves: Serves::default(),
        payload: json!({
            "message": {
                "to": "ana@example.com",
                "subject": "Loja Cart: seu pedido",
                "text": "Cartão 4111 1111 1111 1111, link https://loja.example/r?token=tok-123456&x=1",
                "html": "<a href=\"https://loja.example/r?token=tok-123456\">link</a>",
                "tag": "order_placed",
            },
            "password": "hunter2-hunter2",
            "api_key": "key-abcdef",
            "key": "order_placed:1",
        }),
    };
    let job = Encoded::raw(
        "send_email",
        serde_json::to_vec(&envelope).unwrap(),
        10,
        None,
    );
    let mut conn = pool.acquire().await.unwrap();
    let id = cart_queue::enqueue(&mut conn, &job).await.unwrap().unwrap();
    drop(conn);
    fail(
        &pool,
        &id,
        "resend answered 401 to Authorization: Bearer re_abcdefghijklmnopqrstu",
    )
    .await;

    let session = sign_in(&pool).await;
    let page = get(&pool, &format!("/board/jobs/{id}"), Some(&session)).await;
    assert_eq!(page.status, 200);
    for secret in [
        "4111 1111 1111 1111",
        "tok-123456",
        "hunter2",
        "key-abcdef",
        "re_abcdefghijklmnopqrstu",
    ] {
        assert!(!page.body.contains(secret), "the page shows {secret}");
    }
    for kept in [
        "ana@example.com",
        "order_placed:1",
        "req-board",
        "resend answered 401",
        "[redacted]",
    ] {
        assert!(page.body.contains(kept), "the page hides {kept}");
    }
    // The list of failed jobs shows the error redacted too.
    let list = get(&pool, "/board/failed", Some(&session)).await;
    assert!(list.body.contains(&id));
    assert!(!list.body.contains("re_abcdefghijklmnopqrstu"));
}

#[sqlx::test(migrations = false)]
async fn the_overview_shows_depth_and_the_last_hour_under_a_strict_policy(pool: PgPool) {
    helpers::setup(&pool).await;
    failed_job(&pool, "overview").await;
    helpers::enqueue(&pool, &record("pending")).await;
    let session = sign_in(&pool).await;
    let page = get(&pool, "/board", Some(&session)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("test_record"));
    assert!(
        page.body
            .contains(r#"href="/board/failed?kind=test_record">1</a>"#)
    );
    assert!(page.body.contains("<svg class=\"chart\""));
    assert!(
        page.body.contains("1 attempts failed (1 for good)"),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<meta name="viewport""#));
    assert!(!page.body.contains("<script"));
    let policy = page.header(header::CONTENT_SECURITY_POLICY);
    assert!(policy.contains("default-src 'none'") && policy.contains("style-src 'self'"));
    assert!(!policy.contains("unsafe-inline"));
    assert_eq!(page.header(header::CACHE_CONTROL), "no-store");
    assert_eq!(page.header(header::X_FRAME_OPTIONS), "DENY");
}

#[sqlx::test(migrations = false)]
async fn without_a_token_there_is_no_board(pool: PgPool) {
    helpers::setup(&pool).await;
    let router =
        cart_worker::http::router(pool.clone(), cart_worker::metrics::install(), None).unwrap();
    let answer = router
        .oneshot(Request::get("/board").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(BoardConfig::new("too-short").is_err());
}

#[sqlx::test(migrations = false)]
async fn search_finds_the_jobs_of_an_order_by_its_number_or_id_and_jobs_by_text(pool: PgPool) {
    helpers::setup(&pool).await;
    let order = crate::orders::unpaid_order(&pool, chrono::Duration::hours(1)).await;
    let number: String = sqlx::query_scalar("SELECT number FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&pool)
        .await
        .unwrap();
    let served = helpers::enqueue(
        &pool,
        &Record {
            order_id: Some(order),
            ..record("served")
        },
    )
    .await;
    fail(&pool, &served, "provider down").await;
    let unrelated = failed_job(&pool, "unrelated-key").await;
    let session = sign_in(&pool).await;

    let bare = number.trim_start_matches("CART-").to_lowercase();
    for query in [number.clone(), bare, order.to_string()] {
        let page = get(&pool, &format!("/board/search?q={query}"), Some(&session)).await;
        assert_eq!(page.status, 200, "{query}");
        assert!(
            page.body.contains(&format!(r#"data-job="{served}""#)),
            "{query}: {}",
            page.body
        );
        assert!(!page.body.contains(&unrelated), "{query}");
        assert!(page.body.contains(&order.to_string()));
    }
    let page = get(&pool, "/board/search?q=unrelated-key", Some(&session)).await;
    assert!(page.body.contains(&format!(r#"data-job="{unrelated}""#)));
    assert!(!page.body.contains(&format!(r#"data-job="{served}""#)));
    // The failed list links each job to its order's jobs.
    let failed = get(&pool, "/board/failed", Some(&session)).await;
    assert!(
        failed
            .body
            .contains(&format!(r#"href="/board/search?q={order}""#))
    );

    let jump = get(
        &pool,
        &format!("/board/search?q={}", served.to_lowercase()),
        Some(&session),
    )
    .await;
    assert_eq!(jump.status, 303);
    assert_eq!(
        jump.header(header::LOCATION),
        format!("/board/jobs/{served}")
    );
    let nothing = get(
        &pool,
        &format!("/board/search?q={}", uuid::Uuid::now_v7()),
        Some(&session),
    )
    .await;
    assert!(nothing.body.contains("No job found."));
}

#[sqlx::test(migrations = false)]
async fn the_overview_shows_the_kinds_operators_paused_or_throttled(pool: PgPool) {
    helpers::setup(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    cart_queue::admin::pause(&mut conn, "send_email", "ana")
        .await
        .unwrap();
    cart_queue::admin::limit(&mut conn, "emit_invoice", Some(30), "ana")
        .await
        .unwrap();
    drop(conn);
    let session = sign_in(&pool).await;
    let page = get(&pool, "/board", Some(&session)).await;
    assert!(page.body.contains("Paused and throttled kinds"));
    assert!(page.body.contains("<strong>send_email</strong>"));
    assert!(page.body.contains("by ana"), "{}", page.body);
    assert!(
        page.body
            .contains("limited to 30 starts per minute; 0 in the last minute")
    );
}
