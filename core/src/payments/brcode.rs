//! PIX BR Code: the EMV QRCPS-MPM payload, as profiled by the Banco Central do Brasil, that a
//! payer's bank app reads from the QR code or from "PIX copia e cola".
//!
//! Every field is `ID(2 digits) + LENGTH(2 digits) + VALUE`; templates (26, 62) nest the same
//! format. The code ends with field 63, a CRC-16/CCITT-FALSE over everything before its value
//! (including the literal `6304`). Lengths count characters; the builder keeps values ASCII so
//! characters and bytes agree.

use std::{collections::BTreeMap, fmt::Write as _};

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

use crate::money::to_decimal_string;

/// The globally unique identifier of the PIX arrangement in field 26. Official examples
/// spell it in upper and lower case; parsing accepts any case and keeps the original.
pub const PIX_GUI: &str = "br.gov.bcb.pix";
pub const MAX_MERCHANT_NAME_CHARS: usize = 25;
pub const MAX_MERCHANT_CITY_CHARS: usize = 15;
/// The longest txid the BCB allows (`[a-zA-Z0-9]{26,35}` for charges). Bank apps are known to
/// cap the txid of a *static* code at 25, so codes meant for real payers should stay within that.
pub const MAX_TXID_CHARS: usize = 35;
/// Longest PIX key (an e-mail can be 77 characters).
pub const MAX_KEY_CHARS: usize = 77;
/// Field 54 holds at most 13 characters: `9999999999.99`.
pub const MAX_AMOUNT_CENTS: i64 = 999_999_999_999;

/// What field 62/05 carries when a code has no txid.
const NO_TXID: &str = "***";

/// Top-level field ids this module interprets; anything else is kept in `other_fields`.
const FORMAT: u8 = 0;
const POINT_OF_INITIATION: u8 = 1;
const MERCHANT_ACCOUNT: u8 = 26;
const CATEGORY_CODE: u8 = 52;
const CURRENCY: u8 = 53;
const AMOUNT: u8 = 54;
const COUNTRY: u8 = 58;
const MERCHANT_NAME: u8 = 59;
const MERCHANT_CITY: u8 = 60;
const POSTAL_CODE: u8 = 61;
const ADDITIONAL_DATA: u8 = 62;
const CRC: u8 = 63;
const INTERPRETED: [u8; 12] = [
    FORMAT,
    POINT_OF_INITIATION,
    MERCHANT_ACCOUNT,
    CATEGORY_CODE,
    CURRENCY,
    AMOUNT,
    COUNTRY,
    MERCHANT_NAME,
    MERCHANT_CITY,
    POSTAL_CODE,
    ADDITIONAL_DATA,
    CRC,
];

/// Sub-fields of the merchant account template (26).
const ACCOUNT_GUI: u8 = 0;
const ACCOUNT_KEY: u8 = 1;
const ACCOUNT_DESCRIPTION: u8 = 2;
const ACCOUNT_LOCATION: u8 = 25;
/// Sub-field of the additional data template (62).
const ADDITIONAL_TXID: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrCodeError {
    #[error("field {id:02} is {len} characters long; at most {max} fit")]
    FieldTooLong { id: u8, len: usize, max: usize },
    #[error("field {0:02} must not be empty")]
    EmptyField(u8),
    #[error("a PIX code needs a key (26/01) or a location (26/25)")]
    NoKeyOrLocation,
    #[error("txid must be 1 to {MAX_TXID_CHARS} ASCII letters or digits")]
    InvalidTxid,
    #[error("amount must be between 0.01 and 9999999999.99")]
    InvalidAmount,
    #[error("field {0:02} is interpreted by the builder and cannot be an extra field")]
    ReservedField(u8),
    #[error("the code does not end with a CRC field (6304 + 4 hex digits)")]
    MissingCrc,
    #[error("CRC mismatch: the code says {found:04X}, its content gives {expected:04X}")]
    CrcMismatch { expected: u16, found: u16 },
    #[error("malformed field header at character {0}")]
    MalformedHeader(usize),
    #[error("field {0:02} is cut short")]
    Truncated(u8),
    #[error("field {0:02} appears twice")]
    DuplicateField(u8),
    #[error("required field {0:02} is missing")]
    MissingField(u8),
    #[error("field {id:02} has an unexpected value: {reason}")]
    InvalidField { id: u8, reason: &'static str },
    #[error("not a PIX code: no merchant account with GUI br.gov.bcb.pix")]
    NotPix,
}

/// Field 01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointOfInitiation {
    /// `11`: the code may be paid many times.
    Reusable,
    /// `12`: a single-use (dynamic) code.
    SingleUse,
}

