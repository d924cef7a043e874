//! `GET /api/orders/{id}/invoice`: the order's NF-e.

use axum::extract::State;
use cart_core::invoices::emit::{self, Invoice, InvoiceStatus};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AuthUser, Json, Path},
    openapi::{Authenticated, PROBLEM},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(get_invoice))
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceView {
    pub status: InvoiceStatus,
    pub number: Option<i64>,
    pub series: Option<i32>,
    /// The 44-digit access key.
    pub access_key: Option<String>,
    /// The DANFE.
    pub pdf_url: Option<String>,
    pub xml_url: Option<String>,
    /// Admins only: why the NF-e was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl InvoiceView {
    fn new(invoice: Invoice, is_admin: bool) -> Self {
        Self {
            status: invoice.status,
            number: invoice.number,
            series: invoice.series,
            access_key: invoice.access_key,
            pdf_url: invoice.pdf_url,
            xml_url: invoice.xml_url,
            message: invoice.message.filter(|_| is_admin),
        }
    }
}

/// The NF-e of an order (owner or admin); 404 until its emission started.
#[utoipa::path(get, path = "/orders/{id}/invoice", tag = "invoices",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = InvoiceView),
        Authenticated,
        (status = 404, description = "no such order, someone else's, or no invoice yet",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_invoice(
    State(state): State<AppState>,
    user: AuthUser,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<InvoiceView>> {
    let is_admin = user.is_admin();
    let mut conn = state.db.acquire().await?;
    let invoice = emit::visible(&mut conn, order_id, user.into()).await?;
    Ok(Json(InvoiceView::new(invoice, is_admin)))
}
