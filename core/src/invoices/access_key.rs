//! The 44-digit NF-e access key (chave de acesso) and its mod-11 check digit.
//!
//! Layout, left to right: cUF (2, IBGE state code) · AAMM (4, year and month of issue) ·
//! CNPJ (14) · mod (2, 55 NF-e / 65 NFC-e) · série (3) · nNF (9) · tpEmis (1) · cNF (8) ·
//! cDV (1). The check digit weighs the first 43 digits 2, 3, …, 9, 2, 3, … starting from
//! the rightmost; with r = Σ mod 11, cDV is 0 when r is 0 or 1, else 11 − r.
//!
//! What the check digit catches: changing the check digit itself, and any single-digit
//! change in the body unless it moves the remainder between 0 and 1 (both give cDV 0).
//! Because every weight is coprime with 11, a single-digit change always changes the
//! remainder, so that collapse is the only blind spot (see the tests for an example).

/// IBGE codes of the 27 federative units, as used in cUF.
const UF_CODES: [(&str, u8); 27] = [
    ("RO", 11),
    ("AC", 12),
    ("AM", 13),
    ("RR", 14),
    ("PA", 15),
    ("AP", 16),
    ("TO", 17),
    ("MA", 21),
    ("PI", 22),
    ("CE", 23),
    ("RN", 24),
    ("PB", 25),
    ("PE", 26),
    ("AL", 27),
    ("SE", 28),
    ("BA", 29),
    ("MG", 31),
    ("ES", 32),
    ("RJ", 33),
    ("SP", 35),
    ("PR", 41),
    ("SC", 42),
    ("RS", 43),
    ("MS", 50),
    ("MT", 51),
    ("GO", 52),
    ("DF", 53),
];

pub const MODEL_NFE: u8 = 55;
pub const MODEL_NFCE: u8 = 65;

/// The IBGE code of a UF (`"SP"` → 35).
pub fn uf_code(uf: &str) -> Option<u8> {
    let uf = uf.trim().to_ascii_uppercase();
    UF_CODES
        .iter()
        .find(|(name, _)| *name == uf)
        .map(|(_, code)| *code)
}

/// The fields an access key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyParts {
    /// IBGE state code of the emitter (35 = SP).
    pub uf_code: u8,
    /// Year of issue; only its last two digits go into the key.
    pub year: u16,
    pub month: u8,
    /// The emitter's CNPJ, 14 digits.
    pub cnpj: String,
    /// 55 for NF-e, 65 for NFC-e.
    pub model: u8,
    /// 0–999.
    pub series: u16,
    /// 1–999 999 999.
    pub number: u32,
    /// 1 normal emission; 2–9 contingency modes.
    pub emission_type: u8,
    /// cNF: 8 random-ish digits chosen by the emitter.
    pub numeric_code: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessKeyError {
    #[error("an access key has 44 digits")]
    Length,
    #[error("an access key has only digits")]
    NotDigits,
    #[error("wrong check digit")]
    CheckDigit,
    #[error("unknown state code {0}")]
    UfCode(u8),
    #[error("month {0} is not 1–12")]
    Month(u8),
    #[error("the CNPJ must be 14 digits")]
    Cnpj,
    #[error("model {0} is neither 55 (NF-e) nor 65 (NFC-e)")]
    Model(u8),
    #[error("series {0} is over 999")]
    Series(u16),
    #[error("number {0} is not 1–999999999")]
    Number(u32),
    #[error("emission type {0} is not 1–9")]
    EmissionType(u8),
    #[error("numeric code {0} has more than 8 digits")]
    NumericCode(u32),
}

/// The mod-11 check digit of the first 43 digits (`None` when `body` is not 43 digits).
pub fn check_digit(body: &str) -> Option<u8> {
    if body.len() != 43 || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(check_digit_of(remainder(body.as_bytes())))
}

fn remainder(body: &[u8]) -> u32 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, digit)| u32::from(digit - b'0') * (2 + (i as u32 % 8)))
        .sum();
    sum % 11
}

fn check_digit_of(remainder: u32) -> u8 {
    if remainder < 2 {
        0
    } else {
        (11 - remainder) as u8
    }
}

/// True when `key` is 44 digits whose last one is the check digit of the others. Says
/// nothing about the fields; see [`validate`] for that.
pub fn has_valid_check_digit(key: &str) -> bool {
    key.len() == 44
        && key.bytes().all(|b| b.is_ascii_digit())
        && check_digit(&key[..43])
            .is_some_and(|dv| u32::from(dv) == u32::from(key.as_bytes()[43] - b'0'))
}