impl PointOfInitiation {
    fn code(self) -> &'static str {
        match self {
            Self::Reusable => "11",
            Self::SingleUse => "12",
        }
    }
}

/// Field 26: whom the payer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantAccount {
    /// Sub-field 00, normally [`PIX_GUI`].
    pub gui: String,
    /// Sub-field 01: the receiver's PIX key (static codes).
    pub key: Option<String>,
    /// Sub-field 02: free text shown to the payer (static codes).
    pub description: Option<String>,
    /// Sub-field 25: the payload location URL without `https://` (dynamic codes).
    pub location: Option<String>,
    /// Sub-fields we do not interpret, kept so a parsed code re-encodes unchanged.
    pub other: BTreeMap<u8, String>,
}

/// A decoded BR Code. Amounts are centavos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrCode {
    pub point_of_initiation: Option<PointOfInitiation>,
    pub merchant_account: MerchantAccount,
    /// Field 52, `0000` for PIX.
    pub merchant_category_code: String,
    /// Field 53, `986` (BRL).
    pub currency: String,
    /// Field 54; `None` lets the payer type the amount.
    pub amount_cents: Option<i64>,
    /// Field 58, `BR`.
    pub country: String,
    /// Field 59: reduced to ASCII and at most 25 characters when encoding.
    pub merchant_name: String,
    /// Field 60: reduced to ASCII and at most 15 characters when encoding.
    pub merchant_city: String,
    /// Field 61.
    pub postal_code: Option<String>,
    /// Field 62/05; `None` is encoded as `***`.
    pub txid: Option<String>,
    /// Sub-fields of 62 other than 05.
    pub other_additional_data: BTreeMap<u8, String>,
    /// Top-level fields we do not interpret (other account templates, 80–99…).
    pub other_fields: BTreeMap<u8, String>,
}

impl BrCode {
    /// A static code paying `key`, reusable unless an amount and txid make it specific.
    pub fn static_pix(
        key: impl Into<String>,
        merchant_name: impl Into<String>,
        merchant_city: impl Into<String>,
    ) -> Self {
        Self::with_account(
            MerchantAccount {
                gui: PIX_GUI.to_owned(),
                key: Some(key.into()),
                description: None,
                location: None,
                other: BTreeMap::new(),
            },
            None,
            merchant_name.into(),
            merchant_city.into(),
        )
    }

    /// A dynamic, single-use code whose details the payer's bank fetches from `location`
    /// (a URL without `https://`).
    pub fn dynamic_pix(
        location: impl Into<String>,
        merchant_name: impl Into<String>,
        merchant_city: impl Into<String>,
    ) -> Self {
        Self::with_account(
            MerchantAccount {
                gui: PIX_GUI.to_owned(),
                key: None,
                description: None,
                location: Some(location.into()),
                other: BTreeMap::new(),
            },
            Some(PointOfInitiation::SingleUse),
            merchant_name.into(),
            merchant_city.into(),
        )
    }

    fn with_account(
        merchant_account: MerchantAccount,
        point_of_initiation: Option<PointOfInitiation>,
        merchant_name: String,
        merchant_city: String,
    ) -> Self {
        Self {
            point_of_initiation,
            merchant_account,
            merchant_category_code: "0000".to_owned(),
            currency: "986".to_owned(),
            amount_cents: None,
            country: "BR".to_owned(),
            merchant_name,
            merchant_city,
            postal_code: None,
            txid: None,
            other_additional_data: BTreeMap::new(),
            other_fields: BTreeMap::new(),
        }
    }

    pub fn amount_cents(mut self, cents: i64) -> Self {
        self.amount_cents = Some(cents);
        self
    }

