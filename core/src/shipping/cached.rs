//! Quotes cached briefly by (origin, destination, package): a cart page that re-quotes on
//! every change and the checkout that follows it ask the carrier once.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{QuoteRequest, ShippingOption, ShippingProvider};
use crate::http_client::ProviderError;

pub struct CachedProvider {
    inner: Arc<dyn ShippingProvider>,
    cache: moka::future::Cache<QuoteRequest, Arc<Vec<ShippingOption>>>,
}

impl CachedProvider {
    pub fn new(inner: Arc<dyn ShippingProvider>, ttl: Duration, max_entries: u64) -> Self {
        Self {
            inner,
            cache: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }
}

#[async_trait]
impl ShippingProvider for CachedProvider {
    async fn quote(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        // Concurrent misses for one key make a single upstream call; errors are not cached.
        let options = self
            .cache
            .try_get_with(request.clone(), async {
                self.inner.quote(request).await.map(Arc::new)
            })
            .await
            .map_err(|e: Arc<ProviderError>| match &*e {
                ProviderError::Timeout => ProviderError::Timeout,
                ProviderError::Unavailable(m) => ProviderError::Unavailable(m.clone()),
                ProviderError::Rejected { status, message } => ProviderError::Rejected {
                    status: *status,
                    message: message.clone(),
                },
                ProviderError::Malformed(m) => ProviderError::Malformed(m.clone()),
                ProviderError::Config(m) => ProviderError::Config(m.clone()),
            })?;
        Ok(options.as_ref().clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::shipping::Package;

    struct Counting(AtomicUsize);

    #[async_trait]
    impl ShippingProvider for Counting {
        async fn quote(&self, _: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(vec![ShippingOption {
                carrier: "Correios".into(),
                service: "PAC".into(),
                price_cents: 1850,
                days: 7,
            }])
        }
    }

    fn request(dest: &str) -> QuoteRequest {
        QuoteRequest {
            origin_cep: "01310100".into(),
            destination_cep: dest.into(),
            package: Package {
                weight_grams: 500,
                height_cm: 5,
                width_cm: 11,
                length_cm: 16,
                declared_value_cents: 5000,
            },
        }
    }

    #[tokio::test]
    async fn concurrent_identical_quotes_call_the_provider_once() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cached = Arc::new(CachedProvider::new(
            inner.clone(),
            Duration::from_secs(60),
            100,
        ));
        let calls = (0..10).map(|_| {
            let cached = cached.clone();
            async move { cached.quote(&request("20040002")).await }
        });
        for result in futures::future::join_all(calls).await {
            assert_eq!(result.unwrap()[0].price_cents, 1850);
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        cached.quote(&request("30130010")).await.unwrap();
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            2,
            "another destination is another key"
        );
    }
}
