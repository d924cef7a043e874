//! Orders: checkout, the status machine, reads, and the lifecycle after checkout
//! (cancel, expiry, shipping, delivery).

pub mod cancel;
pub mod checkout;
pub mod create;
pub mod lifecycle;
pub mod model;
pub mod notify;
pub mod number;
pub mod privacy;
pub mod read;
pub mod status;

use std::time::Duration;

pub use model::{Order, OrderItem, PublicTracking, ShippingAddress, ShippingInfo};
pub use read::{PageRequest, Viewer};
pub use status::{Actor, OrderState, OrderStatus, PaymentStatus};

use crate::config::{self, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersConfig {
    /// How long an order waits for its payment before it is cancelled (`ORDER_PAYMENT_TTL`).
    pub payment_ttl: Duration,
}

impl OrdersConfig {
    pub const DEFAULT_PAYMENT_TTL: Duration = Duration::from_secs(30 * 60);

    pub fn from_env() -> Result<Self, ConfigError> {
        let payment_ttl = config::var_duration("ORDER_PAYMENT_TTL", Self::DEFAULT_PAYMENT_TTL)?;
        if payment_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "ORDER_PAYMENT_TTL",
                reason: "must be longer than zero".into(),
            });
        }
        Ok(Self { payment_ttl })
    }
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            payment_ttl: Self::DEFAULT_PAYMENT_TTL,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod checkout_tests;
