//! What the serving binaries (`cart-api serve`, `cart-worker run`) check and say at start-up:
//! the active providers (one log line, in every mode), a warning for each variable with one of
//! our prefixes that cart does not read (with its replacement when it was renamed), and, with
//! `APP_ENV=production`, a refusal to start on a no-network provider (unless
//! `ALLOW_SANDBOX_IN_PRODUCTION=true`) or a `JWT_SECRET` published in this repository.
//!
//! The one-shot commands (`migrate`, `seed`, the operator CLI) do not call this: an operator
//! must be able to migrate a production database before its providers are configured.

use std::collections::BTreeSet;

use crate::config::ConfigError;

/// Every variable cart reads, in any binary. A test holds it equal to `.env.example`, so a
/// new setting cannot be forgotten here (and so warned about as unread).
pub const READ_VARIABLES: &[&str] = &[
    // Database
    "DATABASE_URL",
    "DB_MIN_CONNECTIONS",
    "DB_MAX_CONNECTIONS",
    "DB_ACQUIRE_TIMEOUT",
    "DB_STATEMENT_TIMEOUT",
    // Deployment
    "APP_ENV",
    "ALLOW_SANDBOX_IN_PRODUCTION",
    // HTTP API
    "HOST",
    "PORT",
    "LOG_LEVEL",
    "ALLOWED_ORIGINS",
    "BODY_LIMIT_BYTES",
    "REQUEST_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "PAGINATION_MAX_LIMIT",
    "STORE_NAME",
    "FRONTEND_URL",
    // Auth
    "JWT_SECRET",
    "JWT_TTL",
    "ARGON2_MEMORY_KIB",
    "ARGON2_ITERATIONS",
    "ARGON2_PARALLELISM",
    "PASSWORD_HASH_CONCURRENCY",
    "PASSWORD_HASH_MAX_WAIT",
    "PASSWORD_RESET_TTL",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    // Rate limits
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_GLOBAL",
    "RATE_LIMIT_WINDOW",
    "RATE_LIMIT_LOGIN",
    "RATE_LIMIT_LOGIN_WINDOW",
    "RATE_LIMIT_REGISTER",
    "RATE_LIMIT_REGISTER_WINDOW",
    "RATE_LIMIT_FORGOT_PASSWORD",
    "RATE_LIMIT_FORGOT_PASSWORD_WINDOW",
    "RATE_LIMIT_FAILED_LOGINS",
    "RATE_LIMIT_FAILED_LOGINS_WINDOW",
    "TRUSTED_PROXIES",
    // Shipping
    "SHIPPING_PROVIDER",
    "SHIPPING_SENDER_CEP",
    "SHIPPING_TIMEOUT",
    "SHIPPING_QUOTE_TTL",
    "MELHORENVIO_URL",
    "MELHORENVIO_TOKEN",
    "MELHORENVIO_USER_AGENT",
    "MELHORENVIO_SERVICES",
    "CORREIOS_URL",
    "CORREIOS_USER",
    "CORREIOS_ACCESS_CODE",
    "CORREIOS_POSTING_CARD",
    "CORREIOS_SERVICES",
    // Orders and payments
    "MAX_UNPAID_ORDERS",
    "PIX_PROVIDER",
    "CARD_PROVIDER",
    "PAYMENT_WAIT",
    "PIX_EXPIRES_IN",
    "PIX_MIN_REMAINING",
    "ORDER_PAYMENT_TTL",
    "PIX_KEY",
    "PIX_MERCHANT_NAME",
    "PIX_MERCHANT_CITY",
    "PROPAY_URL",
    "GO_TO_PROPAY_SECRET",
    "PROPAY_TO_GO_SECRET",
    "PROPAY_TIMEOUT",
    "OPENPIX_URL",
    "OPENPIX_APP_ID",
    "OPENPIX_TIMEOUT",
    "OPENPIX_WEBHOOK_PUBLIC_KEY",
    "OPENPIX_WEBHOOK_SECRET",
    "STRIPE_API_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_TIMEOUT",
    "CIRCUIT_BREAKER_THRESHOLD",
    "CIRCUIT_BREAKER_TIMEOUT",
    "CIRCUIT_BREAKER_COOLDOWN",
    // NF-e
    "NFE_PROVIDER",
    "NFE_AMBIENTE",
    "NFE_TIMEOUT",
    "NFE_POLL_TIMEOUT",
    "NFE_EMITTER_CNPJ",
    "NFE_EMITTER_IE",
    "NFE_EMITTER_UF",
    "NFE_CFOP",
    "NFE_CFOP_INTERSTATE",
    "NFE_ICMS_SITUACAO",
    "NFE_PIS_COFINS_SITUACAO",
    "FOCUSNFE_TOKEN",
    "FOCUSNFE_URL",
    "ENOTAS_URL",
    "ENOTAS_API_KEY",
    "ENOTAS_COMPANY_ID",
    // E-mail
    "MAIL_PROVIDER",
    "MAIL_OUTBOX_DIR",
    "MAIL_FROM",
    "MAIL_TIMEOUT",
    "RESEND_URL",
    "RESEND_API_KEY",
    // Worker
    "WORKER_PORT",
    "BOARD_TOKEN",
    "WORKER_CONCURRENCY",
    "WORKER_POLL_INTERVAL",
    "WORKER_HEARTBEAT_INTERVAL",
    "WORKER_MISSED_HEARTBEATS",
    "WORKER_SHUTDOWN_TIMEOUT",
    "WORKER_JOB_TIMEOUT",
    "WORKER_RETRY_BASE_DELAY",
    "WORKER_RETRY_MAX_DELAY",
    "WORKER_TICKERS",
    "TICK_PRUNE_JOBS",
    "TICK_PURGE_RESET_TOKENS",
    "TICK_PURGE_SESSIONS",
    "TICK_EXPIRE_ORDERS",
    "TICK_PRUNE_IDEMPOTENCY_KEYS",
    "TICK_PURGE_ABANDONED_CARTS",
    "JOBS_DONE_RETENTION",
    "JOBS_FAILED_RETENTION",
    "CART_TTL",
    // Catalog cache
    "CACHE_ENABLED",
    "CACHE_L1_MAX_SIZE",
    "CACHE_TTL_PRODUCTS",
    "CACHE_TTL_CATEGORIES",
    // Traces (the OpenTelemetry SDK reads the other OTEL_* variables it defines too)
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
];

