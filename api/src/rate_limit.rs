//! Per-client rate limits: a global budget for every route, and tighter ones for logging in,
//! registering and asking for password resets. "N per window" allows a burst of N and regains
//! one request every window/N (GCRA). A refused request gets a 429 problem with `Retry-After`.
//!
//! The login, register and forgot-password budgets live in PostgreSQL
//! (`cart_core::rate_limits`), so every API instance spends from the same budget. The global
//! budget is kept in each process (`governor`, through `tower_governor`): it is per instance,
//! so behind N instances a client may make up to N times `RATE_LIMIT_GLOBAL` requests; it is
//! there to shed floods cheaply, not to meter anyone exactly.
//!
//! The client is the socket's peer address. `X-Forwarded-For` is believed only when the peer
//! is in one of `TRUSTED_PROXIES` (addresses or CIDR ranges): then the client is the
//! rightmost address in it that is not a trusted proxy. IPv6 clients are limited per /64, the
//! block one subscriber usually holds.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Weak},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{self, Method},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use cart_core::rate_limits::{self, Quota, Verdict};
use governor::middleware::NoOpMiddleware;
use ipnet::IpNet;
use sqlx::PgPool;
use tower_governor::{
    GovernorError, GovernorLayer,
    governor::{GovernorConfig, GovernorConfigBuilder, SharedRateLimiter},
    key_extractor::KeyExtractor,
};

use crate::{config::RateLimits, error::ApiError};

/// The rate-limiting key of a request: its client address as described in the module docs.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted_proxies: Arc<[IpNet]>,
}

