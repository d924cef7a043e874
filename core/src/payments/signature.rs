//! Webhook signature verification, always over the raw body bytes and before any parsing.
//!
//! - ProPay (and the sandbox, which acts like it): `X-Propay-Signature`, lowercase hex
//!   HMAC-SHA256 of the body with `PROPAY_TO_GO_SECRET`, optionally prefixed `sha256=`.
//! - Stripe: `Stripe-Signature: t=…,v1=…[,v1=…]`, HMAC-SHA256 of `"{t}.{body}"` keyed with the
//!   whole `whsec_…` string; any `v1` may match; `t` must not be older than the tolerance.
//! - Woovi/OpenPix: `x-webhook-signature`, base64 RSA PKCS#1 v1.5 SHA-256 with Woovi's public
//!   key (the same for every account), or the deprecated `X-OpenPix-Signature`, base64
//!   HMAC-SHA1 with the webhook's secret, accepted only when that secret is configured.
//!
//! MACs are compared in constant time (`Mac::verify_slice`).

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rsa::{
    RsaPublicKey,
    pkcs1::DecodeRsaPublicKey,
    pkcs1v15::{Signature, VerifyingKey},
    pkcs8::DecodePublicKey,
    sha2::Sha256 as RsaSha256,
    signature::Verifier,
};
use secrecy::{ExposeSecret, SecretString};

type HmacSha256 = Hmac<sha2::Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

/// Header names, lowercase as `http::HeaderMap` stores them.
pub const PROPAY_SIGNATURE_HEADER: &str = "x-propay-signature";
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";
pub const WOOVI_SIGNATURE_HEADER: &str = "x-webhook-signature";
pub const OPENPIX_HMAC_SIGNATURE_HEADER: &str = "x-openpix-signature";

/// Stripe's own default (`DEFAULT_TOLERANCE` in its libraries).
pub const STRIPE_DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Woovi's published webhook public key (RSA-1024), as served by
/// `GET /api/v1/webhook/public-keys`.
pub const WOOVI_PUBLIC_KEY_PEM: &str = include_str!("woovi-public-key.pem");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature header malformed: {0}")]
    Malformed(&'static str),
    #[error("signature does not match the body")]
    Mismatch,
    #[error("signature timestamp is outside the tolerance")]
    Stale,
    #[error("no secret is configured for this signature scheme")]
    NotConfigured,
}

impl From<SignatureError> for crate::Error {
    /// Every failure is a plain 401: the sender learns nothing about why.
    fn from(err: SignatureError) -> Self {
        crate::Error::Unauthorized(format!("invalid webhook signature: {err}"))
    }
}