    pub fn txid(mut self, txid: impl Into<String>) -> Self {
        self.txid = Some(txid.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.merchant_account.description = Some(description.into());
        self
    }

    /// The payload string, ending in its CRC.
    pub fn encode(&self) -> Result<String, BrCodeError> {
        let mut fields: BTreeMap<u8, String> = BTreeMap::new();
        for (&id, value) in &self.other_fields {
            if INTERPRETED.contains(&id) || id > 99 {
                return Err(BrCodeError::ReservedField(id));
            }
            fields.insert(id, value.clone());
        }
        fields.insert(FORMAT, "01".to_owned());
        if let Some(point) = self.point_of_initiation {
            fields.insert(POINT_OF_INITIATION, point.code().to_owned());
        }
        fields.insert(MERCHANT_ACCOUNT, self.merchant_account.encode()?);
        fields.insert(CATEGORY_CODE, self.merchant_category_code.clone());
        fields.insert(CURRENCY, self.currency.clone());
        if let Some(cents) = self.amount_cents {
            if !(1..=MAX_AMOUNT_CENTS).contains(&cents) {
                return Err(BrCodeError::InvalidAmount);
            }
            fields.insert(AMOUNT, to_decimal_string(cents));
        }
        fields.insert(COUNTRY, self.country.clone());
        fields.insert(
            MERCHANT_NAME,
            ascii_text(&self.merchant_name, MAX_MERCHANT_NAME_CHARS),
        );
        fields.insert(
            MERCHANT_CITY,
            ascii_text(&self.merchant_city, MAX_MERCHANT_CITY_CHARS),
        );
        if let Some(cep) = &self.postal_code {
            fields.insert(POSTAL_CODE, cep.clone());
        }
        fields.insert(ADDITIONAL_DATA, self.encode_additional_data()?);

        let mut out = String::with_capacity(160);
        for (id, value) in &fields {
            push_field(&mut out, *id, value)?;
        }
        out.push_str("6304");
        let crc = crc16_ccitt_false(out.as_bytes());
        // Writing to a String cannot fail.
        let _ = write!(out, "{crc:04X}");
        Ok(out)
    }

    fn encode_additional_data(&self) -> Result<String, BrCodeError> {
        let txid = match &self.txid {
            Some(txid) if is_valid_txid(txid) => txid.as_str(),
            Some(_) => return Err(BrCodeError::InvalidTxid),
            None => NO_TXID,
        };
        let mut sub: BTreeMap<u8, &str> = self
            .other_additional_data
            .iter()
            .map(|(id, value)| (*id, value.as_str()))
            .collect();
        sub.insert(ADDITIONAL_TXID, txid);
        let mut out = String::new();
        for (id, value) in sub {
            push_field(&mut out, id, value)?;
        }
        Ok(out)
    }

    /// Reads a payload, checking its CRC before anything else.
    pub fn parse(input: &str) -> Result<Self, BrCodeError> {
        let input = input.trim();
        let body = verify_crc(input)?;
        let mut fields = read_fields(body)?;

        if fields.keys().next() != Some(&FORMAT) || body.get(..2) != Some("00") {
            return Err(BrCodeError::MissingField(FORMAT));
        }
        let format = take(&mut fields, FORMAT)?;
        if format != "01" {
            return Err(BrCodeError::InvalidField {
                id: FORMAT,
                reason: "payload format must be 01",
            });
        }
        let point_of_initiation = match fields.remove(&POINT_OF_INITIATION) {
            None => None,
            Some("11") => Some(PointOfInitiation::Reusable),
            Some("12") => Some(PointOfInitiation::SingleUse),
            Some(_) => {
                return Err(BrCodeError::InvalidField {
                    id: POINT_OF_INITIATION,
                    reason: "point of initiation must be 11 or 12",
                });
            }
        };
        let merchant_account = MerchantAccount::parse(
            fields
                .remove(&MERCHANT_ACCOUNT)
                .ok_or(BrCodeError::NotPix)?,
        )?;
        let merchant_category_code = take(&mut fields, CATEGORY_CODE)?.to_owned();
        let currency = take(&mut fields, CURRENCY)?.to_owned();
        let amount_cents = fields.remove(&AMOUNT).map(parse_amount).transpose()?;
        let country = take(&mut fields, COUNTRY)?.to_owned();
        let merchant_name = take(&mut fields, MERCHANT_NAME)?.to_owned();
        let merchant_city = take(&mut fields, MERCHANT_CITY)?.to_owned();
        let postal_code = fields.remove(&POSTAL_CODE).map(str::to_owned);

        let mut txid = None;
        let mut other_additional_data = BTreeMap::new();
        if let Some(additional) = fields.remove(&ADDITIONAL_DATA) {
            for (id, value) in read_fields(additional)? {
                if id == ADDITIONAL_TXID {
                    if value != NO_TXID {
                        txid = Some(value.to_owned());
                    }
                } else {
                    other_additional_data.insert(id, value.to_owned());
                }
            }
        }
        if fields.contains_key(&CRC) {
            return Err(BrCodeError::DuplicateField(CRC));
        }
        let other_fields = fields
            .into_iter()
            .map(|(id, value)| (id, value.to_owned()))
            .collect();

        Ok(Self {
            point_of_initiation,
            merchant_account,
            merchant_category_code,
            currency,
            amount_cents,
            country,
            merchant_name,
            merchant_city,
            postal_code,
            txid,
            other_additional_data,
            other_fields,
        })
    }
}

impl MerchantAccount {
    fn encode(&self) -> Result<String, BrCodeError> {
        if self.gui.is_empty() {
            return Err(BrCodeError::EmptyField(ACCOUNT_GUI));
        }
        if self.key.is_none() && self.location.is_none() {
            return Err(BrCodeError::NoKeyOrLocation);
        }
        let mut sub: BTreeMap<u8, &str> = self
            .other
            .iter()
            .map(|(id, value)| (*id, value.as_str()))
            .collect();
        sub.insert(ACCOUNT_GUI, &self.gui);
        for (id, value) in [
            (ACCOUNT_KEY, &self.key),
            (ACCOUNT_DESCRIPTION, &self.description),
            (ACCOUNT_LOCATION, &self.location),
        ] {
            if let Some(value) = value {
                if id != ACCOUNT_DESCRIPTION && value.chars().count() > MAX_KEY_CHARS {
                    return Err(BrCodeError::FieldTooLong {
                        id,
                        len: value.chars().count(),
                        max: MAX_KEY_CHARS,
                    });
                }
                sub.insert(id, value);
            }
        }
        let mut out = String::new();
        for (id, value) in sub {
            push_field(&mut out, id, value)?;
        }
        Ok(out)
    }

