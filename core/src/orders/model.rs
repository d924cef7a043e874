//! The order as the API shows it, and the snapshots it is made of.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::status::{OrderState, OrderStatus, PaymentStatus};

/// One line of an order: the product as it was sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderItem {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i32,
    pub line_total_cents: i64,
}

/// The delivery address as it was at checkout (stored as JSON on the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingAddress {
    pub label: Option<String>,
    pub recipient: String,
    /// 8 digits.
    pub cep: String,
    pub street: String,
    pub number: String,
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    /// UF, e.g. `SP`.
    pub state: String,
}

/// The shipping option chosen and priced at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingInfo {
    pub carrier: String,
    pub service: String,
    pub days: i32,
    pub address: ShippingAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub number: String,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub items: Vec<OrderItem>,
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub shipping_cents: i64,
    pub total_cents: i64,
    pub coupon_code: Option<String>,
    pub shipping: ShippingInfo,
    /// Set when the order ships.
    pub tracking_number: Option<String>,
    /// The carrier that carries the parcel, set with the tracking number.
    pub carrier: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn state(&self) -> OrderState {
        OrderState::new(self.status, self.payment_status)
    }
}

/// What anyone may see with an order number: no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicTracking {
    pub number: String,
    pub status: OrderStatus,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub updated_at: DateTime<Utc>,
}