/// Verifies `X-Propay-Signature` (also what the sandbox sends).
pub fn verify_propay(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.map(str::trim).ok_or(SignatureError::Missing)?;
    let hex_signature = header.strip_prefix("sha256=").unwrap_or(header);
    let signature = hex::decode(hex_signature).map_err(|_| SignatureError::Malformed("not hex"))?;
    if signature.len() != 32 {
        return Err(SignatureError::Malformed("not a SHA-256 MAC"));
    }
    let mut mac = hmac_sha256(secret);
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Propay-Signature` value for `body`: what ProPay sends, and what the sandbox's
/// simulated webhooks and tests send.
pub fn sign_propay(secret: &[u8], body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSignatureHeader {
    pub timestamp: i64,
    /// Every well-formed `v1` entry; during a secret rotation Stripe sends one per secret.
    pub v1: Vec<[u8; 32]>,
}

impl StripeSignatureHeader {
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for item in header.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            match key.trim() {
                "t" => {
                    if timestamp.is_some() {
                        return Err(SignatureError::Malformed("more than one timestamp"));
                    }
                    let t = value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed("timestamp is not a number"))?;
                    timestamp = Some(t);
                }
                "v1" => {
                    // An entry that is not a SHA-256 hex digest can never match; skip it.
                    let mut digest = [0u8; 32];
                    if hex::decode_to_slice(value.trim(), &mut digest).is_ok() {
                        v1.push(digest);
                    }
                }
                // `v0` (test-mode legacy) and future schemes are ignored, as Stripe's
                // libraries do.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
        if v1.is_empty() {
            return Err(SignatureError::Malformed("no v1 signature"));
        }
        Ok(Self { timestamp, v1 })
    }
}

/// Verifies `Stripe-Signature`. `now` is the current Unix time (a parameter so tests can pin
/// it); an event signed more than `tolerance` ago is rejected as a replay.
pub fn verify_stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    let parsed = StripeSignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(parsed.timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = parsed
        .v1
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if parsed.timestamp < now.saturating_sub(tolerance) {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// A `Stripe-Signature` value for `body` at `timestamp`, as Stripe would send it.
pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Everything the three webhook routes verify with, built by
/// [`webhook_verifiers_from_env`](super::settings::webhook_verifiers_from_env).
#[derive(Clone)]
pub struct WebhookVerifiers {
    /// `PROPAY_TO_GO_SECRET`; without it the payment webhook accepts nothing.
    pub propay_secret: Option<SecretString>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`); without it the Stripe webhook accepts nothing.
    pub stripe_secret: Option<SecretString>,
    pub stripe_tolerance: Duration,
    pub woovi: WooviVerifier,
}

impl std::fmt::Debug for WebhookVerifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifiers")
            .field(
                "propay_secret",
                &self.propay_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "stripe_secret",
                &self.stripe_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("stripe_tolerance", &self.stripe_tolerance)
            .field("woovi", &self.woovi)
            .finish()
    }
}

impl WebhookVerifiers {
    /// `POST /api/webhooks/payment` (ProPay and the sandbox): the `X-Propay-Signature` value.
    pub fn verify_propay(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let secret = self
            .propay_secret
            .as_ref()
            .ok_or(SignatureError::NotConfigured)?;
        verify_propay(secret.expose_secret().as_bytes(), header, body)
    }

    /// `POST /api/webhooks/stripe`: the `Stripe-Signature` value, against the current time.
    pub fn verify_stripe(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let secret = self
            .stripe_secret
            .as_ref()
            .ok_or(SignatureError::NotConfigured)?;
        verify_stripe(
            secret.expose_secret(),
            header,
            body,
            self.stripe_tolerance,
            chrono::Utc::now().timestamp(),
        )
    }

    /// `POST /api/webhooks/openpix`: the `x-webhook-signature` and `X-OpenPix-Signature` values.
    pub fn verify_openpix(
        &self,
        rsa_header: Option<&str>,
        hmac_header: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.woovi.verify(rsa_header, hmac_header, body)
    }
}

/// Verifies Woovi/OpenPix webhooks: the RSA signature, or the deprecated HMAC when a secret is
/// configured. A request passes when any scheme it carries verifies.
#[derive(Clone)]
pub struct WooviVerifier {
    public_key: VerifyingKey<RsaSha256>,
    hmac_secret: Option<SecretString>,
}