fn check_parts(parts: &AccessKeyParts) -> Result<(), AccessKeyError> {
    if !UF_CODES.iter().any(|(_, code)| *code == parts.uf_code) {
        return Err(AccessKeyError::UfCode(parts.uf_code));
    }
    if !(1..=12).contains(&parts.month) {
        return Err(AccessKeyError::Month(parts.month));
    }
    if parts.cnpj.len() != 14 || !parts.cnpj.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccessKeyError::Cnpj);
    }
    if parts.model != MODEL_NFE && parts.model != MODEL_NFCE {
        return Err(AccessKeyError::Model(parts.model));
    }
    if parts.series > 999 {
        return Err(AccessKeyError::Series(parts.series));
    }
    if !(1..=999_999_999).contains(&parts.number) {
        return Err(AccessKeyError::Number(parts.number));
    }
    if !(1..=9).contains(&parts.emission_type) {
        return Err(AccessKeyError::EmissionType(parts.emission_type));
    }
    if parts.numeric_code > 99_999_999 {
        return Err(AccessKeyError::NumericCode(parts.numeric_code));
    }
    Ok(())
}

/// Builds the 44-digit key, check digit included.
pub fn build(parts: &AccessKeyParts) -> Result<String, AccessKeyError> {
    check_parts(parts)?;
    let body = format!(
        "{:02}{:02}{:02}{}{:02}{:03}{:09}{}{:08}",
        parts.uf_code,
        parts.year % 100,
        parts.month,
        parts.cnpj,
        parts.model,
        parts.series,
        parts.number,
        parts.emission_type,
        parts.numeric_code,
    );
    let dv = check_digit_of(remainder(body.as_bytes()));
    Ok(format!("{body}{dv}"))
}

