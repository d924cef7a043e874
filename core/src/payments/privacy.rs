//! The payment side of an LGPD erasure: webhook bodies echo what we sent the provider about
//! the buyer (name, e-mail, CPF, phone). The event itself stays (id, type, outcome, and the
//! body's amounts, ids and timestamps, which reconciliation and audits read); the personal
//! fields of its body are removed.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// What identifies the person in a body, as sent to providers.
#[derive(Debug, Clone, Default)]
pub struct Identifiers {
    /// Every address the account had.
    pub emails: Vec<String>,
    pub name: Option<String>,
    /// 11 digits.
    pub cpf: Option<String>,
}

impl Identifiers {
    /// The texts whose presence marks a body, or a string in it, as this person's.
    fn needles(&self) -> Vec<String> {
        let mut needles: Vec<String> = self.emails.clone();
        if let Some(cpf) = &self.cpf {
            needles.push(cpf.clone());
            if cpf.len() == 11 {
                needles.push(format!(
                    "{}.{}.{}-{}",
                    &cpf[..3],
                    &cpf[3..6],
                    &cpf[6..9],
                    &cpf[9..]
                ));
            }
        }
        if let Some(name) = self.name.as_ref().filter(|n| n.trim().chars().count() > 3) {
            needles.push(name.trim().to_owned());
        }
        needles.retain(|n| !n.is_empty());
        needles
    }
}

/// The replacement of a removed string.
const REMOVED: &str = "[removido]";

/// Redacts the stored bodies of the webhooks about `user_id`'s payments. Returns how many
/// bodies changed. Only those: an event about another customer's payment is never touched,
/// even when some string in it happens to contain this person's name or digits.
pub async fn redact_webhook_bodies(
    conn: &mut PgConnection,
    user_id: Uuid,
    person: &Identifiers,
) -> Result<u64> {
    let needles = person.needles();
    // Events do not reference payments by key: a body names the payment by our id, its txid
    // or the provider's reference. A scan, but erasures are rare.
    let events = sqlx::query!(
        r#"
        SELECT w.id, w.body FROM webhook_events w
        WHERE EXISTS (
                SELECT 1 FROM payments p JOIN orders o ON o.id = p.order_id
                WHERE o.user_id = $1
                  AND (position(convert_to(p.id::text, 'UTF8') IN w.body) > 0
                       OR position(convert_to(p.txid, 'UTF8') IN w.body) > 0
                       OR position(convert_to(p.provider_reference, 'UTF8') IN w.body) > 0))
        FOR UPDATE OF w
        "#,
        user_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut changed = 0;
    for event in events {
        let redacted = redact_body(&event.body, &needles);
        if redacted != event.body {
            sqlx::query!(
                "UPDATE webhook_events SET body = $2 WHERE id = $1",
                event.id,
                redacted
            )
            .execute(&mut *conn)
            .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// A copy of a JSON body without personal fields (names, e-mails, tax ids, phones,
/// addresses) and with every string naming one of `needles` replaced. A body that is not
/// JSON cannot be redacted field by field and is emptied.
pub fn redact_body(body: &[u8], needles: &[String]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    redact_value(&mut value, needles);
    serde_json::to_vec(&value).unwrap_or_default()
}

fn redact_value(value: &mut Value, needles: &[String]) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !is_personal_key(key));
            map.values_mut().for_each(|v| redact_value(v, needles));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, needles)),
        Value::String(text) if needles.iter().any(|needle| names(text, needle)) => {
            *text = REMOVED.to_owned();
        }
        _ => {}
    }
}

/// Whether `text` contains `needle` as a whole (case aside): not inside a longer run of
/// letters and digits, so that a CPF's digits inside a transaction id, or a short name
/// inside a word, leave that string alone.
fn names(text: &str, needle: &str) -> bool {
    let (text, needle) = (text.to_lowercase(), needle.to_lowercase());
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&needle).any(|(at, _)| {
        !is_word(text[..at].chars().next_back())
            && !is_word(text[at + needle.len()..].chars().next())
    })
}

/// `name`, `payer_name`, `email`, `receipt_email`, `taxID`, `cpf`, `phone`, `address`…
fn is_personal_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "email", "phone", "taxid", "cpf", "cnpj", "document", "address",
    ]
    .iter()
    .any(|part| key.contains(part))
        || key.ends_with("name")
        || key == "cellphone"
        || key == "mobile"
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn personal_fields_go_and_amounts_ids_and_times_stay() {
        let body = json!({
            "event": "OPENPIX:CHARGE_COMPLETED",
            "charge": {
                "correlationID": "0193a5c8-7b1e-7c3d-9f00-000000000001",
                "value": 12990,
                "customer": {
                    "name": "Maria Silva", "email": "maria@example.com",
                    "taxID": {"taxID": "52998224725", "type": "BR:CPF"},
                    "phone": "+5511999999999",
                },
            },
            "pix": {"value": 12990, "time": "2026-12-01T10:00:00Z", "endToEndId": "E123",
                    "payer": {"name": "Maria Silva", "payer_name": "Maria Silva"}},
            "note": "pago por maria@example.com",
        });
        let needles = Identifiers {
            emails: vec!["maria@example.com".into()],
            name: Some("Maria Silva".into()),
            cpf: Some("52998224725".into()),
        }
        .needles();
        let redacted: Value =
            serde_json::from_slice(&redact_body(body.to_string().as_bytes(), &needles)).unwrap();
        let text = redacted.to_string();
        for gone in ["Maria", "maria@", "52998224725", "99999"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        assert_eq!(
            redacted["charge"]["correlationID"],
            "0193a5c8-7b1e-7c3d-9f00-000000000001"
        );
        assert_eq!(redacted["charge"]["value"], 12990);
        assert_eq!(redacted["pix"]["time"], "2026-12-01T10:00:00Z");
        assert_eq!(redacted["pix"]["value"], 12990);
        assert_eq!(redacted["pix"]["endToEndId"], "E123");
        assert_eq!(redacted["note"], REMOVED);
        // What reconciliation reads still parses.
        let parsed = crate::payments::webhooks::parse(
            crate::payments::webhooks::WebhookSource::OpenPix,
            &serde_json::to_vec(&redacted).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            parsed.event,
            crate::payments::webhooks::PaymentEvent::Paid {
                amount_cents: 12990,
                ..
            }
        ));
    }

    #[test]
    fn digits_or_letters_inside_a_longer_id_are_not_a_match() {
        let needles = Identifiers {
            emails: vec![],
            name: Some("Maria Silva".into()),
            cpf: Some("52998224725".into()),
        }
        .needles();
        let body = json!({"pix": {"endToEndId": "E52998224725202612011000",
                                  "txid": "MariaSilvaStore01", "note": "CPF 529.982.247-25"}});
        let redacted: Value =
            serde_json::from_slice(&redact_body(body.to_string().as_bytes(), &needles)).unwrap();
        assert_eq!(redacted["pix"]["endToEndId"], "E52998224725202612011000");
        assert_eq!(redacted["pix"]["txid"], "MariaSilvaStore01");
        assert_eq!(redacted["pix"]["note"], REMOVED);
    }

    #[test]
    fn a_body_that_is_not_json_is_emptied() {
        assert!(redact_body(b"name=Maria&cpf=52998224725", &[]).is_empty());
    }
}
