//! Users, their keys and policies, and the policy language (`policy`).
//!
//! The user directory is one small JSON document with a generation number, kept as drive
//! state (`iam`) on every drive of erasure set 0: written to a write quorum, read from a read
//! quorum (the highest generation wins; the two quorums always overlap), and rewritten to
//! drives that hold an older copy when it is read. Each process keeps the directory for
//! [`MAX_AGE`], so a change made through one gateway reaches the others within that time.
//!
//! SigV4 needs each user's secret in the clear to check signatures, so secrets cannot be
//! hashed: they are sealed with ChaCha20-Poly1305 under a key derived from the root secret
//! (changing the root secret makes the users' secrets unreadable: recreate the users).
//! Secrets are shown once, when the user is created.

pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::drive::record::now_ms;
use crate::object::Store;
pub use policy::{Decision, Policy};

/// How long a process serves its copy of the directory before reading it again.
pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Name of the directory in the drives' state.
const STATE: &str = "iam";

/// A user as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// Unique name (`[A-Za-z0-9_+=,.@-]`, 1..64).
    pub name: String,
    /// Access key id.
    pub access_key: String,
    /// The secret, sealed: base64 of nonce and ciphertext.
    pub secret_sealed: String,
    /// Disabled users' requests are refused.
    pub enabled: bool,
    /// The user's policy document, if any (without one, a user may do nothing).
    #[serde(default)]
    pub policy: Option<String>,
    /// When the user was created (ms since the epoch).
    pub created_ms: u64,
}

/// The stored directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Directory {
    /// Bumped by every change.
    pub generation: u64,
    /// The users.
    pub users: Vec<UserRecord>,
}

/// A user as the S3 layer needs it: secret unsealed, policy parsed.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Name.
    pub name: String,
    /// Secret key.
    pub secret: String,
    /// Whether requests are accepted.
    pub enabled: bool,
    /// Parsed policy.
    pub policy: Option<Policy>,
}

/// Errors of the directory.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IamError {
    /// Too few drives answered.
    #[error("the user directory is unavailable: {0}")]
    Unavailable(String),
    /// A request was invalid (bad name, bad policy, duplicate).
    #[error("{0}")]
    Invalid(String),
    /// No such user.
    #[error("no such user")]
    NoSuchUser,
}

struct Cached {
    at: Instant,
    dir: Arc<Directory>,
    by_key: Arc<HashMap<String, Principal>>,
}

/// The directory of this deployment, cached.
pub struct Iam {
    store: Arc<Store>,
    cipher: ChaCha20Poly1305,
    cached: Mutex<Option<Cached>>,
    /// The last failed read, answered again for [`MAX_AGE`] without going to the drives
    /// (every S3 request asks, and set 0 may be below its read quorum for a while).
    failed: Mutex<Option<(Instant, IamError)>>,
}

impl Iam {
    /// The directory kept on `store`'s drives, its secrets sealed under a key derived from
    /// `root_secret`.
    pub fn new(store: Arc<Store>, root_secret: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"tessera-iam-v1\n");
        h.update(root_secret.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        Self {
            store,
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            cached: Mutex::new(None),
            failed: Mutex::new(None),
        }
    }

    /// Users by access key, at most [`MAX_AGE`] old.
    pub async fn principals(&self) -> Result<Arc<HashMap<String, Principal>>, IamError> {
        let mut c = self.cached.lock().await;
        if let Some(c) = c.as_ref().filter(|c| c.at.elapsed() < MAX_AGE) {
            return Ok(c.by_key.clone());
        }
        let mut failed = self.failed.lock().await;
        if let Some((_, e)) = failed.as_ref().filter(|(at, _)| at.elapsed() < MAX_AGE) {
            return Err(e.clone());
        }
        let dir = match self.read().await {
            Ok(dir) => dir,
            Err(e) => {
                *failed = Some((Instant::now(), e.clone()));
                return Err(e);
            }
        };
        *failed = None;
        let fresh = self.cache(dir);
        let out = fresh.by_key.clone();
        *c = Some(fresh);
        Ok(out)
    }

    /// The stored users (no secrets).
    pub async fn users(&self) -> Result<Arc<Directory>, IamError> {
        self.principals().await?;
        let c = self.cached.lock().await;
        Ok(c.as_ref().map(|c| c.dir.clone()).unwrap_or_default())
    }

    fn cache(&self, dir: Directory) -> Cached {
        let mut by_key = HashMap::new();
        for u in &dir.users {
            let Some(secret) = self.unseal(&u.secret_sealed) else {
                tracing::error!(user = %u.name, "cannot unseal the user's secret: was the root secret changed?");
                continue;
            };
            let policy = u
                .policy
                .as_deref()
                .and_then(|p| Policy::parse(p, false).ok());
            by_key.insert(
                u.access_key.clone(),
                Principal {
                    name: u.name.clone(),
                    secret,
                    enabled: u.enabled,
                    policy,
                },
            );
        }
        Cached {
            at: Instant::now(),
            dir: Arc::new(dir),
            by_key: Arc::new(by_key),
        }
    }

