//! HS256 JSON Web Tokens. Only HS256 is accepted: `alg: none` and every other algorithm,
//! an expired token, another key's signature or a token without a session (`sid`) are
//! rejected.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use crate::{
    config::{self, ConfigError},
    users::password_reset::ResetKey,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    /// The session (a row of `sessions`) the token belongs to: what logout ends.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    reset_key: ResetKey,
    pub ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

pub const MIN_SECRET_BYTES: usize = 32;

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            reset_key: ResetKey::derive(secret),
            ttl,
        })
    }

    /// The key password-reset links are derived with (from the same secret).
    pub fn reset_key(&self) -> &ResetKey {
        &self.reset_key
    }

    /// `JWT_SECRET` (required, ≥ 32 bytes) and `JWT_TTL` (default 24h).
    pub fn from_env() -> Result<Self, ConfigError> {
        let secret = config::required_var("JWT_SECRET")?;
        let ttl = config::var_duration("JWT_TTL", Duration::from_secs(24 * 3600))?;
        Self::new(secret.as_bytes(), ttl)
    }

    /// Issues a token for the session `sid` and returns it with its expiry. The session row
    /// is the caller's to write (`users::sessions::open`): a token alone is refused.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        sid: Uuid,
    ) -> Result<(String, DateTime<Utc>), crate::Error> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.ttl)
            .map_err(|e| crate::Error::Internal(anyhow::anyhow!("JWT_TTL out of range: {e}")))?;
        let exp = now + ttl;
        let claims = Claims {
            sub: user_id,
            role,
            sid,
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| crate::Error::Internal(anyhow::anyhow!("signing JWT: {e}")))?;
        Ok((token, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, crate::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| crate::Error::Unauthorized(format!("invalid token: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7u8; 32], Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let id = Uuid::now_v7();
        let sid = Uuid::now_v7();
        let (token, exp) = keys().issue(id, Role::Admin, sid).unwrap();
        let claims = keys().verify(&token).unwrap();
        assert_eq!(claims.sub, id);
        assert_eq!(claims.sid, sid);
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp, exp.timestamp());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short", Duration::from_secs(60)).is_err());
    }

    #[test]
    fn another_secret_is_rejected() {
        let other = JwtKeys::new(&[8u8; 32], Duration::from_secs(60)).unwrap();
        let (token, _) = other
            .issue(Uuid::now_v7(), Role::User, Uuid::now_v7())
            .unwrap();
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn alg_none_is_rejected() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(
            format!(
                r#"{{"sub":"{}","role":"admin","iat":1,"exp":{}}}"#,
                Uuid::now_v7(),
                Utc::now().timestamp() + 600
            )
            .as_bytes(),
        );
        assert!(keys().verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            role: Role::User,
            sid: Uuid::now_v7(),
            iat: now - 120,
            exp: now - 60,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn a_token_without_a_session_is_rejected() {
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": Uuid::now_v7(), "role": "user", "iat": now, "exp": now + 600,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn hs512_with_the_same_secret_is_rejected() {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            role: Role::Admin,
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + 600,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(keys().verify(&token).is_err());
    }
}
