//! Node RPC authentication: every request carries the time, a random nonce and an HMAC-SHA256
//! over method, path and query, time and nonce, keyed by the cluster secret. Requests more
//! than `MAX_SKEW` off the receiver's clock, or whose nonce was already seen, are refused.
//! Shard bodies are not covered by the HMAC; every shard block carries its BLAKE3 hash, which
//! catches corruption, and RPC over TLS (issue 8) protects against tampering.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header with the request time (Unix seconds).
pub const TIME: &str = "x-tessera-time";
/// Header with the nonce.
pub const NONCE: &str = "x-tessera-nonce";
/// Header with the HMAC (hex).
pub const MAC: &str = "x-tessera-auth";
/// Header with the sender's topology hash; a node refuses calls from another topology.
pub const TOPOLOGY: &str = "x-tessera-topology";
/// Largest accepted clock difference, seconds.
pub const MAX_SKEW: i64 = 60;

fn mac(secret: &str, method: &str, path_and_query: &str, time: i64, nonce: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(method.as_bytes());
    m.update(b"\n");
    m.update(path_and_query.as_bytes());
    m.update(b"\n");
    m.update(time.to_string().as_bytes());
    m.update(b"\n");
    m.update(nonce.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The three headers that authenticate a request.
pub fn sign(secret: &str, method: &str, path_and_query: &str) -> [(&'static str, String); 3] {
    let t = now();
    let nonce = format!("{:032x}", rand::random::<u128>());
    let m = hex::encode(mac(secret, method, path_and_query, t, &nonce));
    [(TIME, t.to_string()), (NONCE, nonce), (MAC, m)]
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing or malformed.
    #[error("missing or malformed authentication headers")]
    Malformed,
    /// The time is too far from ours.
    #[error("request time too far from the node's clock")]
    Stale,
    /// The nonce was used before.
    #[error("replayed request")]
    Replay,
    /// The HMAC does not match.
    #[error("bad signature")]
    BadSignature,
}

/// Verifies requests and remembers recent nonces.
pub struct Verifier {
    secret: String,
    seen: Mutex<Nonces>,
}

/// The nonces seen in the last `2 * MAX_SKEW` seconds at least, in two generations of that
/// length each: `current` since `started`, `previous` the one before. A request is accepted
/// only while its time is within `MAX_SKEW` of the receiver's clock, so its nonce, stored
/// when first seen, can be replayed for at most `2 * MAX_SKEW` after that; a generation is
/// dropped whole once it is older, at O(1) per request. The nonces are kept as 64-bit keyed
/// hashes: a chance collision refuses one genuine request (which its sender retries) about
/// once in 2^64 / (nonces kept) requests. Until 2026-12-07 they were kept in one map, scanned
/// whole on every request once it held 100,000 (about a minute of a busy node's requests, all
/// still recent): a `perf record` of a cluster's degraded 1 MiB GETs had 26% of both cores'
/// samples in that scan (docs/performance.md).
struct Nonces {
    hasher: RandomState,
    current: HashSet<u64>,
    previous: HashSet<u64>,
    started: i64,
}

impl Nonces {
    /// Records `nonce`, seen at `now`; false if it was seen before.
    fn first_seen(&mut self, nonce: &str, now: i64) -> bool {
        let age = now - self.started;
        if age >= 4 * MAX_SKEW {
            self.previous.clear();
            self.current.clear();
            self.started = now;
        } else if age >= 2 * MAX_SKEW {
            self.previous = std::mem::take(&mut self.current);
            self.started = now;
        }
        let h = self.hasher.hash_one(nonce);
        !self.previous.contains(&h) && self.current.insert(h)
    }
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: String) -> Self {
        Self {
            secret,
            seen: Mutex::new(Nonces {
                hasher: RandomState::new(),
                current: HashSet::new(),
                previous: HashSet::new(),
                started: now(),
            }),
        }
    }

    /// Checks one request's headers.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<(), AuthError> {
        let t: i64 = header(TIME)
            .and_then(|v| v.parse().ok())
            .ok_or(AuthError::Malformed)?;
        let nonce = header(NONCE)
            .filter(|n| (16..=64).contains(&n.len()))
            .ok_or(AuthError::Malformed)?;
        let given = header(MAC)
            .and_then(|m| hex::decode(m).ok())
            .ok_or(AuthError::Malformed)?;
        let now = now();
        if (now - t).abs() > MAX_SKEW {
            return Err(AuthError::Stale);
        }
        let want = mac(&self.secret, method, path_and_query, t, &nonce);
        if !bool::from(want.ct_eq(&given)) {
            return Err(AuthError::BadSignature);
        }
        let mut seen = self.seen.lock().map_err(|_| AuthError::Malformed)?;
        if !seen.first_seen(&nonce, now) {
            return Err(AuthError::Replay);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(h: &'a [(&'static str, String); 3]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    }

    #[test]
    fn signed_requests_pass_once() {
        let v = Verifier::new("s3cret".into());
        let h = sign("s3cret", "POST", "/rpc/v1/drive/0/call");
        assert_eq!(
            v.verify("POST", "/rpc/v1/drive/0/call", headers(&h)),
            Ok(())
        );
        assert_eq!(
            v.verify("POST", "/rpc/v1/drive/0/call", headers(&h)),
            Err(AuthError::Replay)
        );
    }

    /// A nonce is remembered for at least `2 * MAX_SKEW` seconds, across a change of
    /// generation, and the generations before are dropped.
    #[test]
    fn nonces_are_remembered_for_the_skew_window_and_then_dropped() {
        let v = Verifier::new("s3cret".into());
        let mut seen = v.seen.lock().unwrap();
        let t0 = seen.started;
        assert!(seen.first_seen("a", t0));
        assert!(!seen.first_seen("a", t0));
        // Seen just before the generation changes: still refused until 2 * MAX_SKEW later.
        assert!(seen.first_seen("b", t0 + 2 * MAX_SKEW - 1));
        assert!(!seen.first_seen("b", t0 + 2 * MAX_SKEW));
        assert!(!seen.first_seen("a", t0 + 2 * MAX_SKEW));
        assert!(!seen.first_seen("b", t0 + 4 * MAX_SKEW - 2));
        assert!(seen.first_seen("c", t0 + 4 * MAX_SKEW - 1));
        // The next generation: the first one's nonces are gone, the second's kept.
        assert!(!seen.first_seen("c", t0 + 4 * MAX_SKEW));
        assert!(seen.first_seen("a", t0 + 4 * MAX_SKEW));
        assert_eq!(seen.current.len() + seen.previous.len(), 2);
        // Long idle: both generations dropped.
        assert!(seen.first_seen("c", t0 + 9 * MAX_SKEW));
        assert!(seen.previous.is_empty());
    }

    #[test]
    fn wrong_secret_path_or_time_fail() {
        let v = Verifier::new("s3cret".into());
        let h = sign("other", "POST", "/p");
        assert_eq!(
            v.verify("POST", "/p", headers(&h)),
            Err(AuthError::BadSignature)
        );
        let h = sign("s3cret", "POST", "/p");
        assert_eq!(
            v.verify("POST", "/q", headers(&h)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify("GET", "/p", headers(&h)),
            Err(AuthError::BadSignature)
        );
        let old = now() - 600;
        let nonce = "0123456789abcdef0123456789abcdef".to_string();
        let m = hex::encode(mac("s3cret", "POST", "/p", old, &nonce));
        let stale = [(TIME, old.to_string()), (NONCE, nonce), (MAC, m)];
        assert_eq!(
            v.verify("POST", "/p", headers(&stale)),
            Err(AuthError::Stale)
        );
        assert_eq!(v.verify("POST", "/p", |_| None), Err(AuthError::Malformed));
    }
}
