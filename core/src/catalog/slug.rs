//! URL slugs from names: accents stripped, lower-case ASCII words joined by hyphens.

use unicode_normalization::UnicodeNormalization;

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
pub fn first_free(base: &str, taken: &std::collections::HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2u64..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_owned())
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
        let taken: std::collections::HashSet<String> = ["caneca", "caneca-2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(first_free("caneca", &taken), "caneca-3");
        assert_eq!(first_free("copo", &taken), "copo");
    }
}
