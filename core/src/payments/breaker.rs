//! A circuit breaker per payment provider, kept in PostgreSQL (`circuit_breakers`) so every
//! API and worker instance sees the same state.
//!
//! - **Closed**: calls go through. Failures are counted in a window that starts at the first
//!   failure and lasts `CIRCUIT_BREAKER_TIMEOUT`; `CIRCUIT_BREAKER_THRESHOLD` failures inside
//!   one window open the breaker. Successes do not reset the count: the rule is "N failures
//!   within T", not "N in a row".
//! - **Open**: calls are refused with the time left until `CIRCUIT_BREAKER_COOLDOWN` has passed.
//! - **Half-open**: after the cooldown exactly one caller gets a probe permit, claimed with a
//!   conditional `UPDATE` so concurrent instances cannot both win. The probe's success closes
//!   the breaker, its failure re-opens it for another cooldown. A probe that never reports
//!   back (its process died) is considered lost after one more cooldown, and the next caller
//!   gets a new probe.
//!
//! Only failures that say the provider is unwell count: timeouts, 5xx/429 and garbage answers
//! ([`ProviderError::is_permanent`] is false). A 4xx rejection means the provider is up.
//! Times come from the database clock, the one clock all instances share.
//!
//! Call [`CircuitBreaker::check`] on a connection that is not inside a long transaction: the
//! probe claim locks the breaker's row until the caller's transaction ends.

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::{
    config::{self, ConfigError},
    http_client::ProviderError,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub threshold: u32,
    pub window: Duration,
    /// How long an open breaker refuses calls before a probe is allowed.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }
}