/// Variables read under a name made at run time, e.g. `WORKER_CONCURRENCY_SEND_EMAIL`.
const READ_PREFIXES: &[&str] = &["WORKER_CONCURRENCY_"];

/// Read only by the integration tests' worker processes; not documented for operators.
const TEST_HOOKS: &[&str] = &["WORKER_TEST_JOBS", "WORKER_TEST_TICK_INTERVAL"];

/// The prefixes of cart's settings: a variable with one of them that cart does not read is a
/// typo or a leftover, and is warned about. Other variables (`PATH`, a platform's own) are
/// none of our business.
const OUR_PREFIXES: &[&str] = &[
    "APP_",
    "ALLOW_SANDBOX",
    "DB_",
    "DATABASE_URL",
    "JWT_",
    "ARGON2_",
    "PASSWORD_",
    "ADMIN_",
    "RATE_LIMIT",
    "TRUSTED_PROX",
    "PAGINATION_",
    "STORE_",
    "SHIPPING_",
    "MELHORENVIO_",
    "CORREIOS_",
    "PIX_",
    "CARD_",
    "PAYMENT_",
    "ORDER_",
    "MAX_UNPAID",
    "PROPAY_",
    "GO_TO_PROPAY",
    "OPENPIX_",
    "WOOVI_",
    "STRIPE_",
    "MERCADOPAGO_",
    "CIRCUIT_BREAKER_",
    "NFE_",
    "FOCUSNFE_",
    "ENOTAS_",
    "MAIL_",
    "MAILER_",
    "RESEND_",
    "WORKER_",
    "BOARD_",
    "TICK_",
    "JOBS_",
    "CART_",
    "CACHE_",
];

