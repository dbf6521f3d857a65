//! Credentials of the admin API: SigV4 with the root keys, the admin token from the config,
//! or a session token that `POST /admin/v1/login` gives for the root keys (the dashboard).
//!
//! Session tokens are stateless, `v1.<expiry ms>.<HMAC-SHA256 of the expiry under the root
//! secret>`, so every gateway of a cluster (sharing the root keys) accepts them, and a
//! restart does not sign anyone out. Changing the root secret revokes them all.

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::credentials::Credentials;
use crate::drive::record::now_ms;
use crate::s3::sigv4::{self, AuthError, PayloadMode};

/// How long a dashboard session lasts.
const SESSION_MS: u64 = 12 * 3600 * 1000;

/// Why a request was refused: 401 (no credentials) or 403 (wrong ones), and a reason.
pub type Refusal = (StatusCode, String);

/// What the admin listener accepts.
pub struct AdminAuth {
    /// Region SigV4 requests are signed for.
    pub region: String,
    /// Root keys.
    pub root: Credentials,
    /// Admin bearer token from the config, if any.
    pub token: Option<String>,
}

impl AdminAuth {
    /// Checks a request's credentials; answers how it signed in (`root`, `admin-token` or
    /// `session`). `body` is the request body, whose hash a SigV4 signature covers.
    pub fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<&'static str, Refusal> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(unauthorized("credentials required"));
        };
        let value = value.to_str().unwrap_or_default().trim();
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return self.check_token(token.trim());
        }
        if !value.starts_with("AWS4-HMAC-SHA256") {
            return Err(forbidden(
                "unsupported authorization: use SigV4 or a bearer token",
            ));
        }
        let root = &self.root;
        let secret_for = |ak: &str| (ak == root.access_key).then(|| root.secret_key.clone());
        let now = time::OffsetDateTime::now_utc();
        match sigv4::verify(method, uri, headers, &self.region, now, &secret_for) {
            Ok(v) => match v.payload {
                PayloadMode::Sha256(want) if Sha256::digest(body)[..] == want[..] => Ok("root"),
                PayloadMode::Sha256(_) => Err(forbidden("the body does not match its signed hash")),
                PayloadMode::Unsigned if body.is_empty() => Ok("root"),
                _ => Err(forbidden("sign the body's SHA-256 in x-amz-content-sha256")),
            },
            Err(AuthError::MissingAuth) => Err(unauthorized("credentials required")),
            Err(e) => Err(forbidden(&e.to_string())),
        }
    }

    fn check_token(&self, token: &str) -> Result<&'static str, Refusal> {
        if let Some(t) = &self.token {
            if bool::from(t.as_bytes().ct_eq(token.as_bytes())) {
                return Ok("admin-token");
            }
        }
        let mut parts = token.splitn(3, '.');
        if let (Some("v1"), Some(expiry), Some(mac)) = (parts.next(), parts.next(), parts.next()) {
            let want = self.session_mac(expiry);
            if bool::from(want.as_bytes().ct_eq(mac.as_bytes())) {
                return match expiry.parse::<u64>() {
                    Ok(e) if e > now_ms() => Ok("session"),
                    _ => Err(forbidden("the session has expired: sign in again")),
                };
            }
        }
        Err(forbidden("the token is not valid"))
    }

    /// A session token for the root keys, and when it expires; `None` for wrong keys.
    pub fn login(&self, access_key: &str, secret_key: &str) -> Option<(String, u64)> {
        let ok = bool::from(access_key.as_bytes().ct_eq(self.root.access_key.as_bytes()))
            & bool::from(secret_key.as_bytes().ct_eq(self.root.secret_key.as_bytes()));
        if !ok {
            return None;
        }
        let expires = now_ms() + SESSION_MS;
        let expiry = expires.to_string();
        Some((
            format!("v1.{expiry}.{}", self.session_mac(&expiry)),
            expires,
        ))
    }

    fn session_mac(&self, expiry: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.root.secret_key.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"tessera-admin-session\n");
        mac.update(self.root.access_key.as_bytes());
        mac.update(b"\n");
        mac.update(expiry.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

fn unauthorized(why: &str) -> Refusal {
    (StatusCode::UNAUTHORIZED, why.to_string())
}

fn forbidden(why: &str) -> Refusal {
    (StatusCode::FORBIDDEN, why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth {
            region: "us-east-1".into(),
            root: Credentials {
                access_key: "AK".into(),
                secret_key: "SK".into(),
            },
            token: Some("config-token".into()),
        }
    }

    fn check(a: &AdminAuth, authorization: Option<&str>) -> Result<(), StatusCode> {
        let mut h = HeaderMap::new();
        if let Some(v) = authorization {
            h.insert("authorization", v.parse().unwrap());
        }
        let uri: Uri = "/admin/v1/cluster".parse().unwrap();
        a.check(&Method::GET, &uri, &h, b"")
            .map(|_| ())
            .map_err(|e| e.0)
    }

    #[test]
    fn tokens_sessions_and_refusals() {
        let a = auth();
        assert_eq!(check(&a, None), Err(StatusCode::UNAUTHORIZED));
        assert_eq!(check(&a, Some("Bearer config-token")), Ok(()));
        assert_eq!(check(&a, Some("Bearer nope")), Err(StatusCode::FORBIDDEN));
        assert_eq!(
            check(&a, Some("Basic QUs6U0s=")),
            Err(StatusCode::FORBIDDEN)
        );
        assert!(a.login("AK", "wrong").is_none());
        let (token, expires) = a.login("AK", "SK").unwrap();
        assert!(expires > now_ms());
        assert_eq!(check(&a, Some(&format!("Bearer {token}"))), Ok(()));
        // A tampered expiry breaks the MAC; an expired one is refused.
        let forged = token.replacen("v1.", "v1.9", 1);
        assert_eq!(
            check(&a, Some(&format!("Bearer {forged}"))),
            Err(StatusCode::FORBIDDEN)
        );
        let old = format!("v1.1.{}", a.session_mac("1"));
        assert_eq!(
            check(&a, Some(&format!("Bearer {old}"))),
            Err(StatusCode::FORBIDDEN)
        );
        // Another root secret: the session is no longer valid.
        let other = AdminAuth {
            root: Credentials {
                access_key: "AK".into(),
                secret_key: "SK2".into(),
            },
            ..auth()
        };
        assert_eq!(
            check(&other, Some(&format!("Bearer {token}"))),
            Err(StatusCode::FORBIDDEN)
        );
    }
}
