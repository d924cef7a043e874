//! Settings for test harnesses: sandbox providers, known webhook secrets, cheap password
//! hashing. Compiled only for this crate's tests and under the `testing` feature, which only
//! the workspace's dev-dependencies turn on, so none of it reaches a binary.

use std::time::Duration;

use crate::{
    auth::password::{Argon2Params, PasswordConfig},
    payments::{
        BreakerConfig,
        breaker::CircuitBreaker,
        flow::{DEFAULT_PAYMENT_WAIT, PaymentSettings},
        settings::{providers_from, webhook_verifiers_from},
    },
};

/// The ProPay webhook secret of [`PaymentSettings::for_tests`].
pub const TEST_PROPAY_SECRET: &str = "test-propay-to-go-secret";
/// The Stripe webhook secret of [`PaymentSettings::for_tests`].
pub const TEST_STRIPE_SECRET: &str = "whsec_test_secret";

impl PaymentSettings {
    /// Sandbox providers, [`TEST_PROPAY_SECRET`] and [`TEST_STRIPE_SECRET`] for webhooks, the
    /// default breaker and wait: what the test harnesses start with.
    pub fn for_tests() -> Self {
        let env = |name: &str| match name {
            "PROPAY_TO_GO_SECRET" => Some(TEST_PROPAY_SECRET.to_owned()),
            "STRIPE_WEBHOOK_SECRET" => Some(TEST_STRIPE_SECRET.to_owned()),
            _ => None,
        };
        Self {
            providers: providers_from(&env)
                .unwrap_or_else(|e| unreachable!("sandbox providers need no settings: {e}")),
            verifiers: webhook_verifiers_from(&env)
                .unwrap_or_else(|e| unreachable!("the test secrets are valid: {e}")),
            breaker: CircuitBreaker::new(BreakerConfig::default()),
            wait: DEFAULT_PAYMENT_WAIT,
            pix_sandbox: true,
        }
    }
}

impl PasswordConfig {
    /// Cheap parameters so tests do not spend seconds hashing.
    pub fn for_tests() -> Self {
        Self {
            params: Argon2Params {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            concurrency: 4,
            max_wait: Duration::from_secs(5),
        }
    }
}
