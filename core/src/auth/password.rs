//! Password hashing with Argon2id.
//!
//! One hash costs `ARGON2_MEMORY_KIB` of memory (64 MiB by default) and real CPU time, so it
//! never runs on the async runtime: it runs on the blocking pool, and a semaphore bounds how
//! many run at once (`PASSWORD_HASH_CONCURRENCY`, default the number of cores). A request
//! that cannot get a slot within `PASSWORD_HASH_MAX_WAIT` gets a 503 with `Retry-After`, so
//! a flood of logins costs at most `concurrency × memory` and never queues without end.
//!
//! Passwords are Unicode-normalised (NFKC, as NIST SP 800-63B suggests) so the same password
//! typed on two keyboards verifies, and never truncated.

use std::{sync::Arc, time::Duration};

use argon2::{
    Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use unicode_normalization::UnicodeNormalization;

use crate::{
    Error, Result,
    config::{self, ConfigError},
};

/// The shortest password we accept, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// m = 64 MiB, t = 3, p = 4.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl Argon2Params {
    fn to_argon2(self) -> Result<Params, argon2::Error> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }
}

#[derive(Debug, Clone)]
pub struct PasswordConfig {
    pub params: Argon2Params,
    /// Hashes computed at once.
    pub concurrency: usize,
    /// How long a request waits for a hashing slot before it is answered 503.
    pub max_wait: Duration,
}

impl PasswordConfig {
    /// `ARGON2_MEMORY_KIB` (65536), `ARGON2_ITERATIONS` (3), `ARGON2_PARALLELISM` (4),
    /// `PASSWORD_HASH_CONCURRENCY` (number of cores), `PASSWORD_HASH_MAX_WAIT` (2s).
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Argon2Params::default();
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let config = Self {
            params: Argon2Params {
                memory_kib: config::var_parsed("ARGON2_MEMORY_KIB", defaults.memory_kib)?,
                iterations: config::var_parsed("ARGON2_ITERATIONS", defaults.iterations)?,
                parallelism: config::var_parsed("ARGON2_PARALLELISM", defaults.parallelism)?,
            },
            concurrency: config::var_parsed("PASSWORD_HASH_CONCURRENCY", cores)?,
            max_wait: config::var_duration("PASSWORD_HASH_MAX_WAIT", Duration::from_secs(2))?,
        };
        config
            .params
            .to_argon2()
            .map_err(|e| ConfigError::Invalid {
                name: "ARGON2_MEMORY_KIB",
                reason: format!("Argon2 parameters rejected: {e}"),
            })?;
        if config.concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "PASSWORD_HASH_CONCURRENCY",
                reason: "must be at least 1".into(),
            });
        }
        Ok(config)
    }
}

/// Hashes and verifies passwords under the concurrency bound. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    slots: Arc<Semaphore>,
    max_wait: Duration,
    /// A well-formed hash with the current parameters that no password matches: verifying
    /// against it makes a login for an unknown e-mail cost the same as for a known one.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_wait", &self.inner.max_wait)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(config: &PasswordConfig) -> Result<Self> {
        let params = config
            .params
            .to_argon2()
            .map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
        let dummy_hash = unmatchable_hash(&params)?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
                max_wait: config.max_wait,
                dummy_hash,
            }),
        })
    }

    fn argon2(params: &Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit> {
        let acquire = self.inner.slots.clone().acquire_owned();
        match tokio::time::timeout(self.inner.max_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(anyhow::anyhow!("password hashing semaphore closed").into()),
            Err(_elapsed) => Err(Error::Unavailable {
                reason: "all password hashing slots are busy".into(),
                retry_after: Some(Duration::from_secs(1)),
            }),
        }
    }

    /// Runs `work` on the blocking pool while holding a slot. The permit moves into the
    /// closure, so a cancelled request still holds its slot until the hash finishes.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task failed: {e}").into())
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = normalise(password);
        let params = self.inner.params.clone();
        self.run(move || {
            Self::argon2(&params)
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}").into())
    }

    /// Whether `password` matches `stored`. With `None` (no such account) the password is
    /// checked against a dummy hash of the same cost and the answer is `false`. A stored
    /// value that is not a valid hash (an anonymised account) never matches.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool> {
        let password = normalise(password);
        let (stored, real) = match stored {
            Some(hash) if PasswordHash::new(hash).is_ok() => (hash.to_owned(), true),
            _ => (self.inner.dummy_hash.clone(), false),
        };
        let params = self.inner.params.clone();
        let matches = self
            .run(move || {
                PasswordHash::new(&stored).is_ok_and(|parsed| {
                    Self::argon2(&params)
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(real && matches)
    }

    /// Whether `stored` was made with other parameters than today's (then it is worth
    /// re-hashing after a successful login).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let same_algorithm = parsed.algorithm == Algorithm::Argon2id.ident()
            && parsed.version == Some(Version::V0x13.into());
        let same_params = Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == self.inner.params.m_cost()
                && p.t_cost() == self.inner.params.t_cost()
                && p.p_cost() == self.inner.params.p_cost()
        });
        !(same_algorithm && same_params)
    }
}

