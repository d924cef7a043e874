//! The worker's own endpoints.

use axum::{body::Body, http::Request};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::helpers;

async fn get(pool: &PgPool, path: &str) -> (u16, String) {
    let router =
        cart_worker::http::router(pool.clone(), cart_worker::metrics::install(), None).unwrap();
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[sqlx::test(migrations = false)]
async fn health_ready_and_metrics_with_the_queue_depth(pool: PgPool) {
    helpers::setup(&pool).await;
    helpers::enqueue(&pool, &helpers::record("waiting")).await;

    assert_eq!(
        get(&pool, "/health").await,
        (200, r#"{"status":"ok"}"#.into())
    );
    assert_eq!(get(&pool, "/ready").await.0, 200);
    let (status, metrics) = get(&pool, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"jobs_queue_depth{kind="test_record",state="pending"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("jobs_oldest_pending_seconds{kind=\"test_record\"}"));

    pool.close().await;
    assert_eq!(get(&pool, "/ready").await.0, 503);
}
