//! Access tokens: HS256 JWTs that `api` signs and `query` and `git` verify
//! with the shared key from `ECSTATIC_JWT_SECRET`.
//!
//! The algorithm is pinned: a token whose header names any other algorithm,
//! `none` included, is refused before its signature is looked at.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Name of the environment variable that holds the signing key.
pub const JWT_SECRET_ENV: &str = "ECSTATIC_JWT_SECRET";

/// Shortest key accepted: HS256 wants at least as many bytes as its output.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token says about its bearer (DESIGN.md, "JWT claims").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Account id, as a string.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Sites the bearer may read.
    pub sites: Vec<u64>,
    /// Whether the account may change nothing.
    pub readonly: bool,
}

impl Claims {
    /// Whether the bearer may read `site_id`.
    pub fn may_read(&self, site_id: u64) -> bool {
        self.sites.contains(&site_id)
    }
}

/// Why a token was refused. The messages are safe to show to the caller: they
/// never include the token or the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the token has expired: sign in again")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("the signing key must be at least {MIN_SECRET_BYTES} bytes long")]
    WeakSecret,
}

/// The shared HS256 key, able to sign and verify.
#[derive(Clone)]
pub struct JwtKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

impl JwtKey {
    /// Builds the key from its secret bytes.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::WeakSecret);
        }
        // Building an HMAC key from bytes only fails for an empty secret,
        // which the length check above already refused.
        let encoding = EncodingKey::from_secret(secret).map_err(|_| AuthError::WeakSecret)?;
        let decoding = DecodingKey::from_secret(secret).map_err(|_| AuthError::WeakSecret)?;
        Ok(Self { encoding, decoding })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Checks the signature, the algorithm and the expiry (no leeway) and
    /// returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Takes the token out of an `Authorization: Bearer …` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "7".into(),
            exp,
            sites: vec![390, 391],
            readonly: false,
        }
    }

    #[test]
    fn round_trips() {
        let key = JwtKey::new(SECRET).unwrap();
        let token = key.sign(&claims(now_secs() + 60));
        let back = key.verify(&token).unwrap();
        assert!(back.may_read(390) && !back.may_read(1));
    }

    #[test]
    fn refuses_expired_foreign_and_unsigned_tokens() {
        let key = JwtKey::new(SECRET).unwrap();
        assert_eq!(
            key.verify(&key.sign(&claims(now_secs() - 1))),
            Err(AuthError::Expired)
        );

        let other = JwtKey::new(b"another key, also 32 bytes long!").unwrap();
        assert_eq!(
            key.verify(&other.sign(&claims(now_secs() + 60))),
            Err(AuthError::Invalid)
        );

        // alg: none, with the same claims and an empty signature.
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64(serde_json::to_string(&claims(now_secs() + 60))
            .unwrap()
            .as_bytes());
        assert_eq!(
            key.verify(&format!("{header}.{body}.")),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn refuses_short_secrets() {
        assert_eq!(JwtKey::new(b"short").unwrap_err(), AuthError::WeakSecret);
    }

    #[test]
    fn reads_bearer_headers() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    fn b64(bytes: &[u8]) -> String {
        // URL-safe base64 without padding, enough for the test's fixed inputs.
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