fn normalise(password: &str) -> String {
    password.nfkc().collect()
}

/// A hash with random salt and random output: verifying against it costs a real hash and
/// never succeeds.
fn unmatchable_hash(params: &Params) -> Result<String> {
    let salt: [u8; 16] = rand::random();
    let output: [u8; 32] = rand::random();
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(&output).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(hash.to_string())
}

/// Checks a new password's strength rules; the message is for the `password` field.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.nfkc().count() < MIN_PASSWORD_CHARS {
        return Err("must be at least 8 characters long");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(&PasswordConfig::for_tests()).unwrap()
    }

    #[test]
    fn the_default_parameters_are_argon2id_64_mib_3_iterations_4_lanes() {
        let defaults = Argon2Params::default();
        assert_eq!(
            defaults,
            Argon2Params {
                memory_kib: 65536,
                iterations: 3,
                parallelism: 4
            }
        );
        let hasher = PasswordHasher::new(&PasswordConfig {
            params: defaults,
            concurrency: 1,
            max_wait: Duration::from_secs(1),
        })
        .unwrap();
        // The dummy hash carries exactly the parameters real hashes get.
        let dummy = PasswordHash::new(&hasher.inner.dummy_hash).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(dummy.version, Some(0x13));
        assert_eq!(dummy.params.to_string(), "m=65536,t=3,p=4");
        assert!(!hasher.needs_rehash(&hasher.inner.dummy_hash));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse batterY", Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let hasher = cheap();
        let long = "a".repeat(200);
        let hash = hasher.hash(&long).await.unwrap();
        let mut longer = long.clone();
        longer.push('b');
        assert!(!hasher.verify(&longer, Some(&hash)).await.unwrap());
        assert!(!hasher.verify(&long[..72], Some(&hash)).await.unwrap());
        assert!(hasher.verify(&long, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn unicode_compositions_of_the_same_password_match() {
        let hasher = cheap();
        let hash = hasher.hash("senha-ma\u{e7}\u{e3}").await.unwrap();
        // The same text with combining marks instead of precomposed letters.
        assert!(
            hasher
                .verify("senha-mac\u{327}a\u{303}", Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_accounts_and_unusable_hashes_never_verify() {
        let hasher = cheap();
        assert!(!hasher.verify("whatever1", None).await.unwrap());
        assert!(!hasher.verify("whatever1", Some("!")).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_house_answers_unavailable_after_the_wait() {
        let hasher = PasswordHasher::new(&PasswordConfig {
            max_wait: Duration::from_millis(50),
            concurrency: 1,
            ..PasswordConfig::for_tests()
        })
        .unwrap();
        let held = hasher.inner.slots.clone().acquire_owned().await.unwrap();
        let err = hasher.hash("password123").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unavailable {
                    retry_after: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        drop(held);
        assert!(hasher.hash("password123").await.is_ok());
    }

    #[test]
    fn hashes_with_other_parameters_need_rehashing() {
        let hasher = cheap();
        let old = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                   AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(hasher.needs_rehash(old));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password("çãõéíóúâ").is_ok());
    }
}
