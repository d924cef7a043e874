//! The catalog: categories (a tree) and products (soft-deleted, searchable), their stock,
//! and the change notifications that keep every API instance's cache current.

pub mod categories;
pub mod changes;
pub mod products;
pub mod slug;
pub mod stock;

pub use categories::{Category, CategoryInput, CategoryPage};
pub use products::{Product, ProductFilter, ProductInput, ProductPage, ProductSort};
pub use stock::StockChange;

#[cfg(test)]
mod tests;
