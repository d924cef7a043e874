//! Per-client rate limits (GCRA from `governor`, through `tower_governor`): a global budget
//! for every route, and tighter ones for logging in, registering and asking for password
//! resets. "N per window" allows a burst of N and regains one request every window/N.
//! A refused request gets a 429 problem with `Retry-After`.
//!
//! The client is the socket's peer address. `X-Forwarded-For` is believed only when the peer
//! is one of `TRUSTED_PROXIES`: then the client is the rightmost address in it that is not a
//! trusted proxy. IPv6 clients are limited per /64, the block one subscriber usually holds.

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
use governor::{clock::Clock, middleware::NoOpMiddleware};
use tower_governor::{
    GovernorError, GovernorLayer,
    governor::{GovernorConfig, GovernorConfigBuilder, SharedRateLimiter},
    key_extractor::KeyExtractor,
};

use crate::{config::RateLimits, error::ApiError};

/// The rate-limiting key of a request: its client address as described in the module docs.
#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted_proxies: Arc<[IpAddr]>,
}

impl ClientIp {
    pub fn new(trusted_proxies: &[IpAddr]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.iter().map(|ip| ip.to_canonical()).collect(),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.contains(&ip)
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

/// The route-specific budgets.
struct RouteLimiters {
    client_ip: ClientIp,
    login: Option<Limiter>,
    register: Option<Limiter>,
    forgot_password: Option<Limiter>,
}

impl RouteLimiters {
    fn for_request(&self, req: &Request) -> Option<&Limiter> {
        if req.method() != Method::POST {
            return None;
        }
        match req.uri().path() {
            "/api/auth/login" => self.login.as_ref(),
            "/api/auth/register" => self.register.as_ref(),
            "/api/auth/forgot-password" => self.forgot_password.as_ref(),
            _ => None,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Limiter> {
        [&self.login, &self.register, &self.forgot_password]
            .into_iter()
            .flatten()
    }
}

/// Whole seconds, rounded up, so that retrying after `Retry-After` succeeds.
fn round_up(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

async fn limit_sensitive_routes(
    State(limiters): State<Arc<RouteLimiters>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = limiters.for_request(&req) {
        let key = limiters.client_ip.key_of(&req);
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(limiter.clock().now());
            return ApiError::TooManyRequests {
                retry_after: round_up(wait),
            }
            .into_response();
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

/// Adds the rate limits to `router` when they are enabled.
pub fn apply<S>(router: Router<S>, limits: &RateLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if !limits.enabled {
        return router;
    }
    let client_ip = ClientIp::new(&limits.trusted_proxies);
    let limiter = |n, window| quota(n, window, &client_ip).map(|c| c.limiter().clone());
    let routes = Arc::new(RouteLimiters {
        login: limiter(limits.login_per_window, limits.login_window),
        register: limiter(limits.register_per_window, limits.register_window),
        forgot_password: limiter(limits.forgot_per_window, limits.forgot_window),
        client_ip: client_ip.clone(),
    });
    let global = quota(limits.global_per_window, limits.global_window, &client_ip).map(Arc::new);

    let mut every_limiter: Vec<Limiter> = routes.all().cloned().collect();
    every_limiter.extend(global.as_ref().map(|g| g.limiter().clone()));
    forget_idle_clients(&every_limiter);

    let router = router.layer(from_fn_with_state(routes, limit_sensitive_routes));
    match global {
        Some(global) => router.layer(GovernorLayer::new(global).error_handler(governor_problem)),
        None => router,
    }
}

/// The limiters remember every client they saw; once a minute, forget those whose budget
/// is full again, so memory follows the number of recent clients. The task ends when the
/// router (and with it the limiters) is dropped.
fn forget_idle_clients(limiters: &[Limiter]) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Vec<Weak<_>> = limiters.iter().map(Arc::downgrade).collect();
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let mut alive = false;
            for limiter in weak.iter().filter_map(Weak::upgrade) {
                alive = true;
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            if !alive {
                break;
            }
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

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let client_ip = ClientIp::new(&[ip("10.0.0.1")]);
        let req = request("203.0.113.7:5000", Some("198.51.100.1"));
        assert_eq!(client_ip.client_of(&req), ip("203.0.113.7"));
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let client_ip = ClientIp::new(&[ip("10.0.0.1"), ip("10.0.0.2")]);
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
    fn ipv6_clients_share_their_64_block() {
        assert_eq!(
            subscriber_block(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(subscriber_block(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(
            round_up(Duration::from_millis(3200)),
            Duration::from_secs(4)
        );
        assert_eq!(round_up(Duration::from_secs(4)), Duration::from_secs(4));
    }
}