    fn parse(value: &str) -> Result<Self, BrCodeError> {
        let mut sub = read_fields(value)?;
        let gui = sub.remove(&ACCOUNT_GUI).ok_or(BrCodeError::NotPix)?;
        if !gui.eq_ignore_ascii_case(PIX_GUI) {
            return Err(BrCodeError::NotPix);
        }
        let account = Self {
            gui: gui.to_owned(),
            key: sub.remove(&ACCOUNT_KEY).map(str::to_owned),
            description: sub.remove(&ACCOUNT_DESCRIPTION).map(str::to_owned),
            location: sub.remove(&ACCOUNT_LOCATION).map(str::to_owned),
            other: sub
                .into_iter()
                .map(|(id, value)| (id, value.to_owned()))
                .collect(),
        };
        if account.key.is_none() && account.location.is_none() {
            return Err(BrCodeError::NoKeyOrLocation);
        }
        Ok(account)
    }
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `txid` as a static code may carry it: ASCII letters and digits only.
pub fn is_valid_txid(txid: &str) -> bool {
    (1..=MAX_TXID_CHARS).contains(&txid.len()) && txid.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reduces free text to what every bank app displays: accents stripped (`São` → `Sao`),
/// other non-ASCII characters dropped, at most `max_chars` characters, no surrounding spaces.
pub fn ascii_text(text: &str, max_chars: usize) -> String {
    let ascii: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    ascii
        .trim()
        .chars()
        .take(max_chars)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

fn push_field(out: &mut String, id: u8, value: &str) -> Result<(), BrCodeError> {
    let len = value.chars().count();
    if len == 0 {
        return Err(BrCodeError::EmptyField(id));
    }
    if len > 99 {
        return Err(BrCodeError::FieldTooLong { id, len, max: 99 });
    }
    let _ = write!(out, "{id:02}{len:02}{value}");
    Ok(())
}

/// Checks the trailing `6304XXXX` and returns everything before `6304`.
fn verify_crc(input: &str) -> Result<&str, BrCodeError> {
    let split = input
        .len()
        .checked_sub(4)
        .filter(|at| input.is_char_boundary(*at))
        .ok_or(BrCodeError::MissingCrc)?;
    let (covered, crc_hex) = input.split_at(split);
    let body = covered
        .strip_suffix("6304")
        .ok_or(BrCodeError::MissingCrc)?;
    if !crc_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BrCodeError::MissingCrc);
    }
    let found = u16::from_str_radix(crc_hex, 16).map_err(|_| BrCodeError::MissingCrc)?;
    let expected = crc16_ccitt_false(covered.as_bytes());
    if found != expected {
        return Err(BrCodeError::CrcMismatch { expected, found });
    }
    Ok(body)
}

/// Splits a run of TLV fields. Lengths count characters.
fn read_fields(mut rest: &str) -> Result<BTreeMap<u8, &str>, BrCodeError> {
    let total = rest.len();
    let mut fields = BTreeMap::new();
    while !rest.is_empty() {
        let at = total - rest.len();
        let header = rest.get(..4).ok_or(BrCodeError::MalformedHeader(at))?;
        let (id, len) = header.split_at(2);
        let (Some(id), Some(len)) = (two_digits(id), two_digits(len).map(usize::from)) else {
            return Err(BrCodeError::MalformedHeader(at));
        };
        rest = &rest[4..];
        let end = match rest.char_indices().nth(len) {
            Some((end, _)) => end,
            None if rest.chars().count() == len => rest.len(),
            None => return Err(BrCodeError::Truncated(id)),
        };
        let (value, tail) = rest.split_at(end);
        if len == 0 {
            return Err(BrCodeError::EmptyField(id));
        }
        if fields.insert(id, value).is_some() {
            return Err(BrCodeError::DuplicateField(id));
        }
        rest = tail;
    }
    Ok(fields)
}

fn two_digits(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

fn take<'a>(fields: &mut BTreeMap<u8, &'a str>, id: u8) -> Result<&'a str, BrCodeError> {
    fields.remove(&id).ok_or(BrCodeError::MissingField(id))
}

/// Field 54: digits with an optional dot and at most two decimals (`10`, `10.5`, `10.50`).
fn parse_amount(value: &str) -> Result<i64, BrCodeError> {
    let invalid = BrCodeError::InvalidField {
        id: AMOUNT,
        reason: "amount must look like 10.00",
    };
    let (reais, centavos) = value.split_once('.').unwrap_or((value, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if reais.is_empty() || !digits_only(reais) || !digits_only(centavos) || centavos.len() > 2 {
        return Err(invalid);
    }
    let reais: i64 = reais.parse().map_err(|_| invalid.clone())?;
    let centavos: i64 = match centavos.len() {
        0 => 0,
        1 => centavos.parse::<i64>().map_err(|_| invalid.clone())? * 10,
        _ => centavos.parse().map_err(|_| invalid.clone())?,
    };
    reais
        .checked_mul(100)
        .and_then(|r| r.checked_add(centavos))
        .ok_or(invalid)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The shared test vectors (integrations.md §1 and its vectors folder), copied here.
    const BCB_MANUAL_STATIC: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    const PHONE_KEY_WITH_AMOUNT: &str = "00020126360014BR.GOV.BCB.PIX0114+5511943214321520400005303986540566.665802BR5907EMPRESA6008BRASILIA62070503***630404ED";
    const DYNAMIC_SAO_PAULO: &str = "00020101021226770014BR.GOV.BCB.PIX2555pix.example.com/qr/93598be0-1bd0-4997-8318-81776a1d8a995204000053039865802BR5907EMPRESA6009SAO PAULO62070503***6304EEAB";
    const MIXED_CASE_GUI: &str = "00020126580014br.gov.bcb.Pix0136123e4567-e12b-12d1-a456-426655440000520400005303986540510.005802BR5913TESTE ACCOUNT6008BRASILIA62070503***630402A4";
    const STATIC_WITH_TXID: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000520400005303986540510.005802BR5913Fulano de Tal6008BRASILIA62130509PEDIDO1236304902A";
    const BACEN_OPENAPI_WITH_RECURRENCE: &str = "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/8b3da2f39a4140d1a91abd93113bd4415204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***80800014br.gov.bcb.pix2558pix.example.com/qr/v2/rec/94ed2badcbc04c15b0bb7fa35319489063047741";
    const DYNAMIC_BRASILIA: &str = "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0";

    const ALL_VECTORS: [&str; 7] = [
        BCB_MANUAL_STATIC,
        PHONE_KEY_WITH_AMOUNT,
        DYNAMIC_SAO_PAULO,
        MIXED_CASE_GUI,
        STATIC_WITH_TXID,
        BACEN_OPENAPI_WITH_RECURRENCE,
        DYNAMIC_BRASILIA,
    ];

    #[test]
    fn the_crc_check_value_of_123456789_is_29b1() {
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn every_vector_has_the_crc_its_content_gives() {
        for vector in ALL_VECTORS {
            let (covered, crc) = vector.split_at(vector.len() - 4);
            assert_eq!(
                format!("{:04X}", crc16_ccitt_false(covered.as_bytes())),
                crc,
                "{vector}"
            );
        }
    }

    #[test]
    fn every_vector_parses_and_re_encodes_unchanged() {
        for vector in ALL_VECTORS {
            let code = BrCode::parse(vector).unwrap_or_else(|e| panic!("{vector}: {e}"));
            assert_eq!(code.encode().unwrap(), vector);
        }
    }

    #[test]
    fn the_bcb_manual_example_is_built_from_its_parts() {
        let code = BrCode::static_pix(
            "123e4567-e12b-12d1-a456-426655440000",
            "Fulano de Tal",
            "BRASILIA",
        );
        assert_eq!(code.encode().unwrap(), BCB_MANUAL_STATIC);
    }

    #[test]
    fn a_static_code_with_amount_and_txid_matches_the_vector() {
        let code = BrCode::static_pix(
            "123e4567-e12b-12d1-a456-426655440000",
            "Fulano de Tal",
            "BRASILIA",
        )
        .amount_cents(1000)
        .txid("PEDIDO123");
        assert_eq!(code.encode().unwrap(), STATIC_WITH_TXID);
    }

    #[test]
    fn a_dynamic_code_matches_the_vector() {
        let code = BrCode::dynamic_pix(
            "pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca25",
            "Fulano de Tal",
            "BRASILIA",
        );
        assert_eq!(code.encode().unwrap(), DYNAMIC_BRASILIA);
    }

    #[test]
    fn parsed_fields_have_their_meaning() {
        let code = BrCode::parse(PHONE_KEY_WITH_AMOUNT).unwrap();
        assert_eq!(code.merchant_account.key.as_deref(), Some("+5511943214321"));
        assert_eq!(code.merchant_account.gui, "BR.GOV.BCB.PIX");
        assert_eq!(code.amount_cents, Some(6666));
        assert_eq!(code.merchant_name, "EMPRESA");
        assert_eq!(code.txid, None);
        assert_eq!(code.point_of_initiation, None);

        let dynamic = BrCode::parse(DYNAMIC_SAO_PAULO).unwrap();
        assert_eq!(
            dynamic.point_of_initiation,
            Some(PointOfInitiation::SingleUse)
        );
        assert_eq!(
            dynamic.merchant_account.location.as_deref(),
            Some("pix.example.com/qr/93598be0-1bd0-4997-8318-81776a1d8a99")
        );
        assert_eq!(dynamic.merchant_city, "SAO PAULO");

        let with_txid = BrCode::parse(STATIC_WITH_TXID).unwrap();
        assert_eq!(with_txid.txid.as_deref(), Some("PEDIDO123"));
        assert_eq!(with_txid.amount_cents, Some(1000));

        let recurrence = BrCode::parse(BACEN_OPENAPI_WITH_RECURRENCE).unwrap();
        assert!(recurrence.other_fields.contains_key(&80));
    }

    #[test]
    fn wrong_crcs_circulating_online_are_rejected() {
        let gist = PHONE_KEY_WITH_AMOUNT.replace("630404ED", "6304170E");
        assert_eq!(
            BrCode::parse(&gist),
            Err(BrCodeError::CrcMismatch {
                expected: 0x04ED,
                found: 0x170E
            })
        );
        let lerian = MIXED_CASE_GUI.replace("630402A4", "630445C8");
        assert!(matches!(
            BrCode::parse(&lerian),
            Err(BrCodeError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn a_code_without_crc_or_with_garbage_is_rejected() {
        assert_eq!(BrCode::parse(""), Err(BrCodeError::MissingCrc));
        assert_eq!(
            BrCode::parse(&BCB_MANUAL_STATIC[..BCB_MANUAL_STATIC.len() - 8]),
            Err(BrCodeError::MissingCrc)
        );
        assert_eq!(
            BrCode::parse("not a pix code at all"),
            Err(BrCodeError::MissingCrc)
        );
    }

    #[test]
    fn names_and_cities_are_reduced_to_short_ascii() {
        let code = BrCode::static_pix(
            "chave@example.com",
            "Padaria São João & Confeitaria Ltda",
            "São José dos Campos",
        )
        .amount_cents(1990);
        let parsed = BrCode::parse(&code.encode().unwrap()).unwrap();
        assert_eq!(parsed.merchant_name, "Padaria Sao Joao & Confei");
        assert_eq!(parsed.merchant_city, "Sao Jose dos Ca");
        assert_eq!(parsed.amount_cents, Some(1990));
    }

    #[test]
    fn invalid_values_are_refused_when_encoding() {
        let base = || BrCode::static_pix("key", "LOJA", "SAO PAULO");
        assert_eq!(
            base().txid("PEDIDO-123").encode(),
            Err(BrCodeError::InvalidTxid)
        );
        assert_eq!(
            base().txid("A".repeat(36)).encode(),
            Err(BrCodeError::InvalidTxid)
        );
        assert_eq!(
            base().amount_cents(0).encode(),
            Err(BrCodeError::InvalidAmount)
        );
        assert_eq!(
            base().amount_cents(-5).encode(),
            Err(BrCodeError::InvalidAmount)
        );
        assert_eq!(
            BrCode::static_pix("key", "Ñ", "SAO PAULO").encode(),
            Ok(BrCode::static_pix("key", "N", "SAO PAULO")
                .encode()
                .unwrap())
        );
        assert_eq!(
            BrCode::static_pix("key", "日本", "SAO PAULO").encode(),
            Err(BrCodeError::EmptyField(MERCHANT_NAME))
        );
        let mut reserved = base();
        reserved.other_fields.insert(54, "1.00".into());
        assert_eq!(reserved.encode(), Err(BrCodeError::ReservedField(54)));
    }

    #[test]
    fn amounts_without_two_decimals_are_read() {
        assert_eq!(parse_amount("10"), Ok(1000));
        assert_eq!(parse_amount("10.5"), Ok(1050));
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert!(parse_amount("10,00").is_err());
        assert!(parse_amount(".50").is_err());
        assert!(parse_amount("1.234").is_err());
    }

    fn alnum(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[A-Za-z0-9]{{1,{max}}}")).unwrap()
    }

    /// Text that survives [`ascii_text`] unchanged: no edge spaces, within the limit.
    fn display_text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!(
            "[A-Za-z0-9]([A-Za-z0-9 .&-]{{0,{}}}[A-Za-z0-9])?",
            max - 2
        ))
        .unwrap()
    }

    fn arb_code() -> impl Strategy<Value = BrCode> {
        let key = prop_oneof![
            proptest::string::string_regex(
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
            )
            .unwrap(),
            proptest::string::string_regex("\\+55[0-9]{10,11}").unwrap(),
            proptest::string::string_regex("[a-z0-9.]{1,30}@[a-z]{1,20}\\.com\\.br").unwrap(),
        ];
        let location =
            proptest::string::string_regex("[a-z0-9.-]{3,20}/[A-Za-z0-9/]{1,50}").unwrap();
        (
            prop_oneof![key.prop_map(Ok), location.prop_map(Err)],
            display_text(MAX_MERCHANT_NAME_CHARS),
            display_text(MAX_MERCHANT_CITY_CHARS),
            proptest::option::of(1..=MAX_AMOUNT_CENTS),
            proptest::option::of(alnum(25)),
        )
            .prop_map(|(account, name, city, amount, txid)| {
                let mut code = match account {
                    Ok(key) => BrCode::static_pix(key, name, city),
                    Err(location) => BrCode::dynamic_pix(location, name, city),
                };
                code.amount_cents = amount;
                code.txid = txid;
                code
            })
    }

    proptest! {
        #[test]
        fn encoding_then_parsing_gives_the_same_code(code in arb_code()) {
            let encoded = code.encode().unwrap();
            prop_assert_eq!(BrCode::parse(&encoded).unwrap(), code);
        }

        #[test]
        fn changing_any_single_character_is_detected(
            code in arb_code(),
            position in any::<proptest::sample::Index>(),
            replacement in proptest::char::range(' ', '~'),
        ) {
            let encoded = code.encode().unwrap();
            let at = position.index(encoded.len());
            let original = encoded.as_bytes()[at] as char;
            // The CRC digits are read case-insensitively, so `d` for `D` is the same code.
            prop_assume!(!replacement.eq_ignore_ascii_case(&original));
            let mut tampered = encoded.clone();
            tampered.replace_range(at..=at, &replacement.to_string());
            prop_assert!(BrCode::parse(&tampered).is_err(), "{} accepted", tampered);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(input in "\\PC{0,200}") {
            let _ = BrCode::parse(&input);
        }
    }
}
