//! IAM-style JSON policies: parsed once, then evaluated for each request. Used for the
//! policies attached to users and for bucket policies.
//!
//! What is understood: `Version`, `Statement` (one or a list) with `Sid`, `Effect`
//! (`Allow`/`Deny`), `Principal` (bucket policies: `"*"`, `{"AWS": "*"}` or a list of user
//! ARNs `arn:aws:iam:::user/NAME` or names), `Action`/`NotAction` (`s3:*`, `s3:Get*`, ...),
//! `Resource` (`arn:aws:s3:::bucket`, `arn:aws:s3:::bucket/prefix/*`, wildcards `*` and `?`),
//! and `Condition` with `IpAddress`/`NotIpAddress` on `aws:SourceIp` and
//! `StringEquals`/`StringNotEquals`/`StringLike`/`StringNotLike`/`Bool` on the other keys
//! of [`KEYS`] and on `s3:ExistingObjectTag/<tag>` and `s3:RequestObjectTag/<tag>`, each
//! also with the `IfExists` suffix, and `Null` on any of them. Anything else is refused when
//! the policy is stored (`MalformedPolicy`), never silently ignored.
//!
//! Evaluation follows AWS: an explicit `Deny` wins; otherwise an `Allow` that matches allows;
//! otherwise the request is denied. A condition on a key the request does not carry is false,
//! but for the negated operators (`StringNotEquals`, `StringNotLike`, `NotIpAddress`), for
//! which it is true, and for `...IfExists` (true) and `Null` (which tests just that).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// The largest policy document accepted (AWS: 20 KiB for bucket policies).
pub const MAX_POLICY: usize = 20 << 10;

/// A parsed policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug)]
struct Statement {
    allow: bool,
    /// `None`: no `Principal` element (a user's policy).
    principals: Option<Vec<String>>,
    actions: Vec<String>,
    not_actions: bool,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug)]
struct Condition {
    op: Op,
    /// `...IfExists`: true when the request does not carry the key.
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    IpAddress,
    NotIpAddress,
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    Bool,
    /// `true`: the key is absent; `false`: it is present.
    Null,
}

/// The condition keys understood, as AWS spells them (a policy may spell them in any case).
pub const KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:username",
    "aws:Referer",
    "aws:UserAgent",
    "s3:prefix",
    "s3:delimiter",
    "s3:versionid",
    "s3:x-amz-acl",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
];

/// Condition keys named by a prefix and a tag key: the object's tags, and the tags a
/// request sets (`x-amz-tagging`).
pub const EXISTING_TAG: &str = "s3:ExistingObjectTag/";
pub const REQUEST_TAG: &str = "s3:RequestObjectTag/";

/// Who asks, for what, from where.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The user's name; `None` for an anonymous request.
    pub user: Option<&'a str>,
    /// The action, e.g. `s3:GetObject`.
    pub action: &'a str,
    /// The resource ARN, e.g. `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Condition keys the request carries (`aws:SourceIp`, `s3:prefix`, ...), as spelt in
    /// [`KEYS`].
    pub context: &'a BTreeMap<String, String>,
}

/// What a set of policies says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement denies it.
    Deny,
    /// Nothing says anything: denied.
    NotAllowed,
}

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn bad(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    statement: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RawStatement {
    #[serde(default)]
    sid: Option<String>,
    effect: String,
    #[serde(default)]
    principal: Option<Value>,
    #[serde(default)]
    action: Option<Value>,
    #[serde(default)]
    not_action: Option<Value>,
    resource: Value,
    #[serde(default)]
    condition: Option<BTreeMap<String, BTreeMap<String, Value>>>,
}

/// One string or a list of strings.
fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(bad(format!("{what} must hold strings"))),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        _ => Err(bad(format!("{what} must be a string or a list of strings"))),
    }
}

