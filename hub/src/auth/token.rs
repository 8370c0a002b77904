//! JWT verification for connection and subscription tokens, with Centrifugo's claims.

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The token was valid once: the SDK fetches a fresh one (error 109).
    #[error("token expired")]
    Expired,
    /// Forged, malformed or for someone else: the client must not retry (disconnect 3500).
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Centrifugo's rule: `expire_at` overrides `exp`, and `expire_at: 0` means never.
fn effective_expiry(exp: Option<i64>, expire_at: Option<i64>) -> Option<i64> {
    match expire_at {
        Some(0) => None,
        Some(t) => Some(t),
        None => exp,
    }
}

/// Unix seconds now: what `exp`, `iat` and expiries are compared with.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Claims of a connection token.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectClaims {
    #[serde(default)]
    pub sub: String,
    pub exp: Option<i64>,
    /// When the token was issued: a token issued before its user's tokens were invalidated
    /// (`invalidate_user_tokens`) is refused as expired.
    pub iat: Option<i64>,
    /// Overrides `exp` for the connection's lifetime; 0 means never expire.
    pub expire_at: Option<i64>,
    pub info: Option<Box<RawValue>>,
    /// Server-side subscriptions.
    #[serde(default)]
    pub channels: Vec<String>,
}

impl ConnectClaims {
    /// When the connection expires (unix seconds), if ever.
    pub fn expires_at(&self) -> Option<i64> {
        effective_expiry(self.exp, self.expire_at)
    }
}

/// Claims of a subscription token.
#[derive(Debug, Default, Deserialize)]
pub struct SubscribeClaims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub channel: String,
    pub exp: Option<i64>,
    pub expire_at: Option<i64>,
    pub info: Option<Box<RawValue>>,
}

impl SubscribeClaims {
    pub fn expires_at(&self) -> Option<i64> {
        effective_expiry(self.exp, self.expire_at)
    }
}

/// The keys and checks for one kind of token.
#[derive(Clone)]
pub struct TokenVerifier {
    hmac: Option<Arc<DecodingKey>>,
    rsa: Option<Arc<DecodingKey>>,
    ecdsa: Option<Arc<DecodingKey>>,
    audience: String,
    issuer: String,
    /// Seconds of clock skew forgiven on `exp` and `nbf`.
    leeway: u64,
}