/// Names of earlier versions (the Go service among them) and the settings that replaced them.
pub const RENAMED: &[(&str, &str)] = &[
    ("MAILER_FROM_EMAIL", "MAIL_FROM"),
    ("MAILER_FROM_NAME", "MAIL_FROM (\"Name <address>\")"),
    ("MAILER_PROVIDER", "MAIL_PROVIDER"),
    ("MAILER_API_KEY", "RESEND_API_KEY"),
    (
        "SHIPPING_API_KEY",
        "MELHORENVIO_TOKEN (SHIPPING_PROVIDER=melhorenvio) or CORREIOS_USER and CORREIOS_ACCESS_CODE (SHIPPING_PROVIDER=correios)",
    ),
    ("SHIPPING_ORIGIN_CEP", "SHIPPING_SENDER_CEP"),
    ("SHIPPING_FROM_CEP", "SHIPPING_SENDER_CEP"),
    (
        "NFE_API_KEY",
        "FOCUSNFE_TOKEN (NFE_PROVIDER=focusnfe) or ENOTAS_API_KEY (NFE_PROVIDER=enotas)",
    ),
    ("NFE_CNPJ", "NFE_EMITTER_CNPJ"),
    ("NFE_IE", "NFE_EMITTER_IE"),
    ("NFE_UF", "NFE_EMITTER_UF"),
    ("NFE_ENVIRONMENT", "NFE_AMBIENTE"),
    ("JWT_EXPIRATION", "JWT_TTL"),
    ("JWT_EXPIRES_IN", "JWT_TTL"),
    ("PAYMENT_PROVIDER", "PIX_PROVIDER and CARD_PROVIDER"),
    ("PIX_EXPIRATION", "PIX_EXPIRES_IN"),
    ("ORDER_EXPIRATION", "ORDER_PAYMENT_TTL"),
    (
        "PROPAY_SECRET",
        "GO_TO_PROPAY_SECRET and PROPAY_TO_GO_SECRET",
    ),
    ("STRIPE_API_KEY", "STRIPE_SECRET_KEY"),
    ("RATE_LIMIT_RPS", "RATE_LIMIT_GLOBAL and RATE_LIMIT_WINDOW"),
    ("TRUSTED_PROXY", "TRUSTED_PROXIES"),
    ("CACHE_TTL", "CACHE_TTL_PRODUCTS and CACHE_TTL_CATEGORIES"),
    ("WORKER_COUNT", "WORKER_CONCURRENCY"),
];

/// `JWT_SECRET` values committed to this repository (scripts, compose file, benchmarks,
/// tests): anyone can sign tokens with them. A test finds every value the repository assigns
/// to `JWT_SECRET` and insists it is listed here.
const PUBLISHED_JWT_SECRETS: &[&str] = &[
    "dev-only-secret-change-me-in-production-0123456789",
    "change-me-this-is-only-for-local-docker-use-0123",
    "bench-only-secret-0123456789abcdef0123456789abcdef",
    "chaos-only-secret-0123456789abcdef0123456789abcdef",
    "fuzz-only-secret-0123456789abcdef0123456789",
    "test-secret-test-secret-test-secret!",
    "another-secret-another-secret-another!",
];

/// `APP_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
        }
    }
}

/// The providers this configuration selects, by the names their variables take (defaults
/// filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProviders {
    pub pix: String,
    pub card: String,
    pub nfe: String,
    pub mail: String,
    pub shipping: String,
}

impl ActiveProviders {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let named = |name: &str, default: &str| {
            env(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            pix: named("PIX_PROVIDER", "sandbox"),
            card: named("CARD_PROVIDER", "sandbox"),
            nfe: named("NFE_PROVIDER", "sandbox"),
            mail: named("MAIL_PROVIDER", "outbox"),
            shipping: named("SHIPPING_PROVIDER", "table"),
        }
    }

    /// The providers that never reach the network, as (variable, value). The shipping table
    /// is not among them: pricing from a table is a legitimate production choice.
    fn without_network(&self) -> Vec<(&'static str, &str)> {
        [
            ("PIX_PROVIDER", self.pix.as_str(), "sandbox"),
            ("CARD_PROVIDER", self.card.as_str(), "sandbox"),
            ("NFE_PROVIDER", self.nfe.as_str(), "sandbox"),
            ("MAIL_PROVIDER", self.mail.as_str(), "outbox"),
        ]
        .into_iter()
        .filter(|(_, value, offline)| value == offline)
        .map(|(name, value, _)| (name, value))
        .collect()
    }
}

/// One reason production refuses to start, naming the variable to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objection {
    pub variable: &'static str,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("APP_ENV=production refuses to start: {}", describe(.0))]
    Refused(Vec<Objection>),
}

