//! URL slugs from names: accents stripped, lower-case ASCII words joined by hyphens, made
//! unique within their table with a `-N` suffix.

use std::collections::HashSet;

use sqlx::PgConnection;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::{Error, Result};

/// Longest slug we generate, before any `-N` suffix.
pub const MAX_SLUG_LEN: usize = 80;

/// `"Café Especial Torrado 500g"` → `"cafe-especial-torrado-500g"`. Returns `fallback` when the
/// name has no letters or digits at all.
pub fn slugify(name: &str, fallback: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    let mut pending_hyphen = false;
    // NFD splits "é" into "e" + a combining accent; only ASCII alphanumerics survive.
    for c in name.nfd() {
        if c.is_ascii_alphanumeric() {
            if pending_hyphen && !slug.is_empty() {
                slug.push('-');
            }
            pending_hyphen = false;
            slug.push(c.to_ascii_lowercase());
        } else if c.is_alphanumeric() || c.is_whitespace() || c.is_ascii_punctuation() {
            // A separator; non-ASCII letters without a decomposition (e.g. "ß") count as one too.
            pending_hyphen = true;
        }
        // Combining marks (the accents NFD split off) and other symbols vanish.
    }
    // ASCII only, so any byte index is a character boundary.
    slug.truncate(MAX_SLUG_LEN);
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        fallback.to_owned()
    } else {
        slug
    }
}

/// The first of `base`, `base-2`, `base-3`, … that `taken` does not contain.
pub fn first_free(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_owned())
}

/// A table whose live rows each carry a slug of their name, unique among them.
pub(crate) trait Slugged {
    /// Names the advisory lock that serialises slug allocation in the table.
    const LOCK_KEY: &'static str;
    /// The slug of a name without letters or digits.
    const FALLBACK: &'static str;

    /// The slugs of live rows (but `exclude`) that are `base` or start with `base-`.
    async fn slugs_like(
        conn: &mut PgConnection,
        base: &str,
        exclude: Option<Uuid>,
    ) -> Result<Vec<String>>;

    /// The live row's name and slug, the row locked to the end of the transaction.
    async fn lock_name_and_slug(
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<Option<(String, String)>>;
}

/// Picks a slug for `name` not used by another live row of `T` (`exclude` is the row being
/// renamed). Serialised by an advisory lock, held to the end of the caller's transaction, so
/// two writers cannot pick the same one.
pub(crate) async fn allocate<T: Slugged>(
    conn: &mut PgConnection,
    name: &str,
    exclude: Option<Uuid>,
) -> Result<String> {
    let base = slugify(name, T::FALLBACK);
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", T::LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let taken: HashSet<String> = T::slugs_like(conn, &base, exclude)
        .await?
        .into_iter()
        .collect();
    Ok(first_free(&base, &taken))
}

/// The slug of live row `id` of `T` once it is named `name`: its own while the name stays, a
/// newly allocated one otherwise. Locks the row to the end of the caller's transaction;
/// `NotFound` when there is no such live row.
pub(crate) async fn for_update<T: Slugged>(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
) -> Result<String> {
    let (current_name, current_slug) = T::lock_name_and_slug(conn, id)
        .await?
        .ok_or(Error::NotFound)?;
    if current_name == name {
        Ok(current_slug)
    } else {
        allocate::<T>(conn, name, Some(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_are_stripped_and_words_joined() {
        assert_eq!(
            slugify("Café Especial Torrado 500g", "x"),
            "cafe-especial-torrado-500g"
        );
        assert_eq!(slugify("Caneca de Cerâmica", "x"), "caneca-de-ceramica");
        assert_eq!(slugify("  Pão   de Açúcar!! ", "x"), "pao-de-acucar");
        assert_eq!(slugify("Coração & Alma", "x"), "coracao-alma");
    }

    #[test]
    fn names_without_letters_fall_back() {
        assert_eq!(slugify("!!!", "produto"), "produto");
        assert_eq!(slugify("", "categoria"), "categoria");
    }

    #[test]
    fn long_names_are_cut() {
        let slug = slugify(&"palavra ".repeat(40), "x");
        assert!(slug.len() <= MAX_SLUG_LEN);
        assert!(!slug.ends_with('-'));
    }

    #[test]
    fn the_first_free_suffix_is_chosen() {
        let taken: HashSet<String> = ["caneca", "caneca-2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(first_free("caneca", &taken), "caneca-3");
        assert_eq!(first_free("copo", &taken), "copo");
    }
}
