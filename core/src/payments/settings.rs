//! Choosing and configuring the payment providers and webhook verifiers from the environment.
//!
//! `PIX_PROVIDER=sandbox|propay|openpix` and `CARD_PROVIDER=sandbox|stripe` (both default to
//! `sandbox`, which needs nothing else). The webhook verifiers are built for every scheme,
//! but a webhook route answers only while one of its providers is configured (see
//! `PaymentSettings::route_is_served`), and reconciliation checks that an event's payment
//! belongs to the route's providers: Woovi's public key, the same for every Woovi account,
//! must not let anyone's OpenPix event reach a store that does not use OpenPix. A real provider without its settings fails at
//! start-up with a [`ConfigError`] naming the missing variable. Secret values are never part
//! of an error or a `Debug` output.

use std::{sync::Arc, time::Duration};

use secrecy::SecretString;

use super::{
    openpix::{self, OpenPixClient, OpenPixConfig},
    propay::{ProPayClient, ProPayConfig},
    provider::{CardProvider, PixProvider},
    sandbox::{self, SandboxCard, SandboxPix, SandboxPixConfig},
    signature::{STRIPE_DEFAULT_TOLERANCE, WOOVI_PUBLIC_KEY_PEM, WebhookVerifiers, WooviVerifier},
    stripe::{self, StripeClient, StripeConfig},
};
use crate::config::{self, ConfigError};

pub const DEFAULT_PIX_EXPIRES_IN: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_PIX_MIN_REMAINING: Duration = Duration::from_secs(2 * 60);
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where settings come from: the process environment, or a map in tests (the process
/// environment cannot be changed safely while other tests run).
pub trait Env {
    fn get(&self, name: &'static str) -> Option<String>;
}

/// The real environment, through [`config::var`] (blank counts as unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &'static str) -> Option<String> {
        config::var(name)
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &'static str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixProviderKind {
    Sandbox,
    ProPay,
    OpenPix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardProviderKind {
    Sandbox,
    Stripe,
}

/// The configured providers, shared by the API and the worker.
#[derive(Clone)]
pub struct PaymentProviders {
    pub pix: Arc<dyn PixProvider>,
    pub card: Arc<dyn CardProvider>,
    /// `PIX_EXPIRES_IN`: the longest a PIX charge stays payable (never past its order's
    /// payment deadline).
    pub pix_expires_in: Duration,
    /// `PIX_MIN_REMAINING`: no PIX charge is made for an order with less than this left of
    /// its payment window (too short to scan and pay).
    pub pix_min_remaining: Duration,
    /// The Woovi client when `PIX_PROVIDER=openpix` (the same one as `pix`): reconciliation
    /// confirms OpenPix webhooks through it.
    pub openpix: Option<Arc<OpenPixClient>>,
}

impl std::fmt::Debug for PaymentProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentProviders")
            .field("pix", &self.pix.name())
            .field("card", &self.card.name())
            .field("pix_expires_in", &self.pix_expires_in)
            .field("pix_min_remaining", &self.pix_min_remaining)
            .finish_non_exhaustive()
    }
}

/// The providers chosen by `PIX_PROVIDER` and `CARD_PROVIDER`.
pub fn providers_from_env() -> Result<PaymentProviders, ConfigError> {
    providers_from(&ProcessEnv)
}

