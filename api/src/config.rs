//! The API's settings, read once at start-up from the environment.

use std::{net::SocketAddr, time::Duration};

use cart_core::{
    auth::{
        jwt::JwtKeys,
        password::{PasswordConfig, PasswordHasher},
    },
    config::{self, ConfigError},
    db::DbConfig,
};
use ipnet::IpNet;
use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct RateLimits {
    pub enabled: bool,
    /// Requests per window for every route, per client IP, counted by each instance on its
    /// own (the other budgets are shared by every instance through the database).
    pub global_per_window: u32,
    pub global_window: Duration,
    pub login_per_window: u32,
    pub login_window: Duration,
    pub register_per_window: u32,
    pub register_window: Duration,
    pub forgot_per_window: u32,
    pub forgot_window: Duration,
    /// Failed logins per account (normalised e-mail), whatever the client's address.
    pub failed_logins_per_window: u32,
    pub failed_logins_window: Duration,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` we believe; everyone else is
    /// their socket address.
    pub trusted_proxies: Vec<IpNet>,
}

impl RateLimits {
    /// The failed-login budget of one account, when rate limits are on.
    pub fn failed_logins(&self) -> Option<cart_core::rate_limits::Quota> {
        if !self.enabled {
            return None;
        }
        cart_core::rate_limits::Quota::new(self.failed_logins_per_window, self.failed_logins_window)
    }
}

/// `TRUSTED_PROXIES`: comma-separated addresses (`10.0.0.7`, `fd00::1`) or CIDR ranges
/// (`10.0.0.0/8`, `fdaa::/16`). IPv4-mapped IPv6 ranges are stored as IPv4, the form client
/// addresses are compared in.
pub fn parse_trusted_proxies(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(canonical_net)
                .map_err(|_| ConfigError::Invalid {
                    name: "TRUSTED_PROXIES",
                    reason: format!("{s:?} is neither an IP address nor a CIDR range"),
                })
        })
        .collect()
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(|v4| IpNet::V4(v4.trunc()))
                .unwrap_or(net),
            None => net,
        },
        other => other.trunc(),
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    pub db: DbConfig,
    pub jwt: JwtKeys,
    pub allowed_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub pagination_max_limit: i64,
    pub rate_limits: RateLimits,
    pub store_name: String,
    pub frontend_url: String,
    /// Argon2id hashing under a concurrency bound (`ARGON2_*`, `PASSWORD_HASH_*`).
    pub passwords: PasswordHasher,
    /// How long a password reset link works (`PASSWORD_RESET_TTL`, default 1h).
    pub password_reset_ttl: Duration,
    /// `ADMIN_EMAIL` + `ADMIN_PASSWORD`: an admin made sure of at start-up.
    pub admin_bootstrap: Option<AdminCredentials>,
    pub cache: crate::cache::CacheConfig,
    /// Checkout settings (`ORDER_PAYMENT_TTL`).
    pub orders: cart_core::orders::OrdersConfig,
    /// The CEP parcels leave from, 8 digits (`SHIPPING_SENDER_CEP`).
    pub shipping_sender_cep: String,
    /// Payment providers, webhook verifiers, circuit breaker and `PAYMENT_WAIT`.
    pub payments: cart_core::payments::flow::PaymentSettings,
}

#[derive(Debug, Clone)]
pub struct AdminCredentials {
    pub email: String,
    pub password: SecretString,
}

fn admin_bootstrap_from_env() -> Result<Option<AdminCredentials>, ConfigError> {
    match (config::var("ADMIN_EMAIL"), config::var("ADMIN_PASSWORD")) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => Ok(Some(AdminCredentials {
            email,
            password: SecretString::from(password),
        })),
        (Some(_), None) => Err(ConfigError::Missing("ADMIN_PASSWORD")),
        (None, Some(_)) => Err(ConfigError::Missing("ADMIN_EMAIL")),
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let host = config::var_or("HOST", "0.0.0.0");
        let port: u16 = config::var_parsed("PORT", 8080)?;
        let bind = format!("{host}:{port}")
            .parse()
            .map_err(|_| ConfigError::Invalid {
                name: "HOST",
                reason: "not an IP address".into(),
            })?;
        let trusted_proxies = config::var("TRUSTED_PROXIES")
            .map(|raw| parse_trusted_proxies(&raw))
            .transpose()?
            .unwrap_or_default();
        Self {
            bind,
            db: DbConfig::from_env()?,
            jwt: JwtKeys::from_env()?,
            allowed_origins: config::var("ALLOWED_ORIGINS")
                .map(|raw| {
                    raw.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            body_limit_bytes: config::var_parsed("BODY_LIMIT_BYTES", 1024 * 1024)?,
            request_timeout: config::var_duration("REQUEST_TIMEOUT", Duration::from_secs(30))?,
            shutdown_timeout: config::var_duration("SHUTDOWN_TIMEOUT", Duration::from_secs(30))?,
            pagination_max_limit: config::var_parsed("PAGINATION_MAX_LIMIT", 100)?,
            rate_limits: RateLimits {
                enabled: config::var_bool("RATE_LIMIT_ENABLED", true)?,
                global_per_window: config::var_parsed("RATE_LIMIT_GLOBAL", 300)?,
                global_window: config::var_duration("RATE_LIMIT_WINDOW", Duration::from_secs(60))?,
                login_per_window: config::var_parsed("RATE_LIMIT_LOGIN", 5)?,
                login_window: config::var_duration(
                    "RATE_LIMIT_LOGIN_WINDOW",
                    Duration::from_secs(20),
                )?,
                register_per_window: config::var_parsed("RATE_LIMIT_REGISTER", 3)?,
                register_window: config::var_duration(
                    "RATE_LIMIT_REGISTER_WINDOW",
                    Duration::from_secs(3600),
                )?,
                forgot_per_window: config::var_parsed("RATE_LIMIT_FORGOT_PASSWORD", 5)?,
                forgot_window: config::var_duration(
                    "RATE_LIMIT_FORGOT_PASSWORD_WINDOW",
                    Duration::from_secs(3600),
                )?,
                failed_logins_per_window: config::var_parsed("RATE_LIMIT_FAILED_LOGINS", 10)?,
                failed_logins_window: config::var_duration(
                    "RATE_LIMIT_FAILED_LOGINS_WINDOW",
                    Duration::from_secs(15 * 60),
                )?,
                trusted_proxies,
            },
            store_name: config::var_or("STORE_NAME", "Loja Cart"),
            frontend_url: config::var_or("FRONTEND_URL", "http://localhost:3000"),
            passwords: PasswordHasher::new(&PasswordConfig::from_env()?).map_err(|e| {
                ConfigError::Invalid {
                    name: "ARGON2_MEMORY_KIB",
                    reason: e.to_string(),
                }
            })?,
            password_reset_ttl: config::var_duration(
                "PASSWORD_RESET_TTL",
                Duration::from_secs(3600),
            )?,
            admin_bootstrap: admin_bootstrap_from_env()?,
            cache: crate::cache::CacheConfig::from_env()?,
            orders: cart_core::orders::OrdersConfig::from_env()?,
            shipping_sender_cep: cart_core::shipping::sender_cep_from_env()?,
            payments: cart_core::payments::flow::PaymentSettings::from_env()?,
        }
        .checked()
    }

    /// Settings that must agree with each other.
    fn checked(self) -> Result<Self, ConfigError> {
        self.orders
            .check_covers(self.payments.providers.pix_expires_in)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(raw: &str) -> IpNet {
        raw.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_take_addresses_and_cidr_ranges() {
        let parsed =
            parse_trusted_proxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,fd00::1,,").unwrap();
        assert_eq!(
            parsed,
            vec![
                net("10.0.0.0/8"),
                net("192.0.2.7/32"),
                net("2001:db8::/32"),
                net("fd00::1/128"),
            ]
        );
        // Host bits are dropped; an IPv4-mapped range is an IPv4 range.
        assert_eq!(
            parse_trusted_proxies("10.1.2.3/8, ::ffff:172.16.0.0/108").unwrap(),
            vec![net("10.0.0.0/8"), net("172.16.0.0/12")]
        );
        assert_eq!(parse_trusted_proxies("").unwrap(), vec![]);
    }

    #[test]
    fn a_bad_trusted_proxy_is_a_config_error_naming_the_variable() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "proxy.internal",
            "10.0.0",
            "10.0.0.1/x",
        ] {
            let err = parse_trusted_proxies(&format!("10.0.0.1, {bad}")).unwrap_err();
            match &err {
                ConfigError::Invalid { name, reason } => {
                    assert_eq!(*name, "TRUSTED_PROXIES");
                    assert!(reason.contains(bad), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().contains("TRUSTED_PROXIES"));
        }
    }
}