impl Policy {
    /// Parses a policy document; `bucket_policy` requires a `Principal` in every statement
    /// (and a user's policy must have none).
    pub fn parse(text: &str, bucket_policy: bool) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY {
            return Err(bad("the policy is larger than 20 KiB"));
        }
        let raw: RawPolicy =
            serde_json::from_str(text).map_err(|e| bad(format!("not a policy document: {e}")))?;
        let _ = raw.id;
        if let Some(v) = &raw.version {
            if v != "2012-10-17" && v != "2008-10-17" {
                return Err(bad(format!("unknown policy Version {v:?}")));
            }
        }
        let list = match raw.statement {
            Value::Array(a) => a,
            v @ Value::Object(_) => vec![v],
            _ => return Err(bad("Statement must be an object or a list")),
        };
        if list.is_empty() {
            return Err(bad("the policy has no statement"));
        }
        let mut statements = Vec::new();
        for v in list {
            let s: RawStatement =
                serde_json::from_value(v).map_err(|e| bad(format!("bad statement: {e}")))?;
            let _ = s.sid;
            let allow = match s.effect.as_str() {
                "Allow" => true,
                "Deny" => false,
                e => return Err(bad(format!("Effect must be Allow or Deny, not {e:?}"))),
            };
            let principals = match (&s.principal, bucket_policy) {
                (None, false) => None,
                (Some(_), false) => return Err(bad("a user's policy has no Principal element")),
                (None, true) => return Err(bad("a bucket policy statement needs a Principal")),
                (Some(Value::String(s)), true) if s == "*" => Some(vec!["*".to_string()]),
                (Some(Value::Object(o)), true) if o.len() == 1 && o.contains_key("AWS") => {
                    Some(strings(&o["AWS"], "Principal.AWS")?)
                }
                (Some(_), true) => return Err(bad("Principal must be \"*\" or {\"AWS\": [...]}")),
            };
            let (actions, not_actions) = match (&s.action, &s.not_action) {
                (Some(a), None) => (strings(a, "Action")?, false),
                (None, Some(a)) => (strings(a, "NotAction")?, true),
                _ => return Err(bad("a statement needs exactly one of Action and NotAction")),
            };
            for a in &actions {
                if !(a == "*" || a.to_ascii_lowercase().starts_with("s3:")) {
                    return Err(bad(format!("unsupported action {a:?}: only s3:* actions")));
                }
            }
            let resources = strings(&s.resource, "Resource")?;
            for r in &resources {
                if !(r == "*" || r.starts_with("arn:aws:s3:::")) {
                    return Err(bad(format!(
                        "unsupported resource {r:?}: use arn:aws:s3:::..."
                    )));
                }
            }
            let mut conditions = Vec::new();
            for (op, keys) in s.condition.unwrap_or_default() {
                let (name, if_exists) = match op.strip_suffix("IfExists") {
                    Some(base) if base != "Null" => (base, true),
                    _ => (op.as_str(), false),
                };
                let op = match name {
                    "Null" => Op::Null,
                    "IpAddress" => Op::IpAddress,
                    "NotIpAddress" => Op::NotIpAddress,
                    "StringEquals" => Op::StringEquals,
                    "StringNotEquals" => Op::StringNotEquals,
                    "StringLike" => Op::StringLike,
                    "StringNotLike" => Op::StringNotLike,
                    "Bool" => Op::Bool,
                    o => return Err(bad(format!("unsupported condition operator {o:?}"))),
                };
                for (key, values) in keys {
                    let tag = [EXISTING_TAG, REQUEST_TAG].into_iter().find_map(|p| {
                        let head = key.get(..p.len())?;
                        let tag = &key[p.len()..];
                        (head.eq_ignore_ascii_case(p) && !tag.is_empty())
                            .then(|| format!("{p}{tag}"))
                    });
                    let key = match tag {
                        Some(k) => k,
                        None => match KEYS.iter().find(|k| k.eq_ignore_ascii_case(&key)) {
                            Some(k) => k.to_string(),
                            None => return Err(bad(format!("unsupported condition key {key:?}"))),
                        },
                    };
                    let key = key.as_str();
                    let values = strings(&values, key)?;
                    let ip_op = matches!(op, Op::IpAddress | Op::NotIpAddress);
                    if op == Op::Null {
                        if let Some(v) = values.iter().find(|v| {
                            !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false")
                        }) {
                            return Err(bad(format!("Null takes true or false, not {v:?}")));
                        }
                    } else if ip_op != (key == "aws:SourceIp") {
                        return Err(bad(format!("{key} does not go with this operator")));
                    }
                    if ip_op {
                        for v in &values {
                            parse_cidr(v).ok_or_else(|| bad(format!("bad address {v:?}")))?;
                        }
                    }
                    conditions.push(Condition {
                        op,
                        if_exists,
                        key: key.to_string(),
                        values,
                    });
                }
            }
            statements.push(Statement {
                allow,
                principals,
                actions,
                not_actions,
                resources,
                conditions,
            });
        }
        Ok(Self { statements })
    }

    /// Whether any statement of this policy names `user` (or everyone) as its principal.
    fn applies(principals: &Option<Vec<String>>, user: Option<&str>) -> bool {
        let Some(list) = principals else {
            return true;
        };
        list.iter().any(|p| {
            p == "*"
                || user.is_some_and(|u| p == u || p.strip_prefix("arn:aws:iam:::user/") == Some(u))
        })
    }
}

