//! `GET /api/orders/{id}/invoice`: who sees what of an order's NF-e.

#![allow(clippy::unwrap_used)]

use cart_core::invoices::{EmitOutcome, emit};
use sqlx::PgPool;

use crate::payments::{World, admin_token, buyer, payment_settings, place_order};

#[sqlx::test(migrations = false)]
async fn no_invoice_yet_is_404_and_a_rejection_shows_its_reason_to_admins_only(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let owner = buyer(app).await;
    let admin = admin_token(app).await;
    let order_id = place_order(&app.pool, owner.id).await;
    let path = format!("/api/orders/{order_id}/invoice");
    app.get(&path, Some(&owner.token)).await.assert_problem(404);

    let mut conn = app.pool.acquire().await.unwrap();
    emit::start(&mut conn, order_id).await.unwrap();
    let pending = app.get(&path, Some(&owner.token)).await;
    pending.assert_status(200);
    assert_eq!(pending.body["status"], "pending");
    assert!(pending.body["access_key"].is_null());

    emit::record(
        &mut conn,
        order_id,
        &EmitOutcome::Rejected {
            message: "Rejeição 778: NCM inexistente".into(),
        },
    )
    .await
    .unwrap();
    let seen_by_owner = app.get(&path, Some(&owner.token)).await;
    assert_eq!(seen_by_owner.body["status"], "rejected");
    assert!(seen_by_owner.body.get("message").is_none());
    let seen_by_admin = app.get(&path, Some(&admin)).await;
    seen_by_admin.assert_status(200);
    assert_eq!(
        seen_by_admin.body["message"],
        "Rejeição 778: NCM inexistente"
    );

    app.get(&path, None).await.assert_problem(401);
    world.stop().await;
}
