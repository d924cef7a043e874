//! What the board never shows: secrets inside job payloads and error messages.
//!
//! Today's payloads (`cart_core::jobs`) carry ids, ticks, recipient digests and whole e-mails
//! (`send_email`: address, subject, text and HTML bodies). None is meant to hold a secret — a
//! password-reset e-mail is queued by its id and its link derived when sent — but an e-mail
//! body could carry a signed link, a provider's error can echo a header, and `jobs enqueue`
//! takes any JSON that fits a kind. So the board redacts on two grounds, whatever the kind:
//!
//! - by name: a field named like a password, token, secret, key (but an idempotency `key`),
//!   signature, authorization, cookie or card datum has its whole value replaced;
//! - by shape, in every string: card numbers (14–19 digits passing the Luhn check), JWTs,
//!   `Bearer`/`Basic` credentials, known provider key prefixes (`sk_live_…`, `whsec_…`,
//!   `re_…`), PEM private keys, and the values of URL query parameters named like the above.
//!
//! The addresses and names in e-mails stay: operators need them to answer "did the customer
//! get the e-mail", and the CLI shows them too.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// `value` with every secret replaced by [`REDACTED`].
pub fn payload(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| {
                    let shown = if is_secret_name(name) && !field.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else {
                        payload(field)
                    };
                    (name.clone(), shown)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(payload).collect()),
        Value::String(text) => Value::String(text_value(text)),
        other => other.clone(),
    }
}

/// Whether a field with this name holds a secret. Names are compared without case,
/// underscores or dashes (`apiKey`, `api_key` and `API-KEY` are one name).
pub fn is_secret_name(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // A job's own `key` is its idempotency key (`password_reset:<id>`), not a credential.
    const PUBLIC: [&str; 3] = ["key", "idempotencykey", "tickkey"];
    const PARTS: [&str; 13] = [
        "password",
        "passwd",
        "passphrase",
        "senha",
        "secret",
        "token",
        "credential",
        "authorization",
        "cookie",
        "signature",
        "cvv",
        "cvc",
        "cardnumber",
    ];
    // Only as whole names: `pan`, but not `company`; `pin`, but not `shipping`.
    const WHOLE: [&str; 4] = ["pan", "pin", "otp", "auth"];
    if PUBLIC.contains(&name.as_str()) {
        return false;
    }
    PARTS.iter().any(|part| name.contains(part))
        || WHOLE.contains(&name.as_str())
        || name.ends_with("key")
}