impl ClientIp {
    /// `trusted_proxies` as `config::parse_trusted_proxies` gives them (IPv4 ranges as IPv4).
    pub fn new(trusted_proxies: &[IpNet]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.into(),
        }
    }

    /// `ip` in its canonical form (IPv4-mapped IPv6 as IPv4).
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The client address; `0.0.0.0` when the server was started without connection info.
    pub fn client_of<T>(&self, req: &http::Request<T>) -> IpAddr {
        let Some(peer) = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_canonical())
        else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match parse_hop(hop) {
                Some(ip) if self.is_trusted(ip) => client = ip,
                Some(ip) => return ip,
                // Garbage is written by whoever is left of the last proxy we trust.
                None => break,
            }
        }
        client
    }

    fn key_of<T>(&self, req: &http::Request<T>) -> IpAddr {
        subscriber_block(self.client_of(req))
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &http::Request<T>) -> Result<Self::Key, GovernorError> {
        Ok(self.key_of(req))
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .or_else(|_| raw.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// IPv4 as it is; IPv6 reduced to its /64.
fn subscriber_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

type Limiter = SharedRateLimiter<IpAddr, NoOpMiddleware>;

fn quota(
    per_window: u32,
    window: Duration,
    client_ip: &ClientIp,
) -> Option<GovernorConfig<ClientIp, NoOpMiddleware>> {
    if per_window == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .key_extractor(client_ip.clone())
        .period(window / per_window)
        .burst_size(per_window)
        .finish()
}

/// The route-specific budgets, shared by every instance through the database.
struct RouteBudgets {
    db: PgPool,
    client_ip: ClientIp,
    login: Option<Quota>,
    register: Option<Quota>,
    forgot_password: Option<Quota>,
}

impl RouteBudgets {
    /// The budget's name and quota for this request, if it is metered.
    fn for_request(&self, req: &Request) -> Option<(&'static str, Quota)> {
        if req.method() != Method::POST {
            return None;
        }
        let (name, quota) = match req.uri().path() {
            "/api/auth/login" => ("login:ip", self.login),
            "/api/auth/register" => ("register:ip", self.register),
            "/api/auth/forgot-password" => ("forgot_password:ip", self.forgot_password),
            _ => return None,
        };
        quota.map(|quota| (name, quota))
    }
}

async fn limit_sensitive_routes(
    State(budgets): State<Arc<RouteBudgets>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some((budget, quota)) = budgets.for_request(&req) {
        let key = budgets.client_ip.key_of(&req).to_string();
        match rate_limits::take(&budgets.db, budget, &key, quota).await {
            Ok(Verdict::Allowed) => {}
            Ok(Verdict::Exhausted { retry_after }) => {
                return ApiError::TooManyRequests { retry_after }.into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(req).await
}

fn governor_problem(error: GovernorError) -> Response<Body> {
    match error {
        // `wait_time` is rounded down to whole seconds.
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::TooManyRequests {
            retry_after: Duration::from_secs(wait_time + 1),
        }
        .into_response(),
        other => ApiError::from(anyhow::anyhow!("rate limiter: {other}")).into_response(),
    }
}

/// Adds the rate limits to `router` when they are enabled; `db` keeps the shared budgets.
pub fn apply<S>(router: Router<S>, limits: &RateLimits, db: &PgPool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if !limits.enabled {
        return router;
    }
    let client_ip = ClientIp::new(&limits.trusted_proxies);
    let budgets = Arc::new(RouteBudgets {
        db: db.clone(),
        login: Quota::new(limits.login_per_window, limits.login_window),
        register: Quota::new(limits.register_per_window, limits.register_window),
        forgot_password: Quota::new(limits.forgot_per_window, limits.forgot_window),
        client_ip: client_ip.clone(),
    });
    let global = quota(limits.global_per_window, limits.global_window, &client_ip).map(Arc::new);
    if let Some(global) = &global {
        forget_idle_clients(global.limiter());
    }
    prune_shared_budgets(&budgets);

    let router = router.layer(from_fn_with_state(budgets, limit_sensitive_routes));
    match global {
        Some(global) => router.layer(GovernorLayer::new(global).error_handler(governor_problem)),
        None => router,
    }
}

/// Once a minute, deletes the shared budgets that are full again, so the table follows the
/// number of recent clients. Every instance sweeps (a cheap indexed delete); the task ends
/// when the router is dropped.
fn prune_shared_budgets(budgets: &Arc<RouteBudgets>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(budgets);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(budgets) = weak.upgrade() else {
                break;
            };
            if budgets.db.is_closed() {
                break;
            }
            if let Err(e) = rate_limits::prune(&budgets.db).await {
                tracing::warn!(error = %e, "pruning rate-limit budgets failed");
            }
        }
    });
}

/// The global limiter remembers every client it saw; once a minute, forget those whose
/// budget is full again, so memory follows the number of recent clients. The task ends when
/// the router (and with it the limiter) is dropped.
fn forget_idle_clients(limiter: &Limiter) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<_> = Arc::downgrade(limiter);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(limiter) = weak.upgrade() else {
                break;
            };
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> http::Request<()> {
        let mut req = http::Request::builder().uri("/api/auth/login");
        if let Some(value) = forwarded {
            req = req.header("x-forwarded-for", value);
        }
        let mut req = req.body(()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn proxies(raw: &str) -> ClientIp {
        ClientIp::new(&crate::config::parse_trusted_proxies(raw).unwrap())
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let client_ip = proxies("10.0.0.1");
        let req = request("203.0.113.7:5000", Some("198.51.100.1"));
        assert_eq!(client_ip.client_of(&req), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let client_ip = proxies("10.0.0.1, 10.0.0.2");
        // The client forged the first entry; our two proxies appended the rest.
        let req = request("10.0.0.1:5000", Some("1.1.1.1, 198.51.100.9, 10.0.0.2"));
        assert_eq!(client_ip.client_of(&req), ip("198.51.100.9"));
        // Without the header, the proxy itself is the client.
        let req = request("10.0.0.1:5000", None);
        assert_eq!(client_ip.client_of(&req), ip("10.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        let req = request("10.0.0.1:5000", Some("198.51.100.9, nonsense"));
        assert_eq!(client_ip.client_of(&req), ip("10.0.0.1"));
        // Ports and IPv4-mapped IPv6 are understood.
        let req = request("[::ffff:10.0.0.1]:5000", Some("198.51.100.9:1234"));
        assert_eq!(client_ip.client_of(&req), ip("198.51.100.9"));
    }

    #[test]
    fn cidr_ranges_trust_every_proxy_inside_them() {
        let client_ip = proxies("10.0.0.0/8, fdaa::/16");
        // Fly's and Railway's proxies come from anywhere in their range.
        for proxy in ["10.1.2.3:5000", "10.254.0.9:80", "[::ffff:10.9.9.9]:443"] {
            let req = request(proxy, Some("198.51.100.9, 10.77.0.1"));
            assert_eq!(client_ip.client_of(&req), ip("198.51.100.9"), "{proxy}");
        }
        let req = request("[fdaa:0:1::7]:5000", Some("2001:db8:5::1, fdaa:9::2"));
        assert_eq!(client_ip.client_of(&req), ip("2001:db8:5::1"));
        // Just outside the ranges: the peer itself is the client, whatever it forwards.
        let req = request("11.0.0.1:5000", Some("198.51.100.9"));
        assert_eq!(client_ip.client_of(&req), ip("11.0.0.1"));
        let req = request("[fdab::1]:5000", Some("198.51.100.9"));
        assert_eq!(client_ip.client_of(&req), ip("fdab::1"));
        // When every hop is trusted, the leftmost one is the client.
        let req = request("10.0.0.1:5000", Some("10.20.30.40"));
        assert_eq!(client_ip.client_of(&req), ip("10.20.30.40"));
    }

    #[test]
    fn ipv6_clients_share_their_64_block() {
        assert_eq!(
            subscriber_block(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(subscriber_block(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