pub fn providers_from(env: &dyn Env) -> Result<PaymentProviders, ConfigError> {
    let pix_expires_in = duration(env, "PIX_EXPIRES_IN", DEFAULT_PIX_EXPIRES_IN)?;
    if pix_expires_in < Duration::from_secs(60) {
        return Err(ConfigError::Invalid {
            name: "PIX_EXPIRES_IN",
            reason: "must be at least one minute".into(),
        });
    }
    let pix_min_remaining = duration(env, "PIX_MIN_REMAINING", DEFAULT_PIX_MIN_REMAINING)?;
    if pix_min_remaining >= pix_expires_in {
        return Err(ConfigError::Invalid {
            name: "PIX_MIN_REMAINING",
            reason: "must be shorter than PIX_EXPIRES_IN".into(),
        });
    }
    let mut openpix = None;
    let pix: Arc<dyn PixProvider> = match pix_kind(env)? {
        PixProviderKind::Sandbox => Arc::new(SandboxPix::new(SandboxPixConfig {
            key: or(env, "PIX_KEY", sandbox::DEFAULT_PIX_KEY),
            merchant_name: or(env, "PIX_MERCHANT_NAME", sandbox::DEFAULT_MERCHANT_NAME),
            merchant_city: or(env, "PIX_MERCHANT_CITY", sandbox::DEFAULT_MERCHANT_CITY),
        })?),
        PixProviderKind::ProPay => Arc::new(ProPayClient::new(ProPayConfig {
            base_url: url(env, "PROPAY_URL", None)?,
            jwt_secret: secret(env, "GO_TO_PROPAY_SECRET")?,
            timeout: duration(env, "PROPAY_TIMEOUT", DEFAULT_PROVIDER_TIMEOUT)?,
        })),
        PixProviderKind::OpenPix => {
            let client = Arc::new(OpenPixClient::new(OpenPixConfig {
                base_url: url(env, "OPENPIX_URL", Some(openpix::DEFAULT_URL))?,
                app_id: secret(env, "OPENPIX_APP_ID")?,
                timeout: duration(env, "OPENPIX_TIMEOUT", DEFAULT_PROVIDER_TIMEOUT)?,
            }));
            openpix = Some(client.clone());
            client
        }
    };
    let card: Arc<dyn CardProvider> = match card_kind(env)? {
        CardProviderKind::Sandbox => Arc::new(SandboxCard),
        CardProviderKind::Stripe => Arc::new(StripeClient::new(StripeConfig {
            base_url: url(env, "STRIPE_API_URL", Some(stripe::DEFAULT_URL))?,
            secret_key: secret(env, "STRIPE_SECRET_KEY")?,
            timeout: duration(env, "STRIPE_TIMEOUT", DEFAULT_PROVIDER_TIMEOUT)?,
        })),
    };
    Ok(PaymentProviders {
        pix,
        card,
        pix_expires_in,
        pix_min_remaining,
        openpix,
    })
}

/// The secrets and keys the webhook routes verify with.
pub fn webhook_verifiers_from_env() -> Result<WebhookVerifiers, ConfigError> {
    webhook_verifiers_from(&ProcessEnv)
}

/// `PROPAY_TO_GO_SECRET` is required with `PIX_PROVIDER=propay` and `STRIPE_WEBHOOK_SECRET` with
/// `CARD_PROVIDER=stripe`; without them the matching webhook refuses everything. With the
/// sandbox, set `PROPAY_TO_GO_SECRET` to sign simulated payment webhooks.
pub fn webhook_verifiers_from(env: &dyn Env) -> Result<WebhookVerifiers, ConfigError> {
    let propay_secret = env.get("PROPAY_TO_GO_SECRET");
    if pix_kind(env)? == PixProviderKind::ProPay && propay_secret.is_none() {
        return Err(ConfigError::Missing("PROPAY_TO_GO_SECRET"));
    }
    if propay_secret.is_some() && propay_secret == env.get("GO_TO_PROPAY_SECRET") {
        return Err(ConfigError::Invalid {
            name: "PROPAY_TO_GO_SECRET",
            reason: "must differ from GO_TO_PROPAY_SECRET: each direction has its own secret"
                .into(),
        });
    }
    let stripe_secret = env.get("STRIPE_WEBHOOK_SECRET");
    if card_kind(env)? == CardProviderKind::Stripe && stripe_secret.is_none() {
        return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"));
    }
    let public_key = env
        .get("OPENPIX_WEBHOOK_PUBLIC_KEY")
        .unwrap_or_else(|| WOOVI_PUBLIC_KEY_PEM.to_owned());
    let woovi = WooviVerifier::new(
        &public_key,
        env.get("OPENPIX_WEBHOOK_SECRET").map(SecretString::from),
    )
    .map_err(|e| ConfigError::Invalid {
        name: "OPENPIX_WEBHOOK_PUBLIC_KEY",
        reason: e.to_string(),
    })?;
    Ok(WebhookVerifiers {
        propay_secret: propay_secret.map(SecretString::from),
        stripe_secret: stripe_secret.map(SecretString::from),
        stripe_tolerance: STRIPE_DEFAULT_TOLERANCE,
        woovi,
    })
}

fn pix_kind(env: &dyn Env) -> Result<PixProviderKind, ConfigError> {
    match or(env, "PIX_PROVIDER", "sandbox")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "sandbox" => Ok(PixProviderKind::Sandbox),
        "propay" => Ok(PixProviderKind::ProPay),
        "openpix" | "woovi" => Ok(PixProviderKind::OpenPix),
        _ => Err(ConfigError::Invalid {
            name: "PIX_PROVIDER",
            reason: "expected sandbox, propay or openpix".into(),
        }),
    }
}

fn card_kind(env: &dyn Env) -> Result<CardProviderKind, ConfigError> {
    match or(env, "CARD_PROVIDER", "sandbox")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "sandbox" => Ok(CardProviderKind::Sandbox),
        "stripe" => Ok(CardProviderKind::Stripe),
        _ => Err(ConfigError::Invalid {
            name: "CARD_PROVIDER",
            reason: "expected sandbox or stripe".into(),
        }),
    }
}

