//! Money is integer centavos (`i64`) everywhere; these helpers convert only at the edges.

/// Formats centavos as Brazilian currency: `123456` → `"R$ 1.234,56"`.
pub fn format_brl(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let (reais, centavos) = (abs / 100, abs % 100);
    let digits = reais.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("{sign}R$ {grouped},{centavos:02}")
}

/// Decimal string with a dot, as most provider APIs want: `1050` → `"10.50"`.
pub fn to_decimal_string(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses `"23.90"`, `"23,9"`, `"1.234,56"` (Brazilian format) or `"1234.56"` into centavos.
/// A comma marks Brazilian format, where dots group thousands.
pub fn parse_decimal(input: &str) -> Option<i64> {
    let s = input.trim();
    let normalized = if s.contains(',') {
        s.replace('.', "").replace(',', ".")
    } else {
        s.to_owned()
    };
    let (neg, body) = match normalized.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, normalized),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((&body, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
        || frac_part.len() > 2
    {
        return None;
    }
    // Widened so that the most negative amount, whose magnitude exceeds `i64::MAX`, parses.
    let reais: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let centavos: i128 = match frac_part.len() {
        0 => 0,
        1 => frac_part.parse::<i128>().ok()? * 10,
        _ => frac_part.parse().ok()?,
    };
    let total = reais.checked_mul(100)?.checked_add(centavos)?;
    i64::try_from(if neg { -total } else { total }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_brazilian_currency() {
        assert_eq!(format_brl(123_456), "R$ 1.234,56");
        assert_eq!(format_brl(5), "R$ 0,05");
        assert_eq!(format_brl(100_000_000), "R$ 1.000.000,00");
        assert_eq!(format_brl(-1990), "-R$ 19,90");
    }

    #[test]
    fn decimal_strings_round_trip() {
        assert_eq!(to_decimal_string(1050), "10.50");
        assert_eq!(parse_decimal("10.50"), Some(1050));
        assert_eq!(parse_decimal("19,92"), Some(1992));
        assert_eq!(parse_decimal("1.234,56"), Some(123_456));
        assert_eq!(parse_decimal("23.9"), Some(2390));
        assert_eq!(parse_decimal("7"), Some(700));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("1.234"), None);
    }

    #[test]
    fn the_extremes_of_i64_round_trip() {
        for cents in [i64::MIN, i64::MIN + 1, i64::MAX, -1, 0] {
            assert_eq!(
                parse_decimal(&to_decimal_string(cents)),
                Some(cents),
                "{cents}"
            );
        }
    }

    /// Properties over the whole `i64` range and over arbitrary text.
    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        /// `format_brl` without its currency marker, as a person would type it back.
        fn typed_back(cents: i64) -> String {
            format_brl(cents).replacen("R$ ", "", 1)
        }

        proptest! {
            #[test]
            fn decimal_strings_round_trip(cents in any::<i64>()) {
                prop_assert_eq!(parse_decimal(&to_decimal_string(cents)), Some(cents));
            }

            #[test]
            fn brazilian_format_round_trips(cents in any::<i64>()) {
                prop_assert_eq!(parse_decimal(&typed_back(cents)), Some(cents));
            }

            #[test]
            fn everyday_amounts_round_trip(cents in -1_000_000_000_i64..1_000_000_000) {
                prop_assert_eq!(parse_decimal(&to_decimal_string(cents)), Some(cents));
                prop_assert_eq!(parse_decimal(&typed_back(cents)), Some(cents));
            }

            #[test]
            fn reais_and_centavos_are_read_as_written(reais in 0i64..1_000_000_000, centavos in 0i64..100) {
                let expected = reais * 100 + centavos;
                prop_assert_eq!(parse_decimal(&format!("{reais}.{centavos:02}")), Some(expected));
                prop_assert_eq!(parse_decimal(&format!("{reais},{centavos:02}")), Some(expected));
                prop_assert_eq!(parse_decimal(&format!("-{reais}.{centavos:02}")), Some(-expected));
            }

            #[test]
            fn a_third_decimal_place_is_refused(reais in 0i64..1_000_000, fraction in 0u32..1000) {
                prop_assert_eq!(parse_decimal(&format!("{reais}.{fraction:03}")), None);
            }

            #[test]
            fn parsing_arbitrary_text_never_panics(input in any::<String>()) {
                let _ = parse_decimal(&input);
            }

            #[test]
            fn parsing_number_shaped_text_never_panics_and_is_stable(input in "-?[0-9.,]{0,30}") {
                if let Some(cents) = parse_decimal(&input) {
                    prop_assert_eq!(parse_decimal(&to_decimal_string(cents)), Some(cents));
                }
            }

            #[test]
            fn formatting_never_panics_and_keeps_the_sign(cents in any::<i64>()) {
                let brl = format_brl(cents);
                let decimal = to_decimal_string(cents);
                prop_assert_eq!(brl.starts_with('-'), cents < 0);
                prop_assert_eq!(decimal.starts_with('-'), cents < 0);
                prop_assert!(brl.ends_with(&decimal[decimal.len() - 2..]));
            }
        }
    }
}