/// `text` with every secret-shaped part replaced.
pub fn text_value(text: &str) -> String {
    static PEM: LazyLock<Regex> = LazyLock::new(|| {
        regex(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)")
    });
    static JWT: LazyLock<Regex> =
        LazyLock::new(|| regex(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"));
    static SCHEME: LazyLock<Regex> =
        LazyLock::new(|| regex(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{16,}"));
    static PREFIXED: LazyLock<Regex> = LazyLock::new(|| {
        regex(
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}|\bwhsec_[A-Za-z0-9+/=]{8,}|\bre_[A-Za-z0-9_]{16,}",
        )
    });
    static QUERY: LazyLock<Regex> =
        LazyLock::new(|| regex(r#"([?&;])([A-Za-z0-9_.-]+)=([^&#\s"'<>]*)"#));
    static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
        regex(
            r#"(?i)\b((?:password|passwd|senha|secret|token|api[_-]?key|private[_-]?key|client[_-]?secret)"?\s*[:=]\s*"?)([^\s",;&]+)"#,
        )
    });
    static DIGITS: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d(?:[ -]?\d){13,18}\b"));

    let text = PEM.replace_all(text, REDACTED);
    let text = JWT.replace_all(&text, REDACTED);
    let text = SCHEME.replace_all(&text, |c: &Captures| {
        format!("{}{}{REDACTED}", &c[1], &c[2])
    });
    let text = PREFIXED.replace_all(&text, REDACTED);
    let text = QUERY.replace_all(&text, |c: &Captures| {
        // In a link, even a bare `key` is a credential (`?key=AIza…`).
        let name = c[2].to_ascii_lowercase();
        if is_secret_name(&name) || matches!(name.as_str(), "key" | "sig" | "code") {
            format!("{}{}={REDACTED}", &c[1], &c[2])
        } else {
            c[0].to_owned()
        }
    });
    let text = LABELLED.replace_all(&text, |c: &Captures| format!("{}{REDACTED}", &c[1]));
    let text = DIGITS.replace_all(&text, |c: &Captures| {
        if is_card_number(&c[0]) {
            REDACTED.to_owned()
        } else {
            c[0].to_owned()
        }
    });
    text.into_owned()
}

/// 14 to 19 digits, written plainly or grouped as cards print them (fours, the last group
/// shorter; Amex 4-6-5, Diners 4-6-4), that pass the Luhn check. Longer runs (an NF-e access
/// key has 44 digits), dates and the digit groups of a UUID never match.
fn is_card_number(candidate: &str) -> bool {
    let groups: Vec<usize> = candidate.split([' ', '-']).map(str::len).collect();
    let grouped_like_a_card = match groups.split_last() {
        None => false,
        Some((_, [])) => true,
        Some((last, firsts)) => {
            (firsts.iter().all(|&g| g == 4) && (1..=4).contains(last))
                || groups == [4, 6, 5]
                || groups == [4, 6, 4]
        }
    };
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    grouped_like_a_card && (14..=19).contains(&digits.len()) && luhn(&digits)
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants, checked by the tests below.
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("redaction pattern {pattern}: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_fields_are_replaced_whatever_their_case_or_depth() {
        let shown = payload(&json!({
            "order_id": "0196a1b2-0000-7000-8000-000000000001",
            "password": "hunter2",
            "nested": [{"apiKey": "abc", "Authorization": "Bearer x", "card": {"cvv": "123", "number": "4111111111111111"}}],
            "STRIPE_SECRET_KEY": "sk_live_x",
            "reset_token": null,
            "company": "ACME",
            "key": "password_reset:0196a1b2",
            "private_key": {"pem": "x"},
        }));
        assert_eq!(
            shown,
            json!({
                "order_id": "0196a1b2-0000-7000-8000-000000000001",
                "password": REDACTED,
                "nested": [{"apiKey": REDACTED, "Authorization": REDACTED, "card": {"cvv": REDACTED, "number": REDACTED}}],
                "STRIPE_SECRET_KEY": REDACTED,
                "reset_token": null,
                "company": "ACME",
                "key": "password_reset:0196a1b2",
                "private_key": REDACTED,
            })
        );
    }

    #[test]
    fn card_numbers_in_text_are_replaced_but_not_other_numbers() {
        assert_eq!(
            text_value("paid with 4111 1111 1111 1111 today"),
            format!("paid with {REDACTED} today")
        );
        assert_eq!(
            text_value("card 5555-5555-5555-4444"),
            format!("card {REDACTED}")
        );
        assert_eq!(
            text_value("amex 3782 822463 10005"),
            format!("amex {REDACTED}")
        );
        assert_eq!(
            text_value("diners 3056 930902 5904"),
            format!("diners {REDACTED}")
        );
        assert_eq!(text_value("4111111111111111"), REDACTED);
        // Not Luhn-valid, an NF-e access key, a CNPJ, a millisecond timestamp, a date.
        for kept in [
            "4111111111111112",
            "35261211222333000181550010000000011000000019",
            "11222333000181",
            "1764072000000",
            "2026-12-08 10:00:00",
            "id 12345678-1234-1234-1234-123456789012",
            "id 30569309-0259-0400-0000-000000000000",
        ] {
            assert_eq!(text_value(kept), kept);
        }
    }

    #[test]
    fn credentials_in_text_are_replaced() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(text_value(&format!("got {jwt}")), format!("got {REDACTED}"));
        assert_eq!(
            text_value("authorization: Bearer abcdefghijkl123456"),
            format!("authorization: Bearer {REDACTED}")
        );
        assert_eq!(
            text_value("key sk_live_51HxYzAbCdEf and whsec_abcdefghij"),
            format!("key {REDACTED} and {REDACTED}")
        );
        assert_eq!(
            text_value("Resend re_123456789abcdefghij refused"),
            format!("Resend {REDACTED} refused")
        );
        assert_eq!(
            text_value(r#"{"password": "hunter22", "token":"abc"}"#),
            format!(r#"{{"password": "{REDACTED}", "token":"{REDACTED}"}}"#)
        );
        assert_eq!(
            text_value("Basic authentication failed"),
            "Basic authentication failed"
        );
        assert_eq!(
            text_value("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
            REDACTED
        );
    }

    #[test]
    fn secret_query_parameters_are_replaced_in_links() {
        assert_eq!(
            text_value("https://loja.example/reset?token=abc123&lang=pt"),
            format!("https://loja.example/reset?token={REDACTED}&lang=pt")
        );
        assert_eq!(
            text_value("<a href=\"https://x.example/d.pdf?X-Amz-Signature=ff00&amp;sig=1\">"),
            format!(
                "<a href=\"https://x.example/d.pdf?X-Amz-Signature={REDACTED}&amp;sig={REDACTED}\">"
            )
        );
        assert_eq!(
            text_value("https://loja.example/orders/1?page=2"),
            "https://loja.example/orders/1?page=2"
        );
    }

    #[test]
    fn the_payloads_of_the_stores_jobs_keep_what_operators_need() {
        let email = json!({
            "message": {
                "to": "ana@example.com",
                "subject": "Loja Cart: Recebemos o seu pedido nº CART-7F3K2Q",
                "text": "Olá Ana, acompanhe em http://localhost:3000/orders/0196a1b2",
                "html": "<a href=\"http://localhost:3000/orders/0196a1b2\">pedido</a>",
                "tag": "order_placed"
            },
            "key": "order_placed:0196a1b2"
        });
        assert_eq!(payload(&email), email);
        let invoice = json!({"order_id": "0196a1b2-0000-7000-8000-000000000001"});
        assert_eq!(payload(&invoice), invoice);
    }
}