impl BreakerConfig {
    /// `CIRCUIT_BREAKER_THRESHOLD` (5), `CIRCUIT_BREAKER_TIMEOUT` (60s),
    /// `CIRCUIT_BREAKER_COOLDOWN` (30s).
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let threshold = config::var_parsed("CIRCUIT_BREAKER_THRESHOLD", defaults.threshold)?;
        if threshold == 0 {
            return Err(ConfigError::Invalid {
                name: "CIRCUIT_BREAKER_THRESHOLD",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            threshold,
            window: config::var_duration("CIRCUIT_BREAKER_TIMEOUT", defaults.window)?,
            cooldown: config::var_duration("CIRCUIT_BREAKER_COOLDOWN", defaults.cooldown)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    fn from_db(state: &str) -> Self {
        match state {
            "open" => Self::Open,
            "half_open" => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// Permission to make one call. Report its outcome with [`CircuitBreaker::record_success`]
/// or [`CircuitBreaker::record_failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    provider: String,
    probe: bool,
}

impl Permit {
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Whether this call is the half-open probe whose outcome decides the breaker's state.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    #[error("payment provider {provider} is unavailable (circuit open); retry in {}s", retry_after.as_secs())]
    Open {
        provider: String,
        retry_after: Duration,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<BreakerError> for crate::Error {
    /// An open circuit is a 503 with `Retry-After`.
    fn from(err: BreakerError) -> Self {
        match err {
            BreakerError::Open { retry_after, .. } => crate::Error::Unavailable {
                reason: err.to_string(),
                retry_after: Some(retry_after),
            },
            BreakerError::Db(db) => crate::Error::Db(db),
        }
    }
}

/// A call made through [`CircuitBreaker::call`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Breaker(#[from] BreakerError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl CallError {
    /// Whether retrying later is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Provider(err) if err.is_permanent())
    }
}

impl From<CallError> for crate::Error {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Breaker(err) => err.into(),
            CallError::Provider(err) => err.into(),
        }
    }
}

/// A breaker's row, for operators and health pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub provider: String,
    pub state: BreakerState,
    pub failures: i32,
    pub window_started_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub probe_started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct CircuitBreaker {
    config: BreakerConfig,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// A permit to call `provider`, or `Open` with how long to wait.
    pub async fn check(
        &self,
        conn: &mut PgConnection,
        provider: &str,
    ) -> Result<Permit, BreakerError> {
        let cooldown = self.config.cooldown;
        let row = sqlx::query!(
            r#"
            SELECT state,
                   COALESCE(COALESCE(probe_started_at, opened_at) <= now() - $2::interval,
                            false) AS "probe_due!",
                   COALESCE(GREATEST(EXTRACT(EPOCH FROM COALESCE(probe_started_at, opened_at)
                                                       + $2::interval - now()), 0),
                            0)::float8 AS "wait_secs!"
            FROM circuit_breakers
            WHERE provider = $1
            "#,
            provider,
            cooldown as Duration,
        )
        .fetch_optional(&mut *conn)
        .await?;

        let Some(row) = row else {
            return Ok(self.permit(provider, false));
        };
        if BreakerState::from_db(&row.state) == BreakerState::Closed {
            return Ok(self.permit(provider, false));
        }
        if row.probe_due {
            let claimed = sqlx::query_scalar!(
                r#"
                UPDATE circuit_breakers
                SET state = 'half_open', probe_started_at = now(), updated_at = now()
                WHERE provider = $1
                  AND state <> 'closed'
                  AND COALESCE(probe_started_at, opened_at) <= now() - $2::interval
                RETURNING provider
                "#,
                provider,
                cooldown as Duration,
            )
            .fetch_optional(&mut *conn)
            .await?;
            if claimed.is_some() {
                return Ok(self.permit(provider, true));
            }
            // Someone else took the probe a moment ago; it has a cooldown to report back.
            return Err(self.open(provider, cooldown));
        }
        Err(self.open(provider, Duration::from_secs_f64(row.wait_secs)))
    }

    fn permit(&self, provider: &str, probe: bool) -> Permit {
        Permit {
            provider: provider.to_owned(),
            probe,
        }
    }

    fn open(&self, provider: &str, wait: Duration) -> BreakerError {
        // Retry-After is whole seconds; never advise "0".
        let retry_after = Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64);
        BreakerError::Open {
            provider: provider.to_owned(),
            retry_after,
        }
    }

    /// The call went well (or the provider answered, even with a refusal). A probe's success
    /// closes the breaker; an ordinary success changes nothing.
    pub async fn record_success(
        &self,
        conn: &mut PgConnection,
        permit: &Permit,
    ) -> Result<(), sqlx::Error> {
        if !permit.probe {
            return Ok(());
        }
        sqlx::query!(
            r#"
            UPDATE circuit_breakers
            SET state = 'closed', failures = 0, window_started_at = NULL, opened_at = NULL,
                probe_started_at = NULL, updated_at = now()
            WHERE provider = $1 AND state = 'half_open'
            "#,
            permit.provider,
        )
        .execute(&mut *conn)
        .await?;
        tracing::info!(provider = %permit.provider, "circuit breaker closed after a successful probe");
        Ok(())
    }

    /// The provider failed. A probe's failure re-opens the breaker; an ordinary failure is
    /// counted and opens it at the threshold. Failures reported while the breaker is already
    /// open (calls that started before it opened) are ignored.
    pub async fn record_failure(
        &self,
        conn: &mut PgConnection,
        permit: &Permit,
    ) -> Result<(), sqlx::Error> {
        if permit.probe {
            sqlx::query!(
                r#"
                UPDATE circuit_breakers
                SET state = 'open', opened_at = now(), probe_started_at = NULL, updated_at = now()
                WHERE provider = $1 AND state = 'half_open'
                "#,
                permit.provider,
            )
            .execute(&mut *conn)
            .await?;
            tracing::warn!(provider = %permit.provider, "circuit breaker probe failed; open again");
            return Ok(());
        }

        let failures = sqlx::query_scalar!(
            r#"
            INSERT INTO circuit_breakers AS cb (provider, state, failures, window_started_at)
            VALUES ($1, 'closed', 1, now())
            ON CONFLICT (provider) DO UPDATE SET
                failures = CASE
                    WHEN cb.window_started_at IS NULL OR cb.window_started_at <= now() - $2::interval
                    THEN 1 ELSE cb.failures + 1 END,
                window_started_at = CASE
                    WHEN cb.window_started_at IS NULL OR cb.window_started_at <= now() - $2::interval
                    THEN now() ELSE cb.window_started_at END,
                updated_at = now()
            WHERE cb.state = 'closed'
            RETURNING failures
            "#,
            permit.provider,
            self.config.window as Duration,
        )
        .fetch_optional(&mut *conn)
        .await?;

        let threshold = i32::try_from(self.config.threshold).unwrap_or(i32::MAX);
        if failures.is_some_and(|f| f >= threshold) {
            let opened = sqlx::query!(
                r#"
                UPDATE circuit_breakers
                SET state = 'open', opened_at = now(), probe_started_at = NULL, updated_at = now()
                WHERE provider = $1 AND state = 'closed' AND failures >= $2
                "#,
                permit.provider,
                threshold,
            )
            .execute(&mut *conn)
            .await?;
            if opened.rows_affected() > 0 {
                tracing::warn!(provider = %permit.provider, threshold, "circuit breaker opened");
            }
        }
        Ok(())
    }

    /// The breaker of `provider`; closed when it has never failed.
    pub async fn state(
        &self,
        conn: &mut PgConnection,
        provider: &str,
    ) -> Result<BreakerSnapshot, sqlx::Error> {
        let row = sqlx::query!(
            r#"
            SELECT state, failures, window_started_at, opened_at, probe_started_at
            FROM circuit_breakers WHERE provider = $1
            "#,
            provider,
        )
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(row) => BreakerSnapshot {
                provider: provider.to_owned(),
                state: BreakerState::from_db(&row.state),
                failures: row.failures,
                window_started_at: row.window_started_at,
                opened_at: row.opened_at,
                probe_started_at: row.probe_started_at,
            },
            None => BreakerSnapshot {
                provider: provider.to_owned(),
                state: BreakerState::Closed,
                failures: 0,
                window_started_at: None,
                opened_at: None,
                probe_started_at: None,
            },
        })
    }