fn or(env: &dyn Env, name: &'static str, default: &str) -> String {
    env.get(name).unwrap_or_else(|| default.to_owned())
}

fn secret(env: &dyn Env, name: &'static str) -> Result<SecretString, ConfigError> {
    env.get(name)
        .map(|v| SecretString::from(v.trim().to_owned()))
        .ok_or(ConfigError::Missing(name))
}

fn duration(env: &dyn Env, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(raw) => {
            let parsed = config::parse_duration(&raw)
                .map_err(|reason| ConfigError::Invalid { name, reason })?;
            if parsed.is_zero() {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be longer than zero".into(),
                });
            }
            Ok(parsed)
        }
    }
}

/// An http(s) base URL, without a trailing slash.
fn url(env: &dyn Env, name: &'static str, default: Option<&str>) -> Result<String, ConfigError> {
    let raw = match (env.get(name), default) {
        (Some(value), _) => value,
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(ConfigError::Missing(name)),
    };
    let raw = raw.trim().trim_end_matches('/').to_owned();
    match reqwest::Url::parse(&raw) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(raw),
        _ => Err(ConfigError::Invalid {
            name,
            reason: "expected an http(s) URL".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn missing(result: Result<PaymentProviders, ConfigError>) -> String {
        match result {
            Err(ConfigError::Missing(name)) => name.to_owned(),
            other => panic!("expected a missing variable, got {other:?}"),
        }
    }

    #[test]
    fn by_default_both_providers_are_the_sandbox() {
        let providers = providers_from(&env(&[])).unwrap();
        assert_eq!(providers.pix.name(), "sandbox_pix");
        assert_eq!(providers.card.name(), "sandbox_card");
        assert_eq!(providers.pix_expires_in, Duration::from_secs(1800));
        assert_eq!(providers.pix_min_remaining, Duration::from_secs(120));
        assert!(providers.openpix.is_none());
    }

    #[test]
    fn real_providers_without_their_settings_name_the_missing_variable() {
        assert_eq!(
            missing(providers_from(&env(&[("PIX_PROVIDER", "openpix")]))),
            "OPENPIX_APP_ID"
        );
        assert_eq!(
            missing(providers_from(&env(&[("PIX_PROVIDER", "propay")]))),
            "PROPAY_URL"
        );
        assert_eq!(
            missing(providers_from(&env(&[
                ("PIX_PROVIDER", "propay"),
                ("PROPAY_URL", "https://propay.internal")
            ]))),
            "GO_TO_PROPAY_SECRET"
        );
        assert_eq!(
            missing(providers_from(&env(&[("CARD_PROVIDER", "stripe")]))),
            "STRIPE_SECRET_KEY"
        );
    }

    #[test]
    fn real_providers_are_built_from_complete_settings() {
        let providers = providers_from(&env(&[
            ("PIX_PROVIDER", "propay"),
            ("PROPAY_URL", "https://propay.internal/"),
            ("GO_TO_PROPAY_SECRET", "s3cr3t-go-to-propay"),
            ("PROPAY_TIMEOUT", "3s"),
            ("CARD_PROVIDER", "stripe"),
            ("STRIPE_SECRET_KEY", "sk_test_abc123"),
            ("PIX_EXPIRES_IN", "15m"),
        ]))
        .unwrap();
        assert_eq!(providers.pix.name(), "propay");
        assert_eq!(providers.card.name(), "stripe");
        assert_eq!(providers.pix_expires_in, Duration::from_secs(900));
        let shown = format!("{providers:?} {:?} {:?}", providers.pix, providers.card);
        assert!(!shown.contains("s3cr3t-go-to-propay"), "{shown}");
        assert!(!shown.contains("sk_test_abc123"), "{shown}");

        let openpix = providers_from(&env(&[
            ("PIX_PROVIDER", "openpix"),
            ("OPENPIX_APP_ID", "app-id-value"),
        ]))
        .unwrap();
        assert_eq!(openpix.pix.name(), "openpix");
        assert!(openpix.openpix.is_some());
        assert!(!format!("{:?}", openpix.pix).contains("app-id-value"));
    }

    #[test]
    fn invalid_values_are_reported_by_name_without_echoing_them() {
        let invalid = |pairs: &[(&str, &str)]| match providers_from(&env(pairs)) {
            Err(ConfigError::Invalid { name, reason }) => (name, reason),
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(invalid(&[("PIX_PROVIDER", "paypal")]).0, "PIX_PROVIDER");
        assert_eq!(invalid(&[("CARD_PROVIDER", "cielo")]).0, "CARD_PROVIDER");
        assert_eq!(invalid(&[("PIX_EXPIRES_IN", "soon")]).0, "PIX_EXPIRES_IN");
        assert_eq!(invalid(&[("PIX_EXPIRES_IN", "10s")]).0, "PIX_EXPIRES_IN");
        assert_eq!(
            invalid(&[("PIX_EXPIRES_IN", "5m"), ("PIX_MIN_REMAINING", "5m")]).0,
            "PIX_MIN_REMAINING"
        );
        let (name, reason) = invalid(&[
            ("CARD_PROVIDER", "stripe"),
            ("STRIPE_SECRET_KEY", "sk_test_abc123"),
            ("STRIPE_API_URL", "ftp://sk_test_abc123"),
        ]);
        assert_eq!(name, "STRIPE_API_URL");
        assert!(!reason.contains("sk_test"));
        assert_eq!(
            invalid(&[
                ("PIX_PROVIDER", "openpix"),
                ("OPENPIX_APP_ID", "x"),
                ("OPENPIX_TIMEOUT", "0s")
            ])
            .0,
            "OPENPIX_TIMEOUT"
        );
        assert_eq!(
            invalid(&[("PIX_MERCHANT_NAME", "日本語")]).0,
            "PIX_MERCHANT_NAME"
        );
    }

    #[test]
    fn webhook_secrets_are_required_for_the_real_providers_that_sign_with_them() {
        let missing = |pairs: &[(&str, &str)]| match webhook_verifiers_from(&env(pairs)) {
            Err(ConfigError::Missing(name)) => name,
            other => panic!("expected missing, got {other:?}"),
        };
        assert_eq!(
            missing(&[("PIX_PROVIDER", "propay")]),
            "PROPAY_TO_GO_SECRET"
        );
        assert_eq!(
            missing(&[("CARD_PROVIDER", "stripe")]),
            "STRIPE_WEBHOOK_SECRET"
        );

        // The sandbox runs without secrets; its webhook then refuses everything.
        let verifiers = webhook_verifiers_from(&env(&[])).unwrap();
        assert_eq!(
            verifiers.verify_propay(Some("00"), b"{}"),
            Err(super::super::signature::SignatureError::NotConfigured)
        );
    }

    #[test]
    fn the_two_propay_directions_must_use_different_secrets() {
        let result = webhook_verifiers_from(&env(&[
            ("GO_TO_PROPAY_SECRET", "same-secret"),
            ("PROPAY_TO_GO_SECRET", "same-secret"),
        ]));
        assert!(matches!(
            result,
            Err(ConfigError::Invalid {
                name: "PROPAY_TO_GO_SECRET",
                ..
            })
        ));
    }

    #[test]
    fn configured_webhook_verifiers_check_each_scheme() {
        let verifiers = webhook_verifiers_from(&env(&[
            ("PROPAY_TO_GO_SECRET", "propay-to-go"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_test_secret"),
            ("OPENPIX_WEBHOOK_SECRET", "hmac-secret-key"),
        ]))
        .unwrap();
        let body = br#"{"event":"pix.paid"}"#;
        let signature = super::super::signature::sign_propay(b"propay-to-go", body);
        assert_eq!(verifiers.verify_propay(Some(&signature), body), Ok(()));

        let now = chrono::Utc::now().timestamp();
        let header = super::super::signature::sign_stripe("whsec_test_secret", now, body);
        assert_eq!(verifiers.verify_stripe(Some(&header), body), Ok(()));
        let old = super::super::signature::sign_stripe("whsec_test_secret", now - 301, body);
        assert!(verifiers.verify_stripe(Some(&old), body).is_err());

        assert_eq!(
            verifiers.verify_openpix(
                None,
                Some("jgR2XF0PKDiAwHP1s+TryvxMySQ="),
                br#"{"data_criacao":"2021-08-10T20:32:14.429Z","evento":"teste_webhook"}"#
            ),
            Ok(())
        );
        let shown = format!("{verifiers:?}");
        assert!(
            !shown.contains("propay-to-go") && !shown.contains("whsec_test_secret"),
            "{shown}"
        );
    }

    #[test]
    fn an_unusable_openpix_public_key_is_a_config_error() {
        let result = webhook_verifiers_from(&env(&[("OPENPIX_WEBHOOK_PUBLIC_KEY", "garbage")]));
        assert!(matches!(
            result,
            Err(ConfigError::Invalid {
                name: "OPENPIX_WEBHOOK_PUBLIC_KEY",
                ..
            })
        ));
    }
}