fn describe(objections: &[Objection]) -> String {
    objections
        .iter()
        .map(|o| format!("{} {}", o.variable, o.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_bool(name: &'static str, raw: Option<String>) -> Result<bool, ConfigError> {
    match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "expected true or false".into(),
        }),
    }
}

/// `APP_ENV`: `development` (the default) or `production`.
pub fn app_env(env: &dyn Fn(&str) -> Option<String>) -> Result<AppEnv, ConfigError> {
    match env("APP_ENV")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("development") => Ok(AppEnv::Development),
        Some("production") => Ok(AppEnv::Production),
        Some(_) => Err(ConfigError::Invalid {
            name: "APP_ENV",
            reason: "expected development or production".into(),
        }),
    }
}

/// What production objects to in this configuration; nothing in development.
pub fn production_objections(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Objection>, ConfigError> {
    if app_env(env)? != AppEnv::Production {
        return Ok(Vec::new());
    }
    let mut objections = Vec::new();
    if !parse_bool(
        "ALLOW_SANDBOX_IN_PRODUCTION",
        env("ALLOW_SANDBOX_IN_PRODUCTION"),
    )? {
        for (variable, value) in ActiveProviders::from_env(env).without_network() {
            objections.push(Objection {
                variable,
                reason: format!(
                    "is {value} (the default when unset), which never reaches the network: \
                     choose a real provider, or set ALLOW_SANDBOX_IN_PRODUCTION=true"
                ),
            });
        }
    }
    if env("JWT_SECRET").is_some_and(|secret| is_published_jwt_secret(&secret)) {
        objections.push(Objection {
            variable: "JWT_SECRET",
            reason: "is a development value published in cart's repository: anyone can sign \
                     tokens with it; generate a secret of your own (e.g. openssl rand -hex 32)"
                .into(),
        });
    }
    Ok(objections)
}

pub fn is_published_jwt_secret(secret: &str) -> bool {
    PUBLISHED_JWT_SECRETS.contains(&secret.trim())
}

/// A set variable that cart does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadVariable {
    pub name: String,
    /// What to set instead, when the name is a known old one.
    pub instead: Option<&'static str>,
}