    /// Runs `call` under the breaker: refuses at once when open, then records the outcome.
    /// No database connection is held while the provider is being called. Failing to record
    /// an outcome is logged, never allowed to hide the provider's answer (a charge that was
    /// created must reach the caller).
    pub async fn call<T, F>(&self, pool: &PgPool, provider: &str, call: F) -> Result<T, CallError>
    where
        F: Future<Output = Result<T, ProviderError>>,
    {
        let permit = {
            let mut conn = pool.acquire().await.map_err(BreakerError::Db)?;
            self.check(&mut conn, provider).await?
        };
        let result = call.await;
        let provider_failed = matches!(&result, Err(err) if !err.is_permanent());
        let recorded = async {
            let mut conn = pool.acquire().await?;
            if provider_failed {
                self.record_failure(&mut conn, &permit).await
            } else {
                self.record_success(&mut conn, &permit).await
            }
        }
        .await;
        if let Err(err) = recorded {
            tracing::warn!(provider, error = %err, "could not record the circuit breaker outcome");
        }
        result.map_err(CallError::Provider)
    }
}

/// Sets the gauge `circuit_breaker_state{provider}` (0 closed, 1 half-open, 2 open) for each
/// of `providers` (those configured: closed until they fail) and each the table names, read
/// from the database when `/metrics` is scraped. Every instance reports the same shared state,
/// so a dashboard takes the `max` by provider. A database that does not answer is logged and
/// leaves the last values.
pub async fn sample_states(pool: &PgPool, providers: &[&str]) {
    let rows = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query!("SELECT provider, state FROM circuit_breakers").fetch_all(pool),
    )
    .await;
    let rows = match rows {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read the circuit breakers");
            return;
        }
        Err(_) => {
            tracing::warn!("reading the circuit breakers timed out");
            return;
        }
    };
    let mut states: std::collections::BTreeMap<String, BreakerState> = providers
        .iter()
        .map(|provider| ((*provider).to_owned(), BreakerState::Closed))
        .collect();
    for row in rows {
        states.insert(row.provider, BreakerState::from_db(&row.state));
    }
    for (provider, state) in states {
        metrics::gauge!("circuit_breaker_state", "provider" => provider).set(state.gauge_value());
    }
}

impl BreakerState {
    /// How `circuit_breaker_state` reads: the higher, the less the provider is called.
    fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use sqlx::Connection;
    use uuid::Uuid;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

    use super::*;
    use crate::payments::{
        propay::{ProPayClient, ProPayConfig},
        provider::{Payer, PixChargeRequest, PixProvider},
    };