impl Policy {
    /// Whether a condition of this policy names a key that starts with `prefix` (so that
    /// the request's context needs it).
    pub fn mentions(&self, prefix: &str) -> bool {
        self.statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key.starts_with(prefix))
    }

    /// Whether this bucket policy is public in S3's sense (GetBucketPolicyStatus): some
    /// statement allows everyone (`Principal` `*`) without confining them to fixed source
    /// addresses. Of the condition keys understood here only `aws:SourceIp` (with
    /// `IpAddress`, and no network wider than /8 for IPv4 or /32 for IPv6, as S3 counts
    /// fixed values) narrows the principal; the others hold for anyone.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.allow
                && s.principals
                    .as_ref()
                    .is_some_and(|list| list.iter().any(|p| p == "*"))
                && !s.conditions.iter().any(|c| {
                    c.op == Op::IpAddress
                        && !c.if_exists
                        && c.values.iter().all(|v| {
                            parse_cidr(v)
                                .is_some_and(|(net, len)| len >= if net.is_ipv4() { 8 } else { 32 })
                        })
                })
        })
    }
}

/// Evaluates `policies` together for `req`.
pub fn evaluate(policies: &[&Policy], req: &Request<'_>) -> Decision {
    let mut allowed = false;
    for p in policies {
        for s in &p.statements {
            if !Policy::applies(&s.principals, req.user) {
                continue;
            }
            let action = s.actions.iter().any(|a| wildcard(a, req.action, true));
            if action == s.not_actions {
                continue;
            }
            if !s.resources.iter().any(|r| wildcard(r, req.resource, false)) {
                continue;
            }
            if !s.conditions.iter().all(|c| c.holds(req)) {
                continue;
            }
            if !s.allow {
                return Decision::Deny;
            }
            allowed = true;
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::NotAllowed
    }
}

impl Condition {
    fn holds(&self, req: &Request<'_>) -> bool {
        let Some(value) = req.context.get(self.key.as_str()) else {
            return self.if_exists
                || matches!(
                    self.op,
                    Op::NotIpAddress | Op::StringNotEquals | Op::StringNotLike
                )
                || (self.op == Op::Null
                    && self.values.iter().any(|v| v.eq_ignore_ascii_case("true")));
        };
        match self.op {
            Op::Null => self.values.iter().any(|v| v.eq_ignore_ascii_case("false")),
            Op::IpAddress | Op::NotIpAddress => {
                let Ok(ip) = value.parse::<IpAddr>() else {
                    return false;
                };
                let inside = self
                    .values
                    .iter()
                    .filter_map(|v| parse_cidr(v))
                    .any(|net| in_net(ip, net));
                inside == (self.op == Op::IpAddress)
            }
            Op::StringEquals => self.values.iter().any(|v| v == value),
            Op::StringNotEquals => !self.values.iter().any(|v| v == value),
            Op::StringLike => self.values.iter().any(|v| wildcard(v, value, false)),
            Op::StringNotLike => !self.values.iter().any(|v| wildcard(v, value, false)),
            Op::Bool => self.values.iter().any(|v| v.eq_ignore_ascii_case(value)),
        }
    }
}

/// `*` matches any run of characters, `?` any one; `ci`: ignoring ASCII case.
fn wildcard(pattern: &str, text: &str, ci: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ci {
        (
            pattern.to_ascii_lowercase().chars().collect(),
            text.to_ascii_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative matching with backtracking to the last star: linear in practice, never
    // exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn in_net(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&'static str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn decide(
        p: &Policy,
        user: Option<&str>,
        action: &str,
        resource: &str,
        c: &[(&'static str, &str)],
    ) -> Decision {
        let context = ctx(c);
        evaluate(
            &[p],
            &Request {
                user,
                action,
                resource,
                context: &context,
            },
        )
    }

    #[test]
    fn allow_deny_and_wildcards() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":["s3:GetObject","s3:Put*"],"Resource":"arn:aws:s3:::backup/*"},
                {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::backup",
                 "Condition":{"StringLike":{"s3:prefix":["home/*",""]}}},
                {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::backup/secret/*"}]}"#,
            false,
        )
        .unwrap();
        let u = Some("alice");
        for (action, resource, want) in [
            ("s3:GetObject", "backup/a", Decision::Allow),
            ("s3:PutObject", "backup/a/b", Decision::Allow),
            ("s3:DeleteObject", "backup/a", Decision::NotAllowed),
            ("s3:GetObject", "other/a", Decision::NotAllowed),
            ("s3:GetObject", "backup/secret/x", Decision::Deny),
            // Action names ignore case; resources do not.
            ("S3:getobject", "backup/a", Decision::Allow),
            ("s3:GetObject", "BACKUP/a", Decision::NotAllowed),
        ] {
            let arn = format!("arn:aws:s3:::{resource}");
            assert_eq!(
                decide(&p, u, action, &arn, &[]),
                want,
                "{action} {resource}"
            );
        }
        // The prefix condition: present and matching, present and not, absent.
        let list = |prefix: Option<&str>| match prefix {
            Some(pr) => decide(
                &p,
                u,
                "s3:ListBucket",
                "arn:aws:s3:::backup",
                &[("s3:prefix", pr)],
            ),
            None => decide(&p, u, "s3:ListBucket", "arn:aws:s3:::backup", &[]),
        };
        assert_eq!(list(Some("home/x/")), Decision::Allow);
        assert_eq!(list(Some("")), Decision::Allow);
        assert_eq!(list(Some("etc/")), Decision::NotAllowed);
        assert_eq!(list(None), Decision::NotAllowed);
    }

    #[test]
    fn bucket_policies_principals_and_source_ip() {
        let p = Policy::parse(
            r#"{"Statement":[
                {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/public/*"},
                {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/bob"]},"Action":"s3:*","Resource":["arn:aws:s3:::site","arn:aws:s3:::site/*"],
                 "Condition":{"IpAddress":{"aws:SourceIp":"10.1.0.0/16"}}},
                {"Effect":"Deny","Principal":{"AWS":"*"},"Action":"s3:DeleteObject","Resource":"arn:aws:s3:::site/*",
                 "Condition":{"NotIpAddress":{"aws:SourceIp":["127.0.0.1/32","::1"]}}}]}"#,
            true,
        )
        .unwrap();
        let ip = |a: &'static str| [("aws:SourceIp", a)];
        let (inside, outside, mapped) = (ip("10.1.2.3"), ip("10.2.0.1"), ip("::ffff:127.0.0.1"));
        for (user, action, resource, from, want) in [
            (
                None,
                "s3:GetObject",
                "site/public/i.html",
                &outside,
                Decision::Allow,
            ),
            (
                None,
                "s3:GetObject",
                "site/private",
                &outside,
                Decision::NotAllowed,
            ),
            (
                Some("bob"),
                "s3:PutObject",
                "site/x",
                &inside,
                Decision::Allow,
            ),
            (
                Some("bob"),
                "s3:PutObject",
                "site/x",
                &outside,
                Decision::NotAllowed,
            ),
            (
                Some("eve"),
                "s3:PutObject",
                "site/x",
                &inside,
                Decision::NotAllowed,
            ),
            (
                Some("bob"),
                "s3:DeleteObject",
                "site/x",
                &inside,
                Decision::Deny,
            ),
            // IPv4-mapped loopback is inside 127.0.0.1/32: the deny does not apply, and
            // nothing allows bob from there.
            (
                Some("bob"),
                "s3:DeleteObject",
                "site/x",
                &mapped,
                Decision::NotAllowed,
            ),
        ] {
            let arn = format!("arn:aws:s3:::{resource}");
            assert_eq!(
                decide(&p, user, action, &arn, from),
                want,
                "{user:?} {action} {resource} {from:?}"
            );
        }
    }

    #[test]
    fn malformed_policies_are_refused() {
        for (text, bucket) in [
            ("{}", false),
            (r#"{"Statement":[]}"#, false),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"s3:*","Resource":"*"}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:sqs:::q"}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
                true,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","NotResource":"*"}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"x"}}}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Null":{"s3:prefix":"maybe"}}}}"#,
                false,
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NullIfExists":{"s3:prefix":"true"}}}}"#,
                false,
            ),
            ("not json", false),
        ] {
            assert!(Policy::parse(text, bucket).is_err(), "accepted: {text}");
        }
    }

    #[test]
    fn public_policies_are_told_from_confined_ones() {
        let p = |statement: &str| {
            Policy::parse(&format!(r#"{{"Statement":[{statement}]}}"#), true).unwrap()
        };
        let get = r#""Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#;
        for (statement, public) in [
            (
                format!(r#"{{"Effect":"Allow","Principal":"*",{get}}}"#),
                true,
            ),
            (
                format!(r#"{{"Effect":"Allow","Principal":{{"AWS":"*"}},{get}}}"#),
                true,
            ),
            (
                format!(r#"{{"Effect":"Deny","Principal":"*",{get}}}"#),
                false,
            ),
            (
                format!(
                    r#"{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam:::user/bob"]}},{get}}}"#
                ),
                false,
            ),
            (
                format!(
                    r#"{{"Effect":"Allow","Principal":"*",{get},"Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/32"}}}}}}"#
                ),
                false,
            ),
            (
                format!(
                    r#"{{"Effect":"Allow","Principal":"*",{get},"Condition":{{"IpAddress":{{"aws:SourceIp":"0.0.0.0/0"}}}}}}"#
                ),
                true,
            ),
            (
                format!(
                    r#"{{"Effect":"Allow","Principal":"*",{get},"Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#
                ),
                true,
            ),
            (
                format!(
                    r#"{{"Effect":"Allow","Principal":"*",{get},"Condition":{{"Bool":{{"aws:SecureTransport":"true"}}}}}}"#
                ),
                true,
            ),
        ] {
            assert_eq!(p(&statement).is_public(), public, "{statement}");
        }
    }

    #[test]
    fn tag_and_header_keys() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{
                "StringEquals":{"S3:existingObjectTag/Class":"open","aws:referer":"https://a.example/"}}}}"#,
            false,
        )
        .unwrap();
        assert!(p.mentions(EXISTING_TAG));
        let get = |c: &[(&'static str, &str)]| {
            decide(&p, Some("u"), "s3:GetObject", "arn:aws:s3:::b/k", c)
        };
        // The prefix is matched in any case and spelt as AWS does; the tag key keeps its own.
        let (tag, referer) = ("s3:ExistingObjectTag/Class", "aws:Referer");
        assert_eq!(
            get(&[(tag, "open"), (referer, "https://a.example/")]),
            Decision::Allow
        );
        assert_eq!(
            get(&[(tag, "shut"), (referer, "https://a.example/")]),
            Decision::NotAllowed
        );
        assert_eq!(
            get(&[(referer, "https://a.example/")]),
            Decision::NotAllowed
        );
        assert_eq!(
            get(&[
                ("s3:ExistingObjectTag/class", "open"),
                (referer, "https://a.example/")
            ]),
            Decision::NotAllowed
        );
        for bad in [
            "s3:ExistingObjectTag/",
            "s3:ExistingObjectTags/x",
            "aws:CurrentTime",
        ] {
            let text = format!(
                r#"{{"Statement":{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{{"StringEquals":{{"{bad}":"x"}}}}}}}}"#
            );
            assert!(Policy::parse(&text, false).is_err(), "{bad}");
        }
    }

    /// A key the request does not carry: false for the plain operators, true for the
    /// negated ones and for `...IfExists`, and what `Null` tests (the AWS IAM condition
    /// operators reference).
    #[test]
    fn conditions_on_a_key_the_request_does_not_carry() {
        let deny_outside_home = Policy::parse(
            r#"{"Statement":[
                {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"},
                {"Effect":"Deny","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
                 "Condition":{"StringNotLike":{"s3:prefix":"home/*"}}}]}"#,
            false,
        )
        .unwrap();
        let list = |p: &Policy, c: &[(&'static str, &str)]| {
            decide(p, Some("u"), "s3:ListBucket", "arn:aws:s3:::b", c)
        };
        assert_eq!(
            list(&deny_outside_home, &[("s3:prefix", "home/u/")]),
            Decision::Allow
        );
        assert_eq!(
            list(&deny_outside_home, &[("s3:prefix", "etc/")]),
            Decision::Deny
        );
        // No prefix at all lists everything: the negated condition holds, and denies.
        assert_eq!(list(&deny_outside_home, &[]), Decision::Deny);

        let p = |cond: &str| {
            Policy::parse(
                &format!(
                    r#"{{"Statement":{{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{cond}}}}}"#
                ),
                false,
            )
            .unwrap()
        };
        for (cond, absent, home, etc) in [
            (
                r#"{"StringLike":{"s3:prefix":"home/*"}}"#,
                false,
                true,
                false,
            ),
            (
                r#"{"StringLikeIfExists":{"s3:prefix":"home/*"}}"#,
                true,
                true,
                false,
            ),
            (
                r#"{"StringEquals":{"s3:prefix":"etc/"}}"#,
                false,
                false,
                true,
            ),
            (
                r#"{"StringNotEquals":{"s3:prefix":"etc/"}}"#,
                true,
                true,
                false,
            ),
            (
                r#"{"StringNotEqualsIfExists":{"s3:prefix":"etc/"}}"#,
                true,
                true,
                false,
            ),
            (r#"{"Null":{"s3:prefix":"true"}}"#, true, false, false),
            (r#"{"Null":{"s3:prefix":"false"}}"#, false, true, true),
        ] {
            let policy = p(cond);
            let want = |b: bool| {
                if b {
                    Decision::Allow
                } else {
                    Decision::NotAllowed
                }
            };
            assert_eq!(list(&policy, &[]), want(absent), "{cond}, no prefix");
            assert_eq!(
                list(&policy, &[("s3:prefix", "home/a")]),
                want(home),
                "{cond}, home/a"
            );
            assert_eq!(
                list(&policy, &[("s3:prefix", "etc/")]),
                want(etc),
                "{cond}, etc/"
            );
        }
        // NotIpAddress: a request without a source address (none is ever without one over
        // TCP) is outside every network.
        let q = p(r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#);
        assert_eq!(list(&q, &[]), Decision::Allow);
        assert_eq!(
            list(&q, &[("aws:SourceIp", "10.1.1.1")]),
            Decision::NotAllowed
        );
    }

    #[test]
    fn wildcards_do_not_blow_up() {
        assert!(wildcard("a*b*c*d", "axxbyyczzd", false));
        assert!(!wildcard("a*b*c*e", "axxbyyczzd", false));
        let long = "a".repeat(5000);
        assert!(!wildcard(
            &"*a".repeat(50).replace("aa", "a"),
            &(long + "b"),
            false
        ));
        assert!(wildcard("file-??.txt", "file-07.txt", false));
    }
}