/// Checks shape, check digit and fields, and returns the fields (the year as 20AA).
pub fn validate(key: &str) -> Result<AccessKeyParts, AccessKeyError> {
    if key.len() != 44 {
        return Err(AccessKeyError::Length);
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccessKeyError::NotDigits);
    }
    if !has_valid_check_digit(key) {
        return Err(AccessKeyError::CheckDigit);
    }
    // All ASCII digits, so these parses cannot fail; map to an error rather than panic.
    let field = |range: std::ops::Range<usize>| -> Result<u32, AccessKeyError> {
        key[range].parse().map_err(|_| AccessKeyError::NotDigits)
    };
    let small = |range: std::ops::Range<usize>| -> Result<u8, AccessKeyError> {
        u8::try_from(field(range)?).map_err(|_| AccessKeyError::NotDigits)
    };
    let parts = AccessKeyParts {
        uf_code: small(0..2)?,
        year: 2000 + u16::from(small(2..4)?),
        month: small(4..6)?,
        cnpj: key[6..20].to_owned(),
        model: small(20..22)?,
        series: u16::try_from(field(22..25)?).map_err(|_| AccessKeyError::NotDigits)?,
        number: field(25..34)?,
        emission_type: small(34..35)?,
        numeric_code: field(35..43)?,
    };
    check_parts(&parts)?;
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn example() -> AccessKeyParts {
        AccessKeyParts {
            uf_code: 35,
            year: 2026,
            month: 11,
            cnpj: "11222333000181".into(),
            model: 55,
            series: 1,
            number: 123,
            emission_type: 1,
            numeric_code: 12_345_678,
        }
    }

    /// Worked by hand. The 43 digits, with the weights 2..9 cycling from the right:
    ///
    /// ```text
    /// digits  3 5 2 6 1 1 1 1 2 2 2 3 3 3 0 0 0 1 8 1 5 5 0 0 1 0 0 0 0 0 0 1 2 3 1 1 2 3 4 5 6 7 8
    /// weights 4 3 2 9 8 7 6 5 4 3 2 9 8 7 6 5 4 3 2 9 8 7 6 5 4 3 2 9 8 7 6 5 4 3 2 9 8 7 6 5 4 3 2
    /// ```
    ///
    /// Products: 12 15 4 54 8 7 6 5 8 6 4 27 24 21 0 0 0 3 16 9 40 35 0 0 4 0 0 0 0 0 0 5 8 9 2
    /// 9 16 21 24 25 24 21 16, summing to 488. 488 = 44 × 11 + 4, so r = 4 and cDV = 11 − 4 = 7.
    #[test]
    fn a_hand_computed_key_matches() {
        assert_eq!(
            check_digit("3526111122233300018155001000000123112345678"),
            Some(7)
        );
        let key = build(&example()).unwrap();
        assert_eq!(key, "35261111222333000181550010000001231123456787");
        assert_eq!(validate(&key).unwrap(), example());
    }

    #[test]
    fn remainders_zero_and_one_give_check_digit_zero() {
        // The body for nNF 6 has r = 0; changing cNF's last digit 8 → 3 makes r = 1.
        // Both keys end in 0: the one single-digit change mod 11 cannot see.
        let r0 = "3526111122233300018155001000000006112345678";
        let r1 = "3526111122233300018155001000000006112345673";
        assert_eq!(remainder(r0.as_bytes()), 0);
        assert_eq!(remainder(r1.as_bytes()), 1);
        assert_eq!(check_digit(r0), Some(0));
        assert_eq!(check_digit(r1), Some(0));
    }

    #[test]
    fn malformed_keys_are_rejected_with_a_reason() {
        let key = build(&example()).unwrap();
        assert_eq!(validate(&key[..43]), Err(AccessKeyError::Length));
        assert_eq!(
            validate(&format!("{}X", &key[..43])),
            Err(AccessKeyError::NotDigits)
        );
        assert_eq!(
            validate("35261111222333000181550010000001231123456788"),
            Err(AccessKeyError::CheckDigit)
        );
        // cUF 99 does not exist: a key with a right check digit but a wrong field.
        let body = "9926111122233300018155001000000123112345678";
        let forged = format!("{body}{}", check_digit(body).unwrap());
        assert_eq!(validate(&forged), Err(AccessKeyError::UfCode(99)));
    }

    #[test]
    fn building_checks_every_field() {
        let mut parts = example();
        parts.month = 13;
        assert_eq!(build(&parts), Err(AccessKeyError::Month(13)));
        let mut parts = example();
        parts.number = 0;
        assert_eq!(build(&parts), Err(AccessKeyError::Number(0)));
        let mut parts = example();
        parts.cnpj = "11.222.333/0001-81".into();
        assert_eq!(build(&parts), Err(AccessKeyError::Cnpj));
        let mut parts = example();
        parts.model = 57;
        assert_eq!(build(&parts), Err(AccessKeyError::Model(57)));
        let mut parts = example();
        parts.numeric_code = 100_000_000;
        assert_eq!(build(&parts), Err(AccessKeyError::NumericCode(100_000_000)));
    }

    #[test]
    fn uf_codes_follow_ibge() {
        assert_eq!(uf_code("SP"), Some(35));
        assert_eq!(uf_code("rj"), Some(33));
        assert_eq!(uf_code("DF"), Some(53));
        assert_eq!(uf_code("XX"), None);
    }

    fn any_parts() -> impl Strategy<Value = AccessKeyParts> {
        (
            prop::sample::select(UF_CODES.map(|(_, code)| code).to_vec()),
            2000u16..=2099,
            1u8..=12,
            "[0-9]{14}",
            prop::sample::select(vec![MODEL_NFE, MODEL_NFCE]),
            0u16..=999,
            1u32..=999_999_999,
            1u8..=9,
            0u32..=99_999_999,
        )
            .prop_map(
                |(
                    uf_code,
                    year,
                    month,
                    cnpj,
                    model,
                    series,
                    number,
                    emission_type,
                    numeric_code,
                )| {
                    AccessKeyParts {
                        uf_code,
                        year,
                        month,
                        cnpj,
                        model,
                        series,
                        number,
                        emission_type,
                        numeric_code,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_built_key_validates_and_round_trips(parts in any_parts()) {
            let key = build(&parts).unwrap();
            prop_assert_eq!(key.len(), 44);
            prop_assert!(has_valid_check_digit(&key));
            prop_assert_eq!(validate(&key).unwrap(), parts);
        }

        #[test]
        fn a_single_digit_change_is_caught_except_between_remainders_zero_and_one(
            parts in any_parts(),
            position in 0usize..44,
            replacement in 0u8..=9,
        ) {
            let key = build(&parts).unwrap();
            let original = key.as_bytes()[position];
            prop_assume!(original != b'0' + replacement);
            let mut changed = key.clone().into_bytes();
            changed[position] = b'0' + replacement;
            let changed = String::from_utf8(changed).unwrap();

            let collapsed = position < 43 && {
                let before = remainder(&key.as_bytes()[..43]);
                let after = remainder(&changed.as_bytes()[..43]);
                prop_assert_ne!(before, after, "a single change always moves the remainder");
                before < 2 && after < 2
            };
            prop_assert_eq!(has_valid_check_digit(&changed), collapsed);
            if !collapsed {
                prop_assert!(validate(&changed).is_err());
            }
        }
    }
}
