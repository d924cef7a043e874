//! Catalog change notifications.
//!
//! Triggers on `products` and `categories` (migration `20261125002000_catalog`) call
//! `pg_notify(CHANNEL, payload)` inside every writing transaction, so PostgreSQL delivers the
//! notification to every listening API instance exactly when the write commits, whoever wrote
//! it (an API handler, checkout, the worker, an operator with psql). The API's cache listens and
//! invalidates; this module owns the payload format shared by the SQL and the listener.

use uuid::Uuid;

/// The `LISTEN`/`NOTIFY` channel.
pub const CHANNEL: &str = "catalog_changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogChange {
    /// One product changed (created, updated, stock moved, soft-deleted).
    Product(Uuid),
    /// Too many products changed in one statement to name them.
    AllProducts,
    /// One category changed.
    Category(Uuid),
    /// Too many categories changed in one statement to name them.
    AllCategories,
}

impl CatalogChange {
    /// Parses a payload: `product:<uuid>`, `products`, `category:<uuid>`, `categories`.
    /// `None` for anything else; listeners should then flush everything to stay safe.
    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':') {
            Some(("product", id)) => Uuid::parse_str(id).ok().map(Self::Product),
            Some(("category", id)) => Uuid::parse_str(id).ok().map(Self::Category),
            Some(_) => None,
            None => match payload {
                "products" => Some(Self::AllProducts),
                "categories" => Some(Self::AllCategories),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        let id = Uuid::now_v7();
        assert_eq!(
            CatalogChange::parse(&format!("product:{id}")),
            Some(CatalogChange::Product(id))
        );
        assert_eq!(
            CatalogChange::parse(&format!("category:{id}")),
            Some(CatalogChange::Category(id))
        );
        assert_eq!(
            CatalogChange::parse("products"),
            Some(CatalogChange::AllProducts)
        );
        assert_eq!(
            CatalogChange::parse("categories"),
            Some(CatalogChange::AllCategories)
        );
        assert_eq!(CatalogChange::parse("product:nope"), None);
        assert_eq!(CatalogChange::parse("orders"), None);
    }
}
