//! Brazilian document and address validators, and e-mail normalisation.

/// The 27 federative units.
pub const UFS: [&str; 27] = [
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA", "PB", "PE",
    "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
];

/// The characters `str::trim` removes (Unicode `White_Space`), as the body of a regular
/// expression character class. The OpenAPI document states "not blank" with it
/// (`[^…]`: holds a character trim keeps), and must spell it exactly: a pattern's `\s` is
/// another set (ECMA-262's has U+FEFF and lacks U+0085). Attributes take no constants, so the
/// document repeats it literally; the API's OpenAPI tests check every copy against this one.
pub const WHITESPACE_CLASS: &str =
    r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A federative unit as the OpenAPI document names it: [`UFS`] as an enumeration.
#[derive(utoipa::ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum Uf {
    AC,
    AL,
    AM,
    AP,
    BA,
    CE,
    DF,
    ES,
    GO,
    MA,
    MG,
    MS,
    MT,
    PA,
    PB,
    PE,
    PI,
    PR,
    RJ,
    RN,
    RO,
    RR,
    RS,
    SC,
    SE,
    SP,
    TO,
}

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

    /// The characters of a class body made of literal characters, `\t`, `\r`, `\uXXXX`
    /// escapes and `a-b` ranges.
    fn class_members(body: &str) -> Vec<char> {
        let mut singles = Vec::new();
        let mut rest = body.chars();
        while let Some(c) = rest.next() {
            let c = match c {
                '\\' => match rest.next() {
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('u') => {
                        let hex: String = rest.by_ref().take(4).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap()
                    }
                    other => panic!("unexpected escape {other:?}"),
                },
                c => c,
            };
            singles.push(c);
        }
        let mut members = Vec::new();
        let mut i = 0;
        while i < singles.len() {
            if singles.get(i + 1) == Some(&'-') && i + 2 < singles.len() {
                members.extend(singles[i]..=singles[i + 2]);
                i += 3;
            } else {
                members.push(singles[i]);
                i += 1;
            }
        }
        members
    }

    #[test]
    fn the_documented_whitespace_is_what_trim_removes() {
        let documented = class_members(WHITESPACE_CLASS);
        let removed: Vec<char> = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        assert_eq!(documented, removed);
    }

    #[test]
    fn the_documented_ufs_are_the_ones_accepted() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Uf::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|uf| uf.as_str().unwrap())
            .collect();
        assert_eq!(documented, UFS);
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

    /// Properties over generated input: the validators agree with an independent
    /// implementation of the check digits, accept every mask they document, and never panic.
    mod proptests {
        use super::super::*;
        use proptest::prelude::*;

        /// Reference check digits, written independently of `mod11_check_digit`.
        fn reference_check_digits(base: &[u8; 9]) -> (u8, u8) {
            let dv = |digits: &[u8]| {
                let n = digits.len() as u32 + 1;
                let sum: u32 = digits
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| u32::from(d) * (n - i as u32))
                    .sum();
                let rest = (sum * 10) % 11;
                if rest == 10 { 0 } else { rest as u8 }
            };
            let first = dv(base);
            let mut ten = base.to_vec();
            ten.push(first);
            (first, dv(&ten))
        }

        fn reference_is_valid(digits: &[u8; 11]) -> bool {
            let base: [u8; 9] = digits[..9].try_into().unwrap();
            let (d1, d2) = reference_check_digits(&base);
            digits.iter().any(|&d| d != digits[0]) && digits[9] == d1 && digits[10] == d2
        }

        fn to_text(digits: &[u8]) -> String {
            digits.iter().map(|d| char::from(b'0' + d)).collect()
        }

        fn masked(plain: &str) -> String {
            format!(
                "{}.{}.{}-{}",
                &plain[..3],
                &plain[3..6],
                &plain[6..9],
                &plain[9..]
            )
        }

        /// Nine digits that are not all the same, completed with their check digits.
        fn valid_cpf() -> impl Strategy<Value = [u8; 11]> {
            proptest::array::uniform9(0u8..10)
                .prop_filter("not a repeated digit", |b| b.iter().any(|&d| d != b[0]))
                .prop_map(|base| {
                    let (d1, d2) = reference_check_digits(&base);
                    let mut cpf = [0u8; 11];
                    cpf[..9].copy_from_slice(&base);
                    cpf[9] = d1;
                    cpf[10] = d2;
                    cpf
                })
        }

        proptest! {
            #[test]
            fn every_generated_cpf_is_accepted_masked_or_not(cpf in valid_cpf()) {
                let plain = to_text(&cpf);
                prop_assert_eq!(normalize_cpf(&plain), Some(plain.clone()));
                prop_assert_eq!(normalize_cpf(&masked(&plain)), Some(plain.clone()));
                let padded = format!("  {}\t", masked(&plain));
                prop_assert_eq!(normalize_cpf(&padded), Some(plain.clone()));
            }

            #[test]
            fn changing_one_digit_of_a_cpf_is_rejected_unless_it_makes_another_valid_one(
                cpf in valid_cpf(),
                position in 0usize..11,
                bump in 1u8..10,
            ) {
                let mut changed = cpf;
                changed[position] = (changed[position] + bump) % 10;
                let text = to_text(&changed);
                let accepted = normalize_cpf(&text).is_some();
                prop_assert_eq!(accepted, reference_is_valid(&changed), "{}", text);
                prop_assert_eq!(normalize_cpf(&masked(&text)).is_some(), accepted);
            }

            #[test]
            fn any_eleven_digits_are_judged_like_the_reference(digits in proptest::array::uniform11(0u8..10)) {
                prop_assert_eq!(normalize_cpf(&to_text(&digits)).is_some(), reference_is_valid(&digits));
            }

            #[test]
            fn cpf_validation_never_panics_and_answers_eleven_digits(input in any::<String>()) {
                if let Some(cpf) = normalize_cpf(&input) {
                    prop_assert_eq!(cpf.len(), 11);
                    prop_assert!(cpf.bytes().all(|b| b.is_ascii_digit()));
                    prop_assert_eq!(normalize_cpf(&cpf), Some(cpf.clone()));
                }
            }

            #[test]
            fn cpf_shaped_noise_never_panics(input in "[0-9.\\- ]{0,20}") {
                if let Some(cpf) = normalize_cpf(&input) {
                    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                    prop_assert_eq!(cpf, digits);
                }
            }

            #[test]
            fn every_eight_digit_cep_is_accepted_with_or_without_hyphen(cep in "[0-9]{8}") {
                prop_assert_eq!(normalize_cep(&cep), Some(cep.clone()));
                let hyphenated = format!("{}-{}", &cep[..5], &cep[5..]);
                prop_assert_eq!(normalize_cep(&hyphenated), Some(cep.clone()));
                prop_assert_eq!(normalize_cep(&format!(" {hyphenated} ")), Some(cep.clone()));
            }

            #[test]
            fn a_cep_with_a_misplaced_hyphen_or_wrong_length_is_rejected(
                cep in "[0-9]{8}",
                at in 0usize..=8,
                cut in 1usize..8,
            ) {
                if at != 5 {
                    let moved = format!("{}-{}", &cep[..at], &cep[at..]);
                    prop_assert_eq!(normalize_cep(&moved), None);
                }
                prop_assert_eq!(normalize_cep(&cep[..cut]), None);
                prop_assert_eq!(normalize_cep(&format!("{cep}{}", &cep[..cut])), None);
            }

            #[test]
            fn cep_validation_never_panics_and_answers_eight_digits(input in any::<String>()) {
                if let Some(cep) = normalize_cep(&input) {
                    prop_assert_eq!(cep.len(), 8);
                    prop_assert!(cep.bytes().all(|b| b.is_ascii_digit()));
                }
            }

            #[test]
            fn uf_and_email_validation_never_panic(input in any::<String>()) {
                if let Some(uf) = normalize_uf(&input) {
                    prop_assert!(UFS.contains(&uf.as_str()));
                }
                if let Some(email) = normalize_email(&input) {
                    prop_assert_eq!(normalize_email(&email), Some(email.clone()));
                }
            }
        }
    }
}