impl TokenVerifier {
    /// Builds a verifier; PEM keys were checked by config validation, so errors here are bugs
    /// in validation and are reported rather than panicking.
    pub fn new(
        hmac: &str,
        rsa_pem: &str,
        ecdsa_pem: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<Self, TokenError> {
        let rsa = if rsa_pem.is_empty() {
            None
        } else {
            Some(Arc::new(
                DecodingKey::from_rsa_pem(rsa_pem.as_bytes())
                    .map_err(|e| TokenError::Invalid(e.to_string()))?,
            ))
        };
        let ecdsa = if ecdsa_pem.is_empty() {
            None
        } else {
            Some(Arc::new(
                DecodingKey::from_ec_pem(ecdsa_pem.as_bytes())
                    .map_err(|e| TokenError::Invalid(e.to_string()))?,
            ))
        };
        let hmac = (!hmac.is_empty()).then(|| Arc::new(DecodingKey::from_secret(hmac.as_bytes())));
        Ok(TokenVerifier {
            hmac,
            rsa,
            ecdsa,
            audience: audience.to_owned(),
            issuer: issuer.to_owned(),
            leeway: 0,
        })
    }

    /// Forgives this much clock skew between the token's issuer and this node.
    pub fn with_leeway(mut self, leeway: std::time::Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.hmac.as_ref(),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => self.rsa.as_ref(),
            Algorithm::ES256 | Algorithm::ES384 => self.ecdsa.as_ref(),
            other => {
                return Err(TokenError::Invalid(format!(
                    "unsupported algorithm {other:?}"
                )))
            }
        }
        .ok_or_else(|| TokenError::Invalid(format!("no key configured for {:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        // Centrifugo tokens may omit exp (never expires); aud and iss are checked only when set.
        validation.required_spec_claims = HashSet::new();
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        // A token that is not valid yet is refused like a forged one: the SDK must not loop
        // on refreshing it (Centrifugo does the same).
        validation.validate_nbf = true;
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&self.audience]);
            validation.required_spec_claims.insert("aud".into());
        }
        if !self.issuer.is_empty() {
            validation.set_issuer(&[&self.issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet (nbf)".into()),
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn hs(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn hmac_tokens_verify_with_all_claims() {
        let v = TokenVerifier::new("secret", "", "", "", "").unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let t = hs(
                alg,
                "secret",
                json!({"sub": "42", "exp": now() + 60, "info": {"name": "ann"}, "channels": ["news"]}),
            );
            let c: ConnectClaims = v.verify(&t).unwrap();
            assert_eq!(c.sub, "42");
            assert_eq!(c.channels, vec!["news"]);
            assert_eq!(c.info.unwrap().get(), r#"{"name":"ann"}"#);
        }
        let c: ConnectClaims = v
            .verify(&hs(Algorithm::HS256, "secret", json!({"sub": "1"})))
            .unwrap();
        assert_eq!(c.expires_at(), None, "a token without exp never expires");
    }

    #[test]
    fn expired_and_forged_tokens_are_told_apart() {
        let v = TokenVerifier::new("secret", "", "", "", "").unwrap();
        let expired = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "exp": now() - 10}),
        );
        assert_eq!(
            v.verify::<ConnectClaims>(&expired).unwrap_err(),
            TokenError::Expired
        );
        let forged = hs(Algorithm::HS256, "not-the-secret", json!({"sub": "1"}));
        assert!(matches!(
            v.verify::<ConnectClaims>(&forged),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            v.verify::<ConnectClaims>("garbage"),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn audience_and_issuer_are_enforced_when_configured() {
        let v = TokenVerifier::new("secret", "", "", "chorus", "auth.example").unwrap();
        let good = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "aud": "chorus", "iss": "auth.example"}),
        );
        assert!(v.verify::<ConnectClaims>(&good).is_ok());
        let wrong_aud = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "aud": "other", "iss": "auth.example"}),
        );
        assert!(v.verify::<ConnectClaims>(&wrong_aud).is_err());
        let no_iss = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "aud": "chorus"}),
        );
        assert!(v.verify::<ConnectClaims>(&no_iss).is_err());
    }

    #[test]
    fn an_algorithm_without_a_key_is_refused() {
        let v = TokenVerifier::new("", "", "", "", "").unwrap();
        let t = hs(Algorithm::HS256, "secret", json!({"sub": "1"}));
        assert!(
            matches!(v.verify::<ConnectClaims>(&t), Err(TokenError::Invalid(m)) if m.contains("no key"))
        );
    }

    // Keys made for these tests alone (openssl genpkey); nothing else trusts them.
    const RSA_PRIVATE: &str = include_str!("testdata/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("testdata/rsa-public.pem");
    const EC_PRIVATE: &str = include_str!("testdata/ec-private.pem");
    const EC_PUBLIC: &str = include_str!("testdata/ec-public.pem");

    fn signed(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, key).unwrap()
    }

    #[test]
    fn not_before_is_honoured_with_a_small_leeway_for_skew() {
        let v = TokenVerifier::new("secret", "", "", "", "")
            .unwrap()
            .with_leeway(std::time::Duration::from_secs(5));
        let early = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "nbf": now() + 60}),
        );
        assert!(
            matches!(v.verify::<ConnectClaims>(&early), Err(TokenError::Invalid(m)) if m.contains("nbf")),
            "a token from the future is refused"
        );
        let skewed = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "nbf": now() + 2}),
        );
        assert!(
            v.verify::<ConnectClaims>(&skewed).is_ok(),
            "2 s of skew is forgiven"
        );
        let just_expired = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "exp": now() - 2}),
        );
        assert!(
            v.verify::<ConnectClaims>(&just_expired).is_ok(),
            "2 s of skew on exp too"
        );
        let expired = hs(
            Algorithm::HS256,
            "secret",
            json!({"sub": "1", "exp": now() - 30}),
        );
        assert_eq!(
            v.verify::<ConnectClaims>(&expired).unwrap_err(),
            TokenError::Expired
        );
        let strict = TokenVerifier::new("secret", "", "", "", "").unwrap();
        assert!(
            strict.verify::<ConnectClaims>(&skewed).is_err(),
            "no leeway: refused"
        );
    }

    #[test]
    fn rsa_and_ecdsa_tokens_verify_with_their_public_keys() {
        let v = TokenVerifier::new("", RSA_PUBLIC, EC_PUBLIC, "", "").unwrap();
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        for (alg, key) in [(Algorithm::RS256, &rsa), (Algorithm::ES256, &ec)] {
            let t = signed(alg, key, json!({"sub": "7", "exp": now() + 60}));
            let c: ConnectClaims = v.verify(&t).unwrap();
            assert_eq!(c.sub, "7", "{alg:?}");
            // One byte of the signature changed: refused.
            let mut forged = t.clone().into_bytes();
            let last = forged.len() - 2;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            assert!(
                matches!(
                    v.verify::<ConnectClaims>(&forged),
                    Err(TokenError::Invalid(_))
                ),
                "{alg:?}"
            );
        }
        // An RS256 header over an ES256 signature: the algorithms are not interchangeable.
        let es = signed(Algorithm::ES256, &ec, json!({"sub": "7"}));
        let (_, rest) = es.split_once('.').unwrap();
        let header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"RS256","typ":"JWT"}"#,
        );
        assert!(v
            .verify::<ConnectClaims>(&format!("{header}.{rest}"))
            .is_err());
    }

    #[test]
    fn alg_none_and_key_confusion_are_refused() {
        let v = TokenVerifier::new("", RSA_PUBLIC, "", "", "").unwrap();
        let b64 =
            |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let claims = b64(br#"{"sub":"1"}"#);
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"NONE"}"#,
        ] {
            let unsigned = format!("{}.{claims}.", b64(header.as_bytes()));
            assert!(
                matches!(
                    v.verify::<ConnectClaims>(&unsigned),
                    Err(TokenError::Invalid(_))
                ),
                "{header}"
            );
        }
        // The classic confusion: an HS256 token whose "secret" is the RSA public key.
        let confused = hs(Algorithm::HS256, RSA_PUBLIC, json!({"sub": "1"}));
        assert!(
            matches!(v.verify::<ConnectClaims>(&confused), Err(TokenError::Invalid(m)) if m.contains("no key")),
            "an HS token where only an RS key is configured"
        );
        // Both configured: the HS token still needs the HMAC secret, not the public key.
        let both = TokenVerifier::new("the-real-secret", RSA_PUBLIC, "", "", "").unwrap();
        assert!(matches!(
            both.verify::<ConnectClaims>(&confused),
            Err(TokenError::Invalid(_))
        ));
    }
}
