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
    let reais: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let centavos: i64 = match frac_part.len() {
        0 => 0,
        1 => frac_part.parse::<i64>().ok()? * 10,
        _ => frac_part.parse().ok()?,
    };
    let total = reais.checked_mul(100)?.checked_add(centavos)?;
    Some(if neg { -total } else { total })
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
}
