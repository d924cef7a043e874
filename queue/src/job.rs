//! What a job is: a payload type with a stable name, and the envelope it is stored in.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// A kind of background job: its payload, its name and its limits. Domain crates define
/// these; the worker pairs each with a [`Handler`](crate::Handler).
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The kind's name, stored in every row: it must never change once released.
    const NAME: &'static str;
    /// Attempts before the job stays failed for an operator.
    const MAX_ATTEMPTS: i32;

    /// Jobs that must never run twice for the same thing (one NF-e per order, one
    /// confirmation e-mail per payment, one tick per interval) return a key here: enqueueing
    /// a second job with the same kind and key is skipped.
    fn idempotency_key(&self) -> Option<String> {
        None
    }

    /// The business objects this job works for, stored beside the payload so that operators
    /// can find the job from an order or a payment.
    fn serves(&self) -> Serves {
        Serves::default()
    }
}

/// The order and payment a job works for (see [`Job::serves`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serves {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
}

/// Where a job comes from: the request that caused it, carried into the job's logs and the
/// provider calls it makes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span that enqueued the job, when tracing is exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Origin {
    /// The request id, when it is one we may log and send on (short and plainly printable,
    /// the rule the API applies to the ids it accepts): an envelope can be written by hand.
    pub fn usable_request_id(&self) -> Option<&str> {
        self.request_id
            .as_deref()
            .filter(|id| is_usable_request_id(id))
    }
}

/// A request id is used only when it is short and plainly printable: it goes into logs and
/// into the `X-Request-ID` header of outbound calls.
pub fn is_usable_request_id(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= 128
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// What is stored in a job row: the payload with its origin and the objects it serves.
/// Fields added later must default, so rows written by an older release still decode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope<T> {
    #[serde(flatten)]
    pub origin: Origin,
    #[serde(flatten)]
    pub serves: Serves,
    pub payload: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_written_before_origin_and_serves_existed_still_decodes() {
        let released = r#"{"request_id":"req-1","payload":{"n":1}}"#;
        let envelope: Envelope<serde_json::Value> = serde_json::from_str(released).unwrap();
        assert_eq!(envelope.origin.request_id.as_deref(), Some("req-1"));
        assert_eq!(envelope.serves, Serves::default());
        assert_eq!(envelope.payload["n"], 1);

        let bare = r#"{"request_id":null,"payload":{}}"#;
        let envelope: Envelope<serde_json::Value> = serde_json::from_str(bare).unwrap();
        assert_eq!(envelope.origin, Origin::default());
    }

    #[test]
    fn only_a_printable_request_id_is_used() {
        let origin = |id: &str| Origin {
            request_id: Some(id.to_owned()),
            traceparent: None,
        };
        assert_eq!(origin("req-1").usable_request_id(), Some("req-1"));
        assert_eq!(origin("inject\r\nheader").usable_request_id(), None);
        assert_eq!(origin("").usable_request_id(), None);
        assert_eq!(origin(&"a".repeat(129)).usable_request_id(), None);
    }

    #[test]
    fn the_envelope_adds_what_a_job_serves_beside_the_released_fields() {
        let order_id = Uuid::nil();
        let envelope = Envelope {
            origin: Origin {
                request_id: Some("req-2".into()),
                traceparent: None,
            },
            serves: Serves {
                order_id: Some(order_id),
                payment_id: None,
            },
            payload: serde_json::json!({"n": 2}),
        };
        let written = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            written,
            serde_json::json!({
                "request_id": "req-2",
                "order_id": "00000000-0000-0000-0000-000000000000",
                "payload": {"n": 2}
            })
        );
    }
}