    fn breaker(threshold: u32, cooldown: Duration) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            threshold,
            window: Duration::from_secs(60),
            cooldown,
        })
    }

    async fn migrated(pool: &PgPool) {
        crate::db::migrate(pool).await.unwrap();
    }

    async fn fail(breaker: &CircuitBreaker, pool: &PgPool, provider: &str, times: u32) {
        let mut conn = pool.acquire().await.unwrap();
        for _ in 0..times {
            let permit = breaker.check(&mut conn, provider).await.unwrap();
            breaker.record_failure(&mut conn, &permit).await.unwrap();
        }
    }

    /// Moves the breaker's clock back, as if `by` had passed.
    async fn age(pool: &PgPool, provider: &str, by: Duration) {
        sqlx::query(
            "UPDATE circuit_breakers SET opened_at = opened_at - $2::interval,
                 probe_started_at = probe_started_at - $2::interval,
                 window_started_at = window_started_at - $2::interval
             WHERE provider = $1",
        )
        .bind(provider)
        .bind(by)
        .execute(pool)
        .await
        .unwrap();
    }

    #[sqlx::test(migrations = false)]
    async fn a_provider_never_seen_is_closed(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(5, Duration::from_secs(30));
        let mut conn = pool.acquire().await.unwrap();
        let permit = breaker.check(&mut conn, "propay").await.unwrap();
        assert!(!permit.is_probe());
        assert_eq!(
            breaker.state(&mut conn, "propay").await.unwrap().state,
            BreakerState::Closed
        );
    }

    #[sqlx::test(migrations = false)]
    async fn the_breaker_opens_at_the_threshold_and_rejects_with_retry_after(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(5, Duration::from_secs(30));
        fail(&breaker, &pool, "propay", 4).await;
        let mut conn = pool.acquire().await.unwrap();
        let snapshot = breaker.state(&mut conn, "propay").await.unwrap();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.failures, 4);
        assert!(breaker.check(&mut conn, "propay").await.is_ok());

        fail(&breaker, &pool, "propay", 1).await;
        assert_eq!(
            breaker.state(&mut conn, "propay").await.unwrap().state,
            BreakerState::Open
        );
        match breaker.check(&mut conn, "propay").await {
            Err(BreakerError::Open {
                provider,
                retry_after,
            }) => {
                assert_eq!(provider, "propay");
                assert!(
                    (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&retry_after),
                    "{retry_after:?}"
                );
            }
            other => panic!("expected an open breaker, got {other:?}"),
        }
        // Other providers are unaffected.
        assert!(breaker.check(&mut conn, "stripe").await.is_ok());

        let api_error: crate::Error = breaker.check(&mut conn, "propay").await.unwrap_err().into();
        assert!(matches!(
            api_error,
            crate::Error::Unavailable {
                retry_after: Some(_),
                ..
            }
        ));
    }

    #[sqlx::test(migrations = false)]
    async fn failures_outside_the_window_start_a_new_count(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(3, Duration::from_secs(30));
        fail(&breaker, &pool, "openpix", 2).await;
        age(&pool, "openpix", Duration::from_secs(61)).await;
        fail(&breaker, &pool, "openpix", 2).await;
        let mut conn = pool.acquire().await.unwrap();
        let snapshot = breaker.state(&mut conn, "openpix").await.unwrap();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.failures, 2);
    }

    #[sqlx::test(migrations = false)]
    async fn after_the_cooldown_exactly_one_of_ten_concurrent_callers_gets_the_probe(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(2, Duration::from_secs(30));
        fail(&breaker, &pool, "stripe", 2).await;
        age(&pool, "stripe", Duration::from_secs(31)).await;

        // Ten separate connections (the test pool is smaller), released together.
        let barrier = Arc::new(tokio::sync::Barrier::new(10));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let options = pool.connect_options();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = PgConnection::connect_with(&options).await.unwrap();
                barrier.wait().await;
                breaker.check(&mut conn, "stripe").await
            }));
        }
        let mut probes = 0;
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(permit) => {
                    assert!(permit.is_probe());
                    probes += 1;
                }
                Err(BreakerError::Open { .. }) => refused += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!((probes, refused), (1, 9));
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(
            breaker.state(&mut conn, "stripe").await.unwrap().state,
            BreakerState::HalfOpen
        );
    }

    #[sqlx::test(migrations = false)]
    async fn a_successful_probe_closes_the_breaker(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(2, Duration::from_secs(30));
        fail(&breaker, &pool, "propay", 2).await;
        age(&pool, "propay", Duration::from_secs(31)).await;
        let mut conn = pool.acquire().await.unwrap();
        let probe = breaker.check(&mut conn, "propay").await.unwrap();
        assert!(probe.is_probe());
        breaker.record_success(&mut conn, &probe).await.unwrap();

        let snapshot = breaker.state(&mut conn, "propay").await.unwrap();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.failures, 0);
        assert_eq!(snapshot.opened_at, None);
        let next = breaker.check(&mut conn, "propay").await.unwrap();
        assert!(!next.is_probe());
    }

    #[sqlx::test(migrations = false)]
    async fn a_failed_probe_reopens_the_breaker_for_another_cooldown(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(2, Duration::from_secs(30));
        fail(&breaker, &pool, "propay", 2).await;
        age(&pool, "propay", Duration::from_secs(31)).await;
        let mut conn = pool.acquire().await.unwrap();
        let probe = breaker.check(&mut conn, "propay").await.unwrap();
        breaker.record_failure(&mut conn, &probe).await.unwrap();

        let snapshot = breaker.state(&mut conn, "propay").await.unwrap();
        assert_eq!(snapshot.state, BreakerState::Open);
        assert_eq!(snapshot.probe_started_at, None);
        match breaker.check(&mut conn, "propay").await {
            Err(BreakerError::Open { retry_after, .. }) => {
                assert!(retry_after >= Duration::from_secs(29), "{retry_after:?}")
            }
            other => panic!("expected open, got {other:?}"),
        }
    }

    #[sqlx::test(migrations = false)]
    async fn a_probe_that_never_reports_back_is_replaced_after_a_cooldown(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(1, Duration::from_secs(30));
        fail(&breaker, &pool, "openpix", 1).await;
        age(&pool, "openpix", Duration::from_secs(31)).await;
        let mut conn = pool.acquire().await.unwrap();
        assert!(
            breaker
                .check(&mut conn, "openpix")
                .await
                .unwrap()
                .is_probe()
        );
        assert!(breaker.check(&mut conn, "openpix").await.is_err());
        age(&pool, "openpix", Duration::from_secs(31)).await;
        assert!(
            breaker
                .check(&mut conn, "openpix")
                .await
                .unwrap()
                .is_probe()
        );
    }

    #[sqlx::test(migrations = false)]
    async fn late_failures_of_calls_started_before_opening_are_ignored(pool: PgPool) {
        migrated(&pool).await;
        let breaker = breaker(2, Duration::from_secs(30));
        let mut conn = pool.acquire().await.unwrap();
        let early = breaker.check(&mut conn, "stripe").await.unwrap();
        fail(&breaker, &pool, "stripe", 2).await;
        let opened_at = breaker.state(&mut conn, "stripe").await.unwrap().opened_at;
        breaker.record_failure(&mut conn, &early).await.unwrap();
        breaker.record_success(&mut conn, &early).await.unwrap();
        let snapshot = breaker.state(&mut conn, "stripe").await.unwrap();
        assert_eq!(snapshot.state, BreakerState::Open);
        assert_eq!(snapshot.opened_at, opened_at);
    }

    fn charge_request() -> PixChargeRequest {
        PixChargeRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents: 1000,
            description: "Pedido 1001".into(),
            payer: Payer {
                name: "Maria".into(),
                cpf: "52998224725".into(),
                email: "maria@example.com".into(),
            },
            expires_in: Duration::from_secs(1800),
        }
    }

    async fn respond(server: &MockServer, response: ResponseTemplate) {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(server)
            .await;
    }

    #[sqlx::test(migrations = false)]
    async fn a_real_client_behind_the_breaker_fails_recovers_and_fails_its_probe(pool: PgPool) {
        migrated(&pool).await;
        let server = MockServer::start().await;
        let client = ProPayClient::new(ProPayConfig {
            base_url: server.uri(),
            jwt_secret: secrecy::SecretString::from("go-to-propay-secret-for-tests-only"),
            timeout: Duration::from_secs(5),
        });
        let cooldown = Duration::from_millis(300);
        let breaker = breaker(2, cooldown);
        let name = client.name();
        let charge = || async {
            let request = charge_request();
            breaker
                .call(&pool, name, client.create_charge(&request))
                .await
        };
        let ok = ResponseTemplate::new(201).set_body_json(json!({
            "txid": "PROPAY00000000000000000000001",
            "br_code": "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D",
            "expires_at": "2026-11-25T12:30:00Z"
        }));

        // The provider fails: two failures open the breaker.
        respond(&server, ResponseTemplate::new(503)).await;
        for _ in 0..2 {
            assert!(matches!(
                charge().await,
                Err(CallError::Provider(ProviderError::Unavailable(_)))
            ));
        }
        // Open: refused without calling the provider, even though it would now answer.
        respond(&server, ok.clone()).await;
        assert!(matches!(
            charge().await,
            Err(CallError::Breaker(BreakerError::Open { .. }))
        ));
        assert!(server.received_requests().await.unwrap().is_empty());

        // It recovers: after the cooldown the probe succeeds and closes the breaker.
        tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
        assert!(charge().await.is_ok());
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(
            breaker.state(&mut conn, name).await.unwrap().state,
            BreakerState::Closed
        );
        assert!(charge().await.is_ok());

        // It fails again: open, then the probe fails and the breaker re-opens.
        respond(&server, ResponseTemplate::new(500)).await;
        for _ in 0..2 {
            assert!(charge().await.is_err());
        }
        assert_eq!(
            breaker.state(&mut conn, name).await.unwrap().state,
            BreakerState::Open
        );
        tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
        assert!(matches!(charge().await, Err(CallError::Provider(_))));
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        assert_eq!(
            breaker.state(&mut conn, name).await.unwrap().state,
            BreakerState::Open
        );
        assert!(matches!(
            charge().await,
            Err(CallError::Breaker(BreakerError::Open { .. }))
        ));
    }
}