    /// Reads the directory from a read quorum of set 0's drives; rewrites older copies on
    /// the drives that answered. A drive that does not answer (a stopped node) is abandoned
    /// after the grace that follows enough answers to meet every write quorum: every request
    /// waits for this read once the cache is [`MAX_AGE`] old, and would otherwise wait for
    /// the call's whole timeout.
    async fn read(&self) -> Result<Directory, IamError> {
        let set = &self.store.sets()[0];
        let answers = set
            .on_drives_until(set.meeting_quorum(), |d| d.get_state(STATE))
            .await;
        let answered: Vec<bool> = answers.iter().map(|a| a.is_ok()).collect();
        let ok = answered.iter().filter(|a| **a).count();
        if ok < set.read_quorum() {
            return Err(IamError::Unavailable(format!(
                "{ok} of {} drives answered, need {}",
                set.drives().len(),
                set.read_quorum()
            )));
        }
        let copies: Vec<Option<Directory>> = answers
            .into_iter()
            .map(|a| {
                a.ok()
                    .flatten()
                    .and_then(|raw| serde_json::from_slice(&raw).ok())
            })
            .collect();
        let newest = copies
            .iter()
            .flatten()
            .max_by_key(|d| d.generation)
            .cloned()
            .unwrap_or_default();
        if newest.generation > 0 {
            let stale: Vec<usize> = copies
                .iter()
                .enumerate()
                .filter(|(i, c)| {
                    answered[*i] && c.as_ref().map_or(0, |c| c.generation) < newest.generation
                })
                .map(|(i, _)| i)
                .collect();
            if !stale.is_empty() {
                if let Ok(raw) = serde_json::to_vec(&newest) {
                    for i in stale {
                        let _ = set.drives()[i].put_state(STATE, &raw).await;
                    }
                }
            }
        }
        Ok(newest)
    }

    /// Applies `change` to the newest directory and stores it on a write quorum. Changes
    /// are serialised within this process; two gateways changing users at the same moment
    /// may lose one change (the higher generation wins), which the caller sees on reading back.
    async fn update(
        &self,
        change: impl FnOnce(&mut Directory) -> Result<(), IamError>,
    ) -> Result<(), IamError> {
        let mut c = self.cached.lock().await;
        let mut dir = self.read().await?;
        change(&mut dir)?;
        dir.generation += 1;
        let raw = serde_json::to_vec(&dir).map_err(|e| IamError::Invalid(e.to_string()))?;
        let set = &self.store.sets()[0];
        // A drive that misses the write (abandoned after the grace, as in `read`) gets the
        // newer copy from the next read.
        let done = set
            .on_drives(|d| d.put_state(STATE, &raw))
            .await
            .into_iter()
            .filter(|r| r.is_ok())
            .count();
        if done < set.write_quorum() {
            return Err(IamError::Unavailable(format!(
                "stored on {done} drives, need {}",
                set.write_quorum()
            )));
        }
        *c = Some(self.cache(dir));
        Ok(())
    }

    /// Creates a user with fresh keys; returns (access key, secret key), the only time the
    /// secret is shown.
    pub async fn create_user(
        &self,
        name: &str,
        policy: Option<String>,
    ) -> Result<(String, String), IamError> {
        check_name(name)?;
        if let Some(p) = &policy {
            Policy::parse(p, false).map_err(|e| IamError::Invalid(format!("policy: {e}")))?;
        }
        // (The thread-local generator must not live across an await.)
        let (access_key, secret) = {
            let mut rng = rand::thread_rng();
            (
                format!("TU{}", Alphanumeric.sample_string(&mut rng, 18)).to_uppercase(),
                Alphanumeric.sample_string(&mut rng, 40),
            )
        };
        let sealed = self.seal(&secret);
        let ak = access_key.clone();
        self.update(move |d| {
            if d.users.iter().any(|u| u.name == name) {
                return Err(IamError::Invalid(format!("user {name} exists")));
            }
            d.users.push(UserRecord {
                name: name.to_string(),
                access_key: ak,
                secret_sealed: sealed,
                enabled: true,
                policy,
                created_ms: now_ms(),
            });
            Ok(())
        })
        .await?;
        Ok((access_key, secret))
    }

    /// Enables or disables a user.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), IamError> {
        self.update_user(name, |u| u.enabled = enabled).await
    }

    /// Changes one user's record.
    async fn update_user(
        &self,
        name: &str,
        change: impl FnOnce(&mut UserRecord),
    ) -> Result<(), IamError> {
        self.update(|d| {
            let u = d
                .users
                .iter_mut()
                .find(|u| u.name == name)
                .ok_or(IamError::NoSuchUser)?;
            change(u);
            Ok(())
        })
        .await
    }

    /// Sets (or with `None`, removes) a user's policy.
    pub async fn set_policy(&self, name: &str, policy: Option<String>) -> Result<(), IamError> {
        if let Some(p) = &policy {
            Policy::parse(p, false).map_err(|e| IamError::Invalid(format!("policy: {e}")))?;
        }
        self.update_user(name, |u| u.policy = policy).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, name: &str) -> Result<(), IamError> {
        self.update(|d| {
            let before = d.users.len();
            d.users.retain(|u| u.name != name);
            if d.users.len() == before {
                return Err(IamError::NoSuchUser);
            }
            Ok(())
        })
        .await
    }

    fn seal(&self, secret: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .expect("ChaCha20-Poly1305 encrypts any length we use");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    fn unseal(&self, sealed: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < 12 {
            return None;
        }
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(&raw[..12]), &raw[12..])
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

/// IAM's user-name rule: 1 to 64 of `A-Za-z0-9` and `_+=,.@-`.
fn check_name(name: &str) -> Result<(), IamError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::Invalid(
            "a user name is 1 to 64 of A-Z a-z 0-9 _+=,.@-".into(),
        ))
    }
}