impl std::fmt::Debug for WooviVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WooviVerifier")
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not an RSA public key in PEM (SPKI or PKCS#1), plain or base64-encoded")]
pub struct InvalidPublicKey;

impl WooviVerifier {
    /// `public_key` is a PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), or the base64 of
    /// one, as Woovi's documentation publishes it.
    pub fn new(
        public_key: &str,
        hmac_secret: Option<SecretString>,
    ) -> Result<Self, InvalidPublicKey> {
        let key = parse_public_key(public_key).ok_or(InvalidPublicKey)?;
        Ok(Self {
            public_key: VerifyingKey::new(key),
            hmac_secret,
        })
    }

    /// With Woovi's published key.
    pub fn published(hmac_secret: Option<SecretString>) -> Result<Self, InvalidPublicKey> {
        Self::new(WOOVI_PUBLIC_KEY_PEM, hmac_secret)
    }

    /// `rsa_header` is `x-webhook-signature`, `hmac_header` is `X-OpenPix-Signature`.
    pub fn verify(
        &self,
        rsa_header: Option<&str>,
        hmac_header: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let mut failure = SignatureError::Missing;
        if let Some(header) = rsa_header {
            match self.verify_rsa(header, body) {
                Ok(()) => return Ok(()),
                Err(err) => failure = err,
            }
        }
        if let Some(header) = hmac_header {
            match &self.hmac_secret {
                Some(secret) => match verify_openpix_hmac(secret.expose_secret(), header, body) {
                    Ok(()) => return Ok(()),
                    Err(err) if rsa_header.is_none() => failure = err,
                    // Report the RSA failure: it is the scheme Woovi recommends.
                    Err(_) => {}
                },
                None if rsa_header.is_none() => failure = SignatureError::NotConfigured,
                None => {}
            }
        }
        Err(failure)
    }

    fn verify_rsa(&self, header: &str, body: &[u8]) -> Result<(), SignatureError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .map_err(|_| SignatureError::Malformed("not base64"))?;
        let signature = Signature::try_from(bytes.as_slice())
            .map_err(|_| SignatureError::Malformed("not an RSA signature"))?;
        self.public_key
            .verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// The deprecated `X-OpenPix-Signature`: base64 HMAC-SHA1 of the body.
pub fn verify_openpix_hmac(secret: &str, header: &str, body: &[u8]) -> Result<(), SignatureError> {
    let signature = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|_| SignatureError::Malformed("not base64"))?;
    let mut mac = <HmacSha1 as KeyInit>::new_from_slice(secret.as_bytes())
        .map_err(|_| SignatureError::NotConfigured)?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// An `X-OpenPix-Signature` value for `body` (base64 HMAC-SHA1), as OpenPix would send it.
pub fn sign_openpix_hmac(secret: &str, body: &[u8]) -> String {
    let mut mac = <HmacSha1 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn parse_public_key(text: &str) -> Option<RsaPublicKey> {
    let text = text.trim();
    let pem = if text.contains("-----BEGIN") {
        text.to_owned()
    } else {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.split_whitespace().collect::<String>())
            .ok()?;
        String::from_utf8(decoded).ok()?
    };
    RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_T: i64 = 1_700_000_000;
    const STRIPE_BODY: &[u8] =
        br#"{"id":"evt_test","object":"event","type":"payment_intent.succeeded"}"#;
    const STRIPE_V1: &str = "f457ee3d89f52f9f02936e1cd1173dd5dfa132cdc78ec55ea964a53098c5a1c0";

    const WOOVI_BODY: &[u8] = include_bytes!("testdata/woovi-webhook-body.txt");
    const WOOVI_SIGNATURE: &str = include_str!("testdata/woovi-x-webhook-signature.txt");

    const OPENPIX_HMAC_KEY: &str = "hmac-secret-key";
    const OPENPIX_HMAC_BODY: &[u8] =
        br#"{"data_criacao":"2021-08-10T20:32:14.429Z","evento":"teste_webhook"}"#;
    const OPENPIX_HMAC_SIGNATURE: &str = "jgR2XF0PKDiAwHP1s+TryvxMySQ=";

    fn stripe_header() -> String {
        format!("t={STRIPE_T},v1={STRIPE_V1}")
    }

    #[test]
    fn the_stripe_vector_verifies() {
        let header = stripe_header();
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T + 10
            ),
            Ok(())
        );
        assert_eq!(sign_stripe(STRIPE_SECRET, STRIPE_T, STRIPE_BODY), header);
    }

    #[test]
    fn any_v1_of_a_stripe_header_may_match() {
        let header = format!("t={STRIPE_T},v1={},v0=abc,v1={STRIPE_V1}", "0".repeat(64));
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T
            ),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_stripe_body_or_another_secret_is_rejected() {
        let header = stripe_header();
        let tampered =
            br#"{"id":"evt_test","object":"event","type":"payment_intent.payment_failed"}"#;
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                tampered,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(
                "whsec_other",
                Some(&header),
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too.
        let shifted = format!("t={},v1={STRIPE_V1}", STRIPE_T + 1);
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&shifted),
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_stripe_timestamp_is_rejected() {
        let header = stripe_header();
        let verify = |now| {
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                now,
            )
        };
        assert_eq!(verify(STRIPE_T + 300), Ok(()));
        assert_eq!(verify(STRIPE_T + 301), Err(SignatureError::Stale));
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                STRIPE_BODY,
                Duration::from_secs(10),
                STRIPE_T + 11
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn malformed_stripe_headers_are_rejected() {
        let verify = |header: Option<&str>| {
            verify_stripe(
                STRIPE_SECRET,
                header,
                STRIPE_BODY,
                STRIPE_DEFAULT_TOLERANCE,
                STRIPE_T,
            )
        };
        assert_eq!(verify(None), Err(SignatureError::Missing));
        assert!(matches!(
            verify(Some(&format!("v1={STRIPE_V1}"))),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some("t=1700000000")),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some("t=soon,v1=00")),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some(&format!("t=1,t=2,v1={STRIPE_V1}"))),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn the_woovi_rsa_vector_verifies_and_a_tampered_body_does_not() {
        let verifier = WooviVerifier::published(None).unwrap();
        assert_eq!(
            verifier.verify(Some(WOOVI_SIGNATURE), None, WOOVI_BODY),
            Ok(())
        );

        let mut tampered = WOOVI_BODY.to_vec();
        let at = tampered.iter().position(|b| *b == b'1').unwrap();
        tampered[at] = b'2';
        assert_eq!(
            verifier.verify(Some(WOOVI_SIGNATURE), None, &tampered),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify(Some("not base64!"), None, WOOVI_BODY),
            Err(SignatureError::Malformed("not base64"))
        );
        assert_eq!(
            verifier.verify(None, None, WOOVI_BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn the_woovi_key_may_be_given_as_base64_of_its_pem() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(WOOVI_PUBLIC_KEY_PEM);
        let verifier = WooviVerifier::new(&encoded, None).unwrap();
        assert_eq!(
            verifier.verify(Some(WOOVI_SIGNATURE), None, WOOVI_BODY),
            Ok(())
        );
        assert!(WooviVerifier::new("not a key", None).is_err());
    }

    #[test]
    fn the_openpix_hmac_vector_verifies_only_with_its_secret_configured() {
        assert_eq!(
            verify_openpix_hmac(OPENPIX_HMAC_KEY, OPENPIX_HMAC_SIGNATURE, OPENPIX_HMAC_BODY),
            Ok(())
        );
        let with_secret =
            WooviVerifier::published(Some(SecretString::from(OPENPIX_HMAC_KEY))).unwrap();
        assert_eq!(
            with_secret.verify(None, Some(OPENPIX_HMAC_SIGNATURE), OPENPIX_HMAC_BODY),
            Ok(())
        );
        let without_secret = WooviVerifier::published(None).unwrap();
        assert_eq!(
            without_secret.verify(None, Some(OPENPIX_HMAC_SIGNATURE), OPENPIX_HMAC_BODY),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn a_tampered_openpix_hmac_body_is_rejected() {
        let tampered = br#"{"data_criacao":"2021-08-10T20:32:14.429Z","evento":"teste_webhooK"}"#;
        let verifier =
            WooviVerifier::published(Some(SecretString::from(OPENPIX_HMAC_KEY))).unwrap();
        assert_eq!(
            verifier.verify(None, Some(OPENPIX_HMAC_SIGNATURE), tampered),
            Err(SignatureError::Mismatch)
        );
        // The body *with* an `event` field is not what the published example signed.
        let with_event = br#"{"data_criacao":"2021-08-10T20:32:14.429Z","evento":"teste_webhook","event":"teste_webhook"}"#;
        assert_eq!(
            verifier.verify(None, Some(OPENPIX_HMAC_SIGNATURE), with_event),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_valid_woovi_rsa_signature_passes_even_beside_a_bad_hmac() {
        let verifier = WooviVerifier::published(Some(SecretString::from("other"))).unwrap();
        assert_eq!(
            verifier.verify(Some(WOOVI_SIGNATURE), Some("AAAA"), WOOVI_BODY),
            Ok(())
        );
    }

    #[test]
    fn propay_signatures_verify_with_or_without_the_prefix() {
        let secret = b"propay-to-go-secret";
        let body = br#"{"event_id":"evt_1","event":"pix.paid","txid":"abc","amount_cents":1000,"paid_at":"2026-11-25T12:00:00Z"}"#;
        let signature = sign_propay(secret, body);
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| !b.is_ascii_uppercase()));
        assert_eq!(verify_propay(secret, Some(&signature), body), Ok(()));
        assert_eq!(
            verify_propay(secret, Some(&format!("sha256={signature}")), body),
            Ok(())
        );
        let mut tampered = body.to_vec();
        let near_end = tampered.len() - 3;
        tampered[near_end] = b'1';
        assert_eq!(
            verify_propay(secret, Some(&signature), &tampered),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_propay(b"another secret", Some(&signature), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_propay(secret, None, body),
            Err(SignatureError::Missing)
        );
        assert!(matches!(
            verify_propay(secret, Some("sha256=zz"), body),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_propay(secret, Some(&signature[..40]), body),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn a_known_hmac_sha256_vector_matches_sign_propay() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign_propay(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest! {
        #[test]
        fn parsing_any_stripe_header_never_panics(header in "\\PC{0,300}") {
            let _ = StripeSignatureHeader::parse(&header);
            let _ = verify_stripe(STRIPE_SECRET, Some(&header), STRIPE_BODY, STRIPE_DEFAULT_TOLERANCE, STRIPE_T);
        }

        #[test]
        fn parsing_stripe_like_headers_never_panics(
            parts in proptest::collection::vec("(t|v1|v0|x| t)=[-0-9a-f ]{0,70}", 0..6)
        ) {
            let header = parts.join(",");
            let _ = StripeSignatureHeader::parse(&header);
            let _ = verify_stripe(STRIPE_SECRET, Some(&header), STRIPE_BODY, STRIPE_DEFAULT_TOLERANCE, i64::MIN);
        }

        #[test]
        fn checking_any_propay_or_woovi_header_never_panics(header in "\\PC{0,400}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify_propay(b"secret", Some(&header), &body);
            let verifier = WooviVerifier::published(Some(SecretString::from("k"))).unwrap();
            prop_assert!(verifier.verify(Some(&header), Some(&header), &body).is_err());
        }
    }

    /// Round trips: whatever the secret and body, what we sign verifies, and any change to
    /// the body, the signature or the clock's side of the tolerance is refused.
    mod proptests {
        use super::*;

        fn flip(bytes: &[u8], index: usize, bit: u8) -> Vec<u8> {
            let mut changed = bytes.to_vec();
            let i = index % changed.len();
            changed[i] ^= 1 << (bit % 8);
            changed
        }

        proptest! {
            #[test]
            fn a_propay_signature_verifies_with_or_without_its_prefix(
                secret in proptest::collection::vec(any::<u8>(), 1..64),
                body in proptest::collection::vec(any::<u8>(), 0..512),
            ) {
                let signature = sign_propay(&secret, &body);
                prop_assert!(verify_propay(&secret, Some(&signature), &body).is_ok());
                let prefixed = format!(" sha256={signature} ");
                prop_assert!(verify_propay(&secret, Some(&prefixed), &body).is_ok());
                prop_assert!(verify_propay(&secret, Some(&signature.to_uppercase()), &body).is_ok());
            }

            #[test]
            fn a_propay_signature_over_other_bytes_or_with_another_secret_is_refused(
                secret in proptest::collection::vec(any::<u8>(), 1..64),
                body in proptest::collection::vec(any::<u8>(), 1..512),
                index in any::<usize>(),
                bit in any::<u8>(),
            ) {
                let signature = sign_propay(&secret, &body);
                prop_assert_eq!(
                    verify_propay(&secret, Some(&signature), &flip(&body, index, bit)),
                    Err(SignatureError::Mismatch)
                );
                prop_assert_eq!(
                    verify_propay(&flip(&secret, index, bit), Some(&signature), &body),
                    Err(SignatureError::Mismatch)
                );
                let raw = hex::decode(&signature).unwrap();
                let tampered = hex::encode(flip(&raw, index, bit));
                prop_assert_eq!(
                    verify_propay(&secret, Some(&tampered), &body),
                    Err(SignatureError::Mismatch)
                );
            }

            #[test]
            fn a_stripe_signature_verifies_within_the_tolerance_and_is_stale_after(
                secret in "[ -~]{1,40}",
                body in proptest::collection::vec(any::<u8>(), 0..512),
                t in 0i64..4_000_000_000,
                age in 0i64..=300,
                late in 301i64..1_000_000,
            ) {
                let header = sign_stripe(&secret, t, &body);
                let tolerance = STRIPE_DEFAULT_TOLERANCE;
                prop_assert!(verify_stripe(&secret, Some(&header), &body, tolerance, t + age).is_ok());
                prop_assert_eq!(
                    verify_stripe(&secret, Some(&header), &body, tolerance, t + late),
                    Err(SignatureError::Stale)
                );
            }

            #[test]
            fn a_stripe_header_verifies_in_any_order_among_rotated_and_unknown_entries(
                body in proptest::collection::vec(any::<u8>(), 0..256),
                others in proptest::collection::vec("[0-9a-f]{64}", 0..4),
                position in any::<usize>(),
                legacy in proptest::option::of("[0-9a-f]{64}"),
            ) {
                let good = sign_stripe(STRIPE_SECRET, STRIPE_T, &body);
                let v1 = good.split_once(",v1=").unwrap().1.to_owned();
                let mut items: Vec<String> = others.iter().map(|o| format!("v1={o}")).collect();
                items.insert(position % (items.len() + 1), format!("v1={v1}"));
                if let Some(legacy) = legacy {
                    items.push(format!("v0={legacy}"));
                }
                items.insert(position % (items.len() + 1), format!("t={STRIPE_T}"));
                let header = items.join(",");
                prop_assert!(
                    verify_stripe(STRIPE_SECRET, Some(&header), &body, STRIPE_DEFAULT_TOLERANCE, STRIPE_T).is_ok(),
                    "{}", header
                );
            }

            #[test]
            fn a_stripe_signature_over_other_bytes_or_another_time_is_refused(
                body in proptest::collection::vec(any::<u8>(), 1..256),
                index in any::<usize>(),
                bit in any::<u8>(),
                shift in 1i64..1000,
            ) {
                let header = sign_stripe(STRIPE_SECRET, STRIPE_T, &body);
                prop_assert_eq!(
                    verify_stripe(STRIPE_SECRET, Some(&header), &flip(&body, index, bit), STRIPE_DEFAULT_TOLERANCE, STRIPE_T),
                    Err(SignatureError::Mismatch)
                );
                // The timestamp is signed: moving it (to dodge the tolerance) breaks the MAC.
                let v1 = header.split_once(",v1=").unwrap().1;
                let moved = format!("t={},v1={v1}", STRIPE_T + shift);
                prop_assert_eq!(
                    verify_stripe(STRIPE_SECRET, Some(&moved), &body, STRIPE_DEFAULT_TOLERANCE, STRIPE_T + shift),
                    Err(SignatureError::Mismatch)
                );
            }
        }
    }
}
