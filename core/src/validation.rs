//! Brazilian document and address validators, and e-mail normalisation.

/// The 27 federative units.
pub const UFS: [&str; 27] = [
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA", "PB", "PE",
    "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
];

fn digits(input: &str) -> Vec<u32> {
    input.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn mod11_check_digit(digits: &[u32], first_weight: u32) -> u32 {
    let sum: u32 = digits
        .iter()
        .zip((2..=first_weight).rev())
        .map(|(d, w)| d * w)
        .sum();
    let r = sum % 11;
    if r < 2 { 0 } else { 11 - r }
}

/// Validates a CPF (mask allowed: `529.982.247-25`) and returns its 11 digits.
pub fn normalize_cpf(input: &str) -> Option<String> {
    let trimmed = input.trim();
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        return None;
    }
    let d = digits(trimmed);
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return None;
    }
    let d1 = mod11_check_digit(&d[..9], 10);
    let d2 = mod11_check_digit(&d[..10], 11);
    (d[9] == d1 && d[10] == d2).then(|| d.iter().map(|x| char::from(b'0' + *x as u8)).collect())
}

/// Accepts `01310100` or `01310-100` and returns the 8 digits.
pub fn normalize_cep(input: &str) -> Option<String> {
    let s = input.trim();
    let ok = match s.len() {
        8 => s.chars().all(|c| c.is_ascii_digit()),
        9 => {
            s.as_bytes()[5] == b'-'
                && s.chars()
                    .enumerate()
                    .all(|(i, c)| i == 5 || c.is_ascii_digit())
        }
        _ => false,
    };
    ok.then(|| s.replace('-', ""))
}

/// Returns the upper-cased UF when it is one of the 27.
pub fn normalize_uf(input: &str) -> Option<String> {
    let uf = input.trim().to_ascii_uppercase();
    UFS.contains(&uf.as_str()).then_some(uf)
}

/// Trims and lower-cases an e-mail address and checks its basic shape.
pub fn normalize_email(input: &str) -> Option<String> {
    let email = input.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let shape_ok = !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    shape_ok.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_cpfs_are_normalised_to_digits() {
        assert_eq!(
            normalize_cpf("529.982.247-25").as_deref(),
            Some("52998224725")
        );
        for cpf in [
            "111.444.777-35",
            "123.456.789-09",
            "471.737.080-52",
            "52998224725",
        ] {
            assert!(normalize_cpf(cpf).is_some(), "{cpf}");
        }
    }

    #[test]
    fn invalid_cpfs_are_rejected() {
        for cpf in [
            "123.456.789-10",
            "12345678976",
            "111.111.111-11",
            "00000000000",
            "1234567890",
            "123456789012",
            "5299822472a",
            "",
        ] {
            assert!(normalize_cpf(cpf).is_none(), "{cpf}");
        }
    }

    #[test]
    fn ceps_accept_optional_hyphen() {
        assert_eq!(normalize_cep("01310-100").as_deref(), Some("01310100"));
        assert_eq!(normalize_cep("01310100").as_deref(), Some("01310100"));
        for bad in [
            "0131010",
            "01310-10",
            "013101000",
            "0131a100",
            "01-310100",
            "",
        ] {
            assert!(normalize_cep(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ufs_are_the_27() {
        assert_eq!(UFS.len(), 27);
        assert_eq!(normalize_uf("sp").as_deref(), Some("SP"));
        assert!(normalize_uf("XX").is_none());
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email("  Ana@Example.COM ").as_deref(),
            Some("ana@example.com")
        );
        for bad in [
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
        ] {
            assert!(normalize_email(bad).is_none(), "{bad}");
        }
    }
}
