//! The in-process catalog cache (moka) and its cross-instance invalidation.
//!
//! Product details, product list pages, search result pages and categories are cached per
//! instance. Pages are kept as the JSON the client receives, so a hit costs no cloning and no
//! serialising. Search keys are unbounded, but the cache is bounded (`CACHE_L1_MAX_SIZE`) and
//! moka's admission policy keeps one-off queries from evicting the popular ones. Every write to
//! `products` or `categories`, by anyone, fires a database trigger that `pg_notify`s the change
//! inside the writing transaction (see `cart_core::catalog::changes`); PostgreSQL delivers it
//! on commit to each instance's [`ListenHub`], which hands it here to invalidate. The instance
//! that made the write also invalidates directly after its commit, so its own next read is
//! fresh without waiting for the round trip. TTLs are only the safety net.
//!
//! Two details keep this correct rather than merely likely:
//! - The cache is used only while the hub listens. Before it first does, and from a lost
//!   connection until it is re-established, reads go to the database; whenever the hub says
//!   notifications may have been missed (listening again, or this cache fell behind), the
//!   cache is flushed.
//! - A load that started before an invalidation can finish after it and insert what it read.
//!   Each entry is stamped with the epoch at which its load began, and every invalidation
//!   moves a threshold to a new epoch; an entry stamped before its threshold is treated as a
//!   miss. Concurrent misses for one key still load once (`try_get_with`).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cart_core::{
    Error,
    catalog::{
        Category, CategoryPage, Product, ProductFilter, ProductSort,
        changes::{CHANNEL, CatalogChange},
    },
    config::{self, ConfigError},
    listen::{Heard, ListenHub, Subscription},
};
use futures::StreamExt;
use moka::{Expiry, future::Cache};
use uuid::Uuid;

/// `CACHE_*` settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `CACHE_ENABLED` (default true).
    pub enabled: bool,
    /// `CACHE_L1_MAX_SIZE`: entries held at most (default 10000).
    pub max_entries: u64,
    /// `CACHE_TTL_PRODUCTS`: product details and list pages (default 5m).
    pub ttl_products: Duration,
    /// `CACHE_TTL_CATEGORIES` (default 15m).
    pub ttl_categories: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            ttl_products: Duration::from_secs(5 * 60),
            ttl_categories: Duration::from_secs(15 * 60),
        }
    }
}

impl CacheConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            enabled: config::var_bool("CACHE_ENABLED", defaults.enabled)?,
            max_entries: config::var_parsed("CACHE_L1_MAX_SIZE", defaults.max_entries)?,
            ttl_products: config::var_duration("CACHE_TTL_PRODUCTS", defaults.ttl_products)?,
            ttl_categories: config::var_duration("CACHE_TTL_CATEGORIES", defaults.ttl_categories)?,
        })
    }
}

/// What a cached product list shows: the filter plus sort and page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProductListKey {
    pub filter: ProductFilter,
    pub sort: ProductSort,
    pub limit: i64,
    pub offset: i64,
}

/// A JSON response body, ready to send.
#[derive(Debug, Clone)]
pub struct JsonBody(axum::body::Bytes);

impl JsonBody {
    pub fn of<T: serde::Serialize>(value: &T) -> Result<Self, Error> {
        serde_json::to_vec(value)
            .map(|bytes| Self(bytes.into()))
            .map_err(|e| Error::Internal(e.into()))
    }

    /// A 200 answer with this body (the bytes are shared, not copied).
    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0.clone(),
        )
            .into_response()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Product(Uuid),
    ProductList(ProductListKey),
    /// A search, by its trimmed, lower-cased text (matching ignores case).
    ProductSearch {
        query: String,
        limit: i64,
        offset: i64,
    },
    Category(Uuid),
    CategoryList {
        limit: i64,
        offset: i64,
    },
}

/// Groups of entries that are flushed together.
#[derive(Debug, Clone, Copy)]
enum Group {
    ProductDetails = 0,
    ProductLists = 1,
    Categories = 2,
}