fn is_read(name: &str) -> bool {
    READ_VARIABLES.contains(&name)
        || TEST_HOOKS.contains(&name)
        || READ_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The variables among `names` (those set) that cart does not read: the known old names, and
/// any other with one of our prefixes.
pub fn unread_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<UnreadVariable> {
    let names: BTreeSet<&str> = names.into_iter().collect();
    names
        .into_iter()
        .filter(|name| !is_read(name))
        .filter_map(|name| {
            let instead = RENAMED
                .iter()
                .find(|(old, _)| *old == name)
                .map(|(_, new)| *new);
            let ours = OUR_PREFIXES.iter().any(|p| name.starts_with(p));
            (instead.is_some() || ours).then(|| UnreadVariable {
                name: name.to_owned(),
                instead,
            })
        })
        .collect()
}

/// The start-up check of `cart-api serve` and `cart-worker run`: logs the active providers
/// and each unread variable, then refuses a production start that [`production_objections`]
/// objects to. Reads the process environment (a blank variable counts as unset).
pub fn check_startup(binary: &'static str) -> Result<AppEnv, StartupError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mode = app_env(&env)?;
    let providers = ActiveProviders::from_env(&env);
    tracing::info!(
        binary,
        app_env = mode.as_str(),
        pix = %providers.pix,
        card = %providers.card,
        nfe = %providers.nfe,
        mail = %providers.mail,
        shipping = %providers.shipping,
        "active providers"
    );
    let set: Vec<String> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            (!value.is_empty()).then_some(name)
        })
        .collect();
    for unread in unread_variables(set.iter().map(String::as_str)) {
        match unread.instead {
            Some(instead) => tracing::warn!(
                variable = %unread.name,
                instead,
                "{} is set but cart does not read it; use {instead} instead",
                unread.name
            ),
            None => tracing::warn!(
                variable = %unread.name,
                "{} is set but cart does not read it (a typo, or a setting of another version?)",
                unread.name
            ),
        }
    }
    let objections = production_objections(&env)?;
    if objections.is_empty() {
        Ok(mode)
    } else {
        Err(StartupError::Refused(objections))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    /// A secret of our own (kept off any line that names the variable, so that the scan of
    /// committed secrets below does not take it for one).
    const OWN_SECRET: &str = "a-secret-nobody-has-seen-0123456789abcdef";

    /// Real providers everywhere and a secret of our own.
    const REAL: &[(&str, &str)] = &[
        ("APP_ENV", "production"),
        ("PIX_PROVIDER", "openpix"),
        ("CARD_PROVIDER", "stripe"),
        ("NFE_PROVIDER", "focusnfe"),
        ("MAIL_PROVIDER", "resend"),
        ("JWT_SECRET", OWN_SECRET),
    ];

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<(&str, &str)> = REAL
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        pairs.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
        pairs
    }

    fn objected(pairs: &[(&str, &str)]) -> Vec<&'static str> {
        production_objections(&env_of(pairs))
            .unwrap()
            .into_iter()
            .map(|o| o.variable)
            .collect()
    }

    #[test]
    fn production_with_real_providers_and_an_own_secret_starts() {
        assert!(objected(REAL).is_empty());
        // The rate table prices shipping without a network, legitimately.
        assert!(objected(&with(&[("SHIPPING_PROVIDER", "table")])).is_empty());
    }

    #[test]
    fn production_refuses_each_no_network_provider_by_name() {
        for (variable, value) in [
            ("PIX_PROVIDER", "sandbox"),
            ("CARD_PROVIDER", "sandbox"),
            ("NFE_PROVIDER", "Sandbox"),
            ("MAIL_PROVIDER", "outbox"),
        ] {
            assert_eq!(objected(&with(&[(variable, value)])), vec![variable]);
            // Unset means the no-network default.
            assert_eq!(objected(&with(&[(variable, "")])), vec![variable]);
        }
        let refusal = StartupError::Refused(
            production_objections(&env_of(&with(&[("PIX_PROVIDER", "sandbox")]))).unwrap(),
        );
        let message = refusal.to_string();
        assert!(message.contains("PIX_PROVIDER"), "{message}");
        assert!(message.contains("ALLOW_SANDBOX_IN_PRODUCTION"), "{message}");
    }

    #[test]
    fn allow_sandbox_in_production_lets_the_defaults_start() {
        let pairs = [
            ("APP_ENV", "production"),
            ("ALLOW_SANDBOX_IN_PRODUCTION", "true"),
            ("JWT_SECRET", OWN_SECRET),
        ];
        assert!(objected(&pairs).is_empty());
        let bad = [
            ("APP_ENV", "production"),
            ("ALLOW_SANDBOX_IN_PRODUCTION", "maybe"),
        ];
        assert!(matches!(
            production_objections(&env_of(&bad)),
            Err(ConfigError::Invalid {
                name: "ALLOW_SANDBOX_IN_PRODUCTION",
                ..
            })
        ));
    }

    #[test]
    fn production_refuses_every_published_jwt_secret_even_with_sandboxes_allowed() {
        for secret in PUBLISHED_JWT_SECRETS {
            let pairs = with(&[
                ("JWT_SECRET", secret),
                ("ALLOW_SANDBOX_IN_PRODUCTION", "true"),
            ]);
            assert_eq!(objected(&pairs), vec!["JWT_SECRET"], "{secret}");
        }
    }

    #[test]
    fn development_objects_to_nothing() {
        let pairs = [("JWT_SECRET", PUBLISHED_JWT_SECRETS[0])];
        assert!(objected(&pairs).is_empty());
        assert!(objected(&[("APP_ENV", "development")]).is_empty());
        assert!(matches!(
            production_objections(&env_of(&[("APP_ENV", "prod")])),
            Err(ConfigError::Invalid {
                name: "APP_ENV",
                ..
            })
        ));
    }

    #[test]
    fn providers_are_named_with_their_defaults() {
        let providers = ActiveProviders::from_env(&env_of(&[("CARD_PROVIDER", " Stripe ")]));
        assert_eq!(
            providers,
            ActiveProviders {
                pix: "sandbox".into(),
                card: "stripe".into(),
                nfe: "sandbox".into(),
                mail: "outbox".into(),
                shipping: "table".into(),
            }
        );
    }

    #[test]
    fn unread_variables_are_found_with_their_replacements() {
        let set = [
            "MAILER_FROM_EMAIL",
            "SHIPPING_API_KEY",
            "NFE_API_KEY",
            "NFE_CNPJ",
            "NFE_EMITER_CNPJ",
            "MAIL_FROM",
            "NFE_EMITTER_CNPJ",
            "WORKER_CONCURRENCY_SEND_EMAIL",
            "WORKER_TEST_JOBS",
            "PATH",
            "HOSTNAME",
            "FLY_APP_NAME",
        ];
        let unread = unread_variables(set);
        let instead = |name: &str| {
            unread
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.instead)
                .unwrap_or_else(|| panic!("{name} is reported"))
        };
        assert_eq!(instead("MAILER_FROM_EMAIL"), Some("MAIL_FROM"));
        assert!(
            instead("SHIPPING_API_KEY")
                .unwrap()
                .contains("MELHORENVIO_TOKEN")
        );
        assert!(instead("SHIPPING_API_KEY").unwrap().contains("CORREIOS_"));
        assert!(instead("NFE_API_KEY").unwrap().contains("FOCUSNFE_TOKEN"));
        assert!(instead("NFE_API_KEY").unwrap().contains("ENOTAS_API_KEY"));
        assert_eq!(instead("NFE_CNPJ"), Some("NFE_EMITTER_CNPJ"));
        // A typo with our prefix has no known replacement but is still reported.
        assert_eq!(instead("NFE_EMITER_CNPJ"), None);
        assert_eq!(unread.len(), 5, "{unread:?}");
    }

    /// `.env.example`'s variables, commented-out ones included.
    fn documented() -> BTreeSet<String> {
        include_str!("../../.env.example")
            .lines()
            .filter_map(|line| {
                let line = line.trim_start_matches('#').trim();
                let (name, _) = line.split_once('=')?;
                (!name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .then(|| name.to_owned())
            })
            .collect()
    }

    #[test]
    fn the_list_of_read_variables_is_env_example() {
        let documented = documented();
        let listed: BTreeSet<String> = READ_VARIABLES.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(listed.len(), READ_VARIABLES.len(), "a name is listed twice");
        let undocumented: Vec<_> = listed.difference(&documented).collect();
        let unlisted: Vec<_> = documented.difference(&listed).collect();
        assert!(
            undocumented.is_empty() && unlisted.is_empty(),
            "listed in READ_VARIABLES but not in .env.example: {undocumented:?}; \
             in .env.example but not in READ_VARIABLES: {unlisted:?}"
        );
    }

    #[test]
    fn renamed_variables_point_at_variables_we_read() {
        for (old, new) in RENAMED {
            assert!(!is_read(old), "{old} is read, so it is not renamed");
            let named: Vec<&str> = new
                .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .filter(|word| word.len() > 3 && word.contains('_'))
                .collect();
            assert!(!named.is_empty(), "{old} → {new}");
            for name in named {
                assert!(
                    is_read(name) || name.ends_with('_'),
                    "{old} → {name}, not a variable cart reads"
                );
            }
        }
    }

    /// Every `JWT_SECRET` value written in the repository (scripts, compose, docs, tests).
    fn committed_jwt_secrets() -> BTreeSet<String> {
        fn walk(dir: &std::path::Path, found: &mut BTreeSet<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    if !matches!(name.as_str(), "target" | ".git" | "vendor" | "var") {
                        walk(&path, found);
                    }
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                for line in text.lines().filter(|l| l.contains("JWT_SECRET")) {
                    let tokens = line.split(|c: char| {
                        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '!' | '.'))
                    });
                    for token in tokens {
                        let token = token.trim_start_matches('-');
                        if token.len() >= crate::auth::jwt::MIN_SECRET_BYTES
                            && token != "JWT_SECRET"
                        {
                            found.insert(token.to_owned());
                        }
                    }
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = BTreeSet::new();
        walk(&root, &mut found);
        found
    }

    #[test]
    fn every_jwt_secret_committed_to_the_repository_is_refused() {
        let committed = committed_jwt_secrets();
        assert!(
            committed.contains("dev-only-secret-change-me-in-production-0123456789"),
            "the scan finds scripts/run's secret: {committed:?}"
        );
        for secret in &committed {
            assert!(
                is_published_jwt_secret(secret),
                "{secret:?} is committed but not in PUBLISHED_JWT_SECRETS"
            );
        }
    }
}
