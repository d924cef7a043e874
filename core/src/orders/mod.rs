//! Orders: checkout, the status machine, reads, and the lifecycle after checkout
//! (cancel, expiry, shipping, delivery).

pub mod cancel;
pub mod checkout;
pub mod create;
pub mod lifecycle;
pub mod lookup;
pub mod model;
pub mod notify;
pub mod number;
pub mod privacy;
pub mod read;
pub mod status;
pub mod timeline;

use std::time::Duration;

pub use model::{Order, OrderItem, PublicTracking, ShippingAddress, ShippingInfo};
pub use read::{PageRequest, Viewer};
pub use status::{Actor, OrderState, OrderStatus, PaymentStatus};

use crate::config::{self, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersConfig {
    /// How long an order waits for its payment before it is cancelled (`ORDER_PAYMENT_TTL`).
    pub payment_ttl: Duration,
    /// Unpaid orders one account may hold at once, each reserving stock
    /// (`MAX_UNPAID_ORDERS`, default 3); 0: no cap.
    pub max_unpaid: u32,
}

impl OrdersConfig {
    pub const DEFAULT_PAYMENT_TTL: Duration = Duration::from_secs(30 * 60);
    pub const DEFAULT_MAX_UNPAID: u32 = 3;

    pub fn from_env() -> Result<Self, ConfigError> {
        let payment_ttl = config::var_duration("ORDER_PAYMENT_TTL", Self::DEFAULT_PAYMENT_TTL)?;
        if payment_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "ORDER_PAYMENT_TTL",
                reason: "must be longer than zero".into(),
            });
        }
        let max_unpaid = config::var_parsed("MAX_UNPAID_ORDERS", Self::DEFAULT_MAX_UNPAID)?;
        Ok(Self {
            payment_ttl,
            max_unpaid,
        })
    }
}

impl OrdersConfig {
    /// An order must stay payable for as long as its PIX code does (`PIX_EXPIRES_IN`), or a
    /// customer could pay a code for an order that already expired.
    pub fn check_covers(&self, pix_expires_in: Duration) -> Result<(), ConfigError> {
        if self.payment_ttl < pix_expires_in {
            return Err(ConfigError::Invalid {
                name: "ORDER_PAYMENT_TTL",
                reason: format!(
                    "{}s is shorter than PIX_EXPIRES_IN ({}s); it must be at least as long",
                    self.payment_ttl.as_secs(),
                    pix_expires_in.as_secs()
                ),
            });
        }
        Ok(())
    }
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            payment_ttl: Self::DEFAULT_PAYMENT_TTL,
            max_unpaid: Self::DEFAULT_MAX_UNPAID,
        }
    }
}

#[cfg(test)]
mod tests;