impl Key {
    fn group(&self) -> Group {
        match self {
            Key::Product(_) => Group::ProductDetails,
            Key::ProductList(_) | Key::ProductSearch { .. } => Group::ProductLists,
            Key::Category(_) | Key::CategoryList { .. } => Group::Categories,
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Product(Arc<Product>),
    Body(Arc<JsonBody>),
    Category(Arc<Category>),
    CategoryPage(Arc<CategoryPage>),
}

/// The types the cache holds, and how they sit in [`Value`].
trait Cached: Sized {
    fn wrap(value: Arc<Self>) -> Value;
    fn unwrap(value: Value) -> Option<Arc<Self>>;
}

macro_rules! cached {
    ($ty:ty, $variant:ident) => {
        impl Cached for $ty {
            fn wrap(value: Arc<Self>) -> Value {
                Value::$variant(value)
            }
            fn unwrap(value: Value) -> Option<Arc<Self>> {
                match value {
                    Value::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

cached!(Product, Product);
cached!(JsonBody, Body);
cached!(Category, Category);
cached!(CategoryPage, CategoryPage);

#[derive(Debug, Clone)]
struct Entry {
    /// The epoch when the load that produced this entry began.
    loaded_at: u64,
    value: Value,
}

struct Ttl {
    products: Duration,
    categories: Duration,
}

impl Expiry<Key, Entry> for Ttl {
    fn expire_after_create(&self, key: &Key, _: &Entry, _: Instant) -> Option<Duration> {
        Some(match key.group() {
            Group::ProductDetails | Group::ProductLists => self.products,
            Group::Categories => self.categories,
        })
    }
}

struct Inner {
    enabled: bool,
    /// True while the invalidation listener is connected: only then is the cache consulted.
    listening: AtomicBool,
    epoch: AtomicU64,
    /// Change notifications applied so far (for tests and diagnostics).
    changes_applied: AtomicU64,
    /// Per group, the epoch of its last flush: older entries are stale.
    flushed_at: [AtomicU64; 3],
    entries: Cache<Key, Entry>,
    /// Per product, the epoch of its last invalidation (kept a little longer than entries live).
    product_invalidated_at: Cache<Uuid, u64>,
}

/// The catalog cache; cheap to clone (shared).
#[derive(Clone)]
pub struct CatalogCache(Arc<Inner>);

/// How a read was served, for metrics.
#[derive(Clone, Copy)]
enum Outcome {
    Hit = 0,
    Miss,
    Bypass,
}

impl Outcome {
    fn record(self) {
        // Registered once: looking a labelled counter up costs more than the cache hit.
        static COUNTERS: std::sync::LazyLock<[metrics::Counter; 3]> =
            std::sync::LazyLock::new(|| {
                ["hit", "miss", "bypass"].map(
                    |label| metrics::counter!("catalog_cache_requests_total", "result" => label),
                )
            });
        COUNTERS[self as usize].increment(1);
    }
}

/// `try_get_with` shares one loader error among all waiters; give each an owned copy.
fn unshare(error: Arc<Error>) -> Error {
    Arc::try_unwrap(error).unwrap_or_else(|shared| match &*shared {
        Error::NotFound => Error::NotFound,
        Error::Unauthorized(m) => Error::Unauthorized(m.clone()),
        Error::Forbidden => Error::Forbidden,
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::TryAgain(m) => Error::TryAgain(m.clone()),
        Error::Invalid(f) => Error::Invalid(f.clone()),
        Error::BadRequest(m) => Error::BadRequest(m.clone()),
        Error::Unavailable {
            reason,
            retry_after,
        } => Error::Unavailable {
            reason: reason.clone(),
            retry_after: *retry_after,
        },
        Error::Upstream(m) => Error::Upstream(m.clone()),
        Error::Db(sqlx::Error::PoolTimedOut) => Error::Db(sqlx::Error::PoolTimedOut),
        other => Error::Internal(anyhow::anyhow!("{other}")),
    })
}

impl CatalogCache {
    pub fn new(config: &CacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(Ttl {
                products: config.ttl_products,
                categories: config.ttl_categories,
            })
            .build();
        let product_invalidated_at = Cache::builder()
            .max_capacity(config.max_entries)
            .time_to_live(config.ttl_products + Duration::from_secs(60))
            .build();
        Self(Arc::new(Inner {
            enabled: config.enabled,
            listening: AtomicBool::new(false),
            epoch: AtomicU64::new(1),
            changes_applied: AtomicU64::new(0),
            flushed_at: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            entries,
            product_invalidated_at,
        }))
    }

    /// Whether reads are served from the cache right now (enabled and listening).
    pub fn is_active(&self) -> bool {
        self.0.enabled && self.0.listening.load(Ordering::SeqCst)
    }

    pub async fn product<F, Fut>(&self, id: Uuid, load: F) -> Result<Arc<Product>, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Product, Error>>,
    {
        self.get_or_load(Key::Product(id), load).await
    }

    pub async fn product_list<F, Fut>(
        &self,
        key: ProductListKey,
        load: F,
    ) -> Result<Arc<JsonBody>, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<JsonBody, Error>>,
    {
        self.get_or_load(Key::ProductList(key), load).await
    }

    pub async fn product_search<F, Fut>(
        &self,
        query: &str,
        limit: i64,
        offset: i64,
        load: F,
    ) -> Result<Arc<JsonBody>, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<JsonBody, Error>>,
    {
        let key = Key::ProductSearch {
            query: query.trim().to_lowercase(),
            limit,
            offset,
        };
        self.get_or_load(key, load).await
    }

    pub async fn category<F, Fut>(&self, id: Uuid, load: F) -> Result<Arc<Category>, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Category, Error>>,
    {
        self.get_or_load(Key::Category(id), load).await
    }

    pub async fn category_list<F, Fut>(
        &self,
        limit: i64,
        offset: i64,
        load: F,
    ) -> Result<Arc<CategoryPage>, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<CategoryPage, Error>>,
    {
        self.get_or_load(Key::CategoryList { limit, offset }, load)
            .await
    }

    /// The epoch an entry must have been loaded at (or after) to be fresh.
    async fn fresh_from(&self, key: &Key) -> u64 {
        let flushed = self.0.flushed_at[key.group() as usize].load(Ordering::SeqCst);
        let invalidated = match key {
            Key::Product(id) => self.0.product_invalidated_at.get(id).await.unwrap_or(0),
            _ => 0,
        };
        flushed.max(invalidated)
    }

    async fn get_or_load<T, F, Fut>(&self, key: Key, load: F) -> Result<Arc<T>, Error>
    where
        T: Cached,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if !self.is_active() {
            Outcome::Bypass.record();
            return Box::pin(load()).await.map(Arc::new);
        }
        // A hit needs neither the loader nor moka's coalescing, whose futures are large: they
        // are boxed on a miss only, so a hit does not copy them around on every request.
        if let Some(entry) = self.0.entries.get(&key).await
            && entry.loaded_at >= self.fresh_from(&key).await
            && let Some(value) = T::unwrap(entry.value)
        {
            Outcome::Hit.record();
            return Ok(value);
        }
        Box::pin(self.load_coalesced(key, load)).await
    }

    /// The miss path: concurrent misses for one key load once.
    async fn load_coalesced<T, F, Fut>(&self, key: Key, load: F) -> Result<Arc<T>, Error>
    where
        T: Cached,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        // A stale entry is dropped and the lookup retried once; if it is stale again,
        // invalidations are outrunning loads and we read through below.
        for _ in 0..2 {
            let started = self.0.epoch.load(Ordering::SeqCst);
            let mut loaded = false;
            let entry = self
                .0
                .entries
                .try_get_with(key.clone(), async {
                    loaded = true;
                    let value = load().await?;
                    Ok::<_, Error>(Entry {
                        loaded_at: started,
                        value: T::wrap(Arc::new(value)),
                    })
                })
                .await
                .map_err(unshare)?;
            let fresh = entry.loaded_at >= self.fresh_from(&key).await;
            if !fresh {
                self.0.entries.invalidate(&key).await;
            }
            // Our own load that raced an invalidation is as fresh as any read concurrent
            // with that write: answer with it, but it is not kept (invalidated above).
            if (fresh || loaded)
                && let Some(value) = T::unwrap(entry.value)
            {
                if loaded { Outcome::Miss } else { Outcome::Hit }.record();
                return Ok(value);
            }
        }
        Outcome::Bypass.record();
        load().await.map(Arc::new)
    }

    /// A new epoch, for an invalidation.
    fn next_epoch(&self) -> u64 {
        self.0.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn flush_groups(&self, epoch: u64, groups: &[Group]) {
        for group in groups {
            self.0.flushed_at[*group as usize].fetch_max(epoch, Ordering::SeqCst);
        }
    }

    /// A product changed: its detail and every product list are stale.
    pub async fn product_changed(&self, id: Uuid) {
        let epoch = self.next_epoch();
        self.0.product_invalidated_at.insert(id, epoch).await;
        self.flush_groups(epoch, &[Group::ProductLists]);
        self.0.entries.invalidate(&Key::Product(id)).await;
    }

    /// Several products changed (e.g. checkout moved their stock).
    pub async fn products_changed(&self, ids: &[Uuid]) {
        for id in ids {
            self.product_changed(*id).await;
        }
    }

    /// Products changed without a list of which.
    pub fn all_products_changed(&self) {
        let epoch = self.next_epoch();
        self.flush_groups(epoch, &[Group::ProductDetails, Group::ProductLists]);
    }

    /// A category changed: categories and product lists (a category's list spans its
    /// subtree) are stale.
    pub fn category_changed(&self) {
        let epoch = self.next_epoch();
        self.flush_groups(epoch, &[Group::Categories, Group::ProductLists]);
    }

    /// Everything is stale.
    pub fn flush(&self) {
        let epoch = self.next_epoch();
        self.flush_groups(
            epoch,
            &[
                Group::ProductDetails,
                Group::ProductLists,
                Group::Categories,
            ],
        );
        self.0.entries.invalidate_all();
    }

    /// How many change notifications the listener has applied.
    pub fn changes_applied(&self) -> u64 {
        self.0.changes_applied.load(Ordering::SeqCst)
    }

    /// Applies one notification payload; an unknown one flushes everything.
    pub async fn apply(&self, payload: &str) {
        self.apply_change(payload).await;
        self.0.changes_applied.fetch_add(1, Ordering::SeqCst);
    }

    async fn apply_change(&self, payload: &str) {
        match CatalogChange::parse(payload) {
            Some(CatalogChange::Product(id)) => self.product_changed(id).await,
            Some(CatalogChange::AllProducts) => self.all_products_changed(),
            Some(CatalogChange::Category(_) | CatalogChange::AllCategories) => {
                self.category_changed()
            }
            None => {
                tracing::warn!(payload, "unknown catalog change notification; flushing");
                self.flush();
            }
        }
    }

    fn set_listening(&self, listening: bool) {
        self.0.listening.store(listening, Ordering::SeqCst);
    }

    /// Follows the catalog's change notifications through `hub` (a no-op when the cache is
    /// disabled), until the hub stops.
    pub fn spawn_listener(&self, hub: &ListenHub) {
        if self.0.enabled {
            tokio::spawn(follow(self.clone(), hub.subscribe(CHANNEL)));
        }
    }
}

async fn follow(cache: CatalogCache, mut changes: Subscription) {
    while let Some(heard) = changes.next().await {
        match heard {
            Heard::Notice(payload) => cache.apply(&payload).await,
            Heard::Missed => {
                // Whatever changed meanwhile is unknown: start empty.
                cache.flush();
                cache.set_listening(true);
                tracing::debug!(channel = CHANNEL, "catalog cache following changes");
            }
            Heard::Lost => {
                cache.set_listening(false);
                cache.flush();
            }
        }
    }
    cache.set_listening(false);
    cache.flush();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use chrono::Utc;
    use tokio::sync::Notify;

    use super::*;

    fn product(id: Uuid, price_cents: i64) -> Product {
        Product {
            id,
            sku: "T-1".into(),
            name: "Teste".into(),
            slug: "teste".into(),
            description: String::new(),
            price_cents,
            stock: 1,
            category_id: None,
            featured: false,
            weight_grams: 1,
            height_cm: 1,
            width_cm: 1,
            length_cm: 1,
            ncm: "09012100".into(),
            images: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn live_cache() -> CatalogCache {
        let cache = CatalogCache::new(&CacheConfig::default());
        cache.set_listening(true);
        cache
    }

    async fn read(cache: &CatalogCache, id: Uuid, loads: &AtomicUsize) -> i64 {
        cache
            .product(id, || async {
                let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(product(id, i64::try_from(n).unwrap_or_default()))
            })
            .await
            .unwrap()
            .price_cents
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_key_load_once() {
        let cache = live_cache();
        let id = Uuid::now_v7();
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .product(id, || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(product(id, 100))
                        })
                        .await
                        .unwrap()
                        .price_cents
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 100);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_invalidated_product_is_reloaded_and_others_are_kept() {
        let cache = live_cache();
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (loads_one, loads_other) = (AtomicUsize::new(0), AtomicUsize::new(0));
        assert_eq!(read(&cache, one, &loads_one).await, 1);
        assert_eq!(read(&cache, other, &loads_other).await, 1);
        assert_eq!(read(&cache, one, &loads_one).await, 1);

        cache.apply(&format!("product:{one}")).await;
        assert_eq!(read(&cache, one, &loads_one).await, 2);
        assert_eq!(read(&cache, other, &loads_other).await, 1);
        // A category change leaves product details alone; a bulk product change does not.
        cache.apply(&format!("category:{}", Uuid::now_v7())).await;
        assert_eq!(read(&cache, other, &loads_other).await, 1);
        cache.apply("products").await;
        assert_eq!(read(&cache, other, &loads_other).await, 2);
        cache.apply("something else").await;
        assert_eq!(read(&cache, one, &loads_one).await, 3);
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_kept() {
        let cache = live_cache();
        let id = Uuid::now_v7();
        let loads = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let slow = {
            let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .product(id, || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        // What the database held before the write committed.
                        Ok(product(id, 100))
                    })
                    .await
                    .unwrap()
                    .price_cents
            })
        };
        while loads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        cache.product_changed(id).await;
        release.notify_one();
        assert_eq!(slow.await.unwrap(), 100);
        // The next read does not get the pre-write value from the cache.
        let fresh = cache
            .product(id, || async { Ok(product(id, 200)) })
            .await
            .unwrap();
        assert_eq!(fresh.price_cents, 200);
    }

    #[tokio::test]
    async fn without_a_listener_the_cache_is_bypassed() {
        let cache = CatalogCache::new(&CacheConfig::default());
        let id = Uuid::now_v7();
        let loads = AtomicUsize::new(0);
        assert_eq!(read(&cache, id, &loads).await, 1);
        assert_eq!(read(&cache, id, &loads).await, 2);
        let disabled = CatalogCache::new(&CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        });
        disabled.set_listening(true);
        assert!(!disabled.is_active());
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = live_cache();
        let id = Uuid::now_v7();
        let missing = cache.product(id, || async { Err(Error::NotFound) }).await;
        assert!(matches!(missing, Err(Error::NotFound)));
        let found = cache
            .product(id, || async { Ok(product(id, 5)) })
            .await
            .unwrap();
        assert_eq!(found.price_cents, 5);
    }
}
