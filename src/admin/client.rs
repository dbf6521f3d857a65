//! `tessera admin ...`: the admin API from the command line, as tables, with a progress bar
//! for a running heal.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::credentials::Credentials;

/// How the CLI reaches and signs in to the admin API.
pub struct Client {
    /// Base URL, e.g. `http://127.0.0.1:9001`.
    pub url: String,
    /// Bearer token, if given; else requests are signed with `keys`.
    pub token: Option<String>,
    /// Root keys.
    pub keys: Option<Credentials>,
    /// Region requests are signed for.
    pub region: String,
    /// CA certificates (PEM) to trust for an `https://` URL, instead of the system's.
    pub ca_bundle: Option<std::path::PathBuf>,
}

/// What to do.
pub enum Command {
    /// Cluster health, sets and nodes.
    Status,
    /// Drives.
    Drives,
    /// Bucket usage.
    Buckets,
    /// Repair status; with `watch`, follow it until nothing runs.
    HealStatus {
        /// Follow with progress bars.
        watch: bool,
    },
    /// Start a scan.
    HealStart {
        /// Bucket.
        bucket: Option<String>,
        /// Prefix in the bucket.
        prefix: Option<String>,
        /// Re-read every block.
        deep: bool,
        /// Follow until it finishes.
        wait: bool,
    },
    /// Pause repair.
    HealPause,
    /// Resume repair.
    HealResume,
    /// List users.
    UserList,
    /// Create a user, with a policy document (JSON text) if given.
    UserAdd {
        /// Name.
        name: String,
        /// Policy document.
        policy: Option<String>,
    },
    /// Delete a user.
    UserRemove {
        /// Name.
        name: String,
    },
    /// Enable or disable a user.
    UserEnable {
        /// Name.
        name: String,
        /// Enable (true) or disable.
        enabled: bool,
    },
    /// Set a user's policy (JSON text), or remove it.
    UserPolicy {
        /// Name.
        name: String,
        /// Policy document; `None` removes it.
        policy: Option<String>,
    },
}

impl Client {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call_raw(method, path, body).await
    }

    async fn call_raw(&self, method: &str, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let uri: hyper::Uri = format!("{}{path}", self.url.trim_end_matches('/'))
            .parse()
            .with_context(|| format!("bad admin URL {}", self.url))?;
        let https_url = uri.scheme_str() == Some("https");
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .context("the admin URL needs a host")?;
        let method = hyper::Method::from_bytes(method.as_bytes())?;
        let mut req = hyper::Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("host", &host)
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        } else if let Some(k) = &self.keys {
            let signed = crate::s3::sigv4::sign_request(
                &method,
                &host,
                path,
                &body,
                (&k.access_key, &k.secret_key),
                &self.region,
                time::OffsetDateTime::now_utc(),
            );
            for (n, v) in signed {
                req = req.header(n, v);
            }
        }
        let req = req.body(axum::body::Body::from(body))?;
        let tls = match (&self.ca_bundle, https_url) {
            (Some(ca), _) => crate::tls::client_config(Some(ca))?,
            (None, true) => crate::tls::system_client_config()?,
            (None, false) => crate::tls::client_config(None)?,
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
            .await
            .context("the admin API did not answer within 30 s")?
            .map_err(|e| match crate::tls::failure(&e) {
                Some(why) => anyhow::anyhow!(
                    "TLS with the admin API at {} failed: {why} (pass --ca-bundle with the CA that signed its certificate)",
                    self.url
                ),
                None => anyhow::Error::new(e)
                    .context(format!("cannot reach the admin API at {}", self.url)),
            })?;
        let status = resp.status();
        let raw = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        if !status.is_success() {
            let why = v["error"].as_str().map(str::to_string).unwrap_or_else(|| {
                String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned()
            });
            bail!("{status}: {why}");
        }
        Ok(v)
    }

    /// Runs `command`, printing to standard output.
    pub async fn run(&self, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Status => self.status().await,
            Command::Drives => {
                let v = self.call("GET", "/admin/v1/drives", None).await?;
                print!("{}", drives_table(&v));
                Ok(())
            }
            Command::Buckets => {
                let v = self.call("GET", "/admin/v1/buckets", None).await?;
                print!("{}", buckets_table(&v));
                Ok(())
            }
            Command::HealStatus { watch } => self.heal_status(watch, None).await,
            Command::HealStart {
                bucket,
                prefix,
                deep,
                wait,
            } => {
                let before = self.call("GET", "/admin/v1/heal", None).await?;
                let full = bucket.is_none();
                let body = serde_json::json!({ "bucket": bucket, "prefix": prefix, "deep": deep });
                let v = self
                    .call("POST", "/admin/v1/heal/start", Some(body))
                    .await?;
                println!(
                    "scan started on sets {}{}",
                    list(&v["accepted_sets"]),
                    unreachable(&v)
                );
                if wait {
                    self.heal_status(true, Some((before, full))).await?;
                }
                Ok(())
            }
            Command::UserList
            | Command::UserAdd { .. }
            | Command::UserRemove { .. }
            | Command::UserEnable { .. }
            | Command::UserPolicy { .. } => self.users(command).await,
            Command::HealPause | Command::HealResume => {
                let (path, word) = match command {
                    Command::HealPause => ("/admin/v1/heal/pause", "paused"),
                    _ => ("/admin/v1/heal/resume", "resumed"),
                };
                let v = self.call("POST", path, None).await?;
                println!(
                    "repair {word} on sets {}{}",
                    list(&v["accepted_sets"]),
                    unreachable(&v)
                );
                Ok(())
            }
        }
    }

    async fn users(&self, command: Command) -> anyhow::Result<()> {
        match command {
            Command::UserAdd { name, policy } => {
                let policy = policy
                    .map(|p| serde_json::from_str::<Value>(&p))
                    .transpose()
                    .context("the policy file is not JSON")?;
                let body = serde_json::json!({ "name": name, "policy": policy });
                let v = self.call("POST", "/admin/v1/users", Some(body)).await?;
                println!("user {} created", s(&v["name"]));
                println!("  access key: {}", s(&v["access_key"]));
                println!("  secret key: {}", s(&v["secret_key"]));
                println!("  (the secret key is shown only now)");
            }
            Command::UserRemove { name } => {
                self.call("DELETE", &format!("/admin/v1/users/{name}"), None)
                    .await?;
                println!("user {name} deleted");
            }
            Command::UserEnable { name, enabled } => {
                let verb = if enabled { "enable" } else { "disable" };
                self.call("POST", &format!("/admin/v1/users/{name}/{verb}"), None)
                    .await?;
                println!("user {name} {verb}d");
            }
            Command::UserPolicy { name, policy } => {
                let path = format!("/admin/v1/users/{name}/policy");
                match policy {
                    Some(p) => {
                        self.call_raw("PUT", &path, p.into_bytes()).await?;
                        println!("policy of {name} set");
                    }
                    None => {
                        self.call("DELETE", &path, None).await?;
                        println!("policy of {name} removed: the user may do nothing");
                    }
                }
            }
            _ => {
                let v = self.call("GET", "/admin/v1/users", None).await?;
                let rows: Vec<Vec<String>> = arr(&v["users"])
                    .iter()
                    .map(|u| {
                        vec![
                            s(&u["name"]),
                            s(&u["access_key"]),
                            if u["enabled"].as_bool() == Some(true) {
                                "enabled".into()
                            } else {
                                "disabled".into()
                            },
                            if u["policy"].is_null() {
                                "none".into()
                            } else {
                                format!("{} statements", policy_size(&u["policy"]))
                            },
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["USER", "ACCESS KEY", "STATE", "POLICY"], &rows)
                );
            }
        }
        Ok(())
    }

    async fn status(&self) -> anyhow::Result<()> {
        let c = self.call("GET", "/admin/v1/cluster", None).await?;
        let sets = self.call("GET", "/admin/v1/sets", None).await?;
        let nodes = self.call("GET", "/admin/v1/nodes", None).await?;
        println!(
            "Tessera {} ({}), deployment {}, up {}",
            s(&c["version"]),
            s(&c["mode"]),
            s(&c["deployment_id"]),
            duration(c["uptime_secs"].as_u64().unwrap_or(0))
        );
        println!(
            "health: {}   erasure {}+{}, {} sets, {} of {} drives online{}",
            s(&c["status"]).to_uppercase(),
            c["k"],
            c["m"],
            c["sets"],
            c["drives_online"],
            c["drives"],
            if c["repair_paused"].as_bool() == Some(true) {
                "   (repair PAUSED)"
            } else {
                ""
            }
        );
        println!();
        let rows: Vec<Vec<String>> = arr(&nodes["nodes"])
            .iter()
            .map(|n| {
                vec![
                    s(&n["name"]),
                    s(&n["address"]),
                    s(&n["state"]),
                    format!("{}/{}", n["drives_online"], n["drives"]),
                ]
            })
            .collect();
        print!("{}", table(&["NODE", "ADDRESS", "STATE", "DRIVES"], &rows));
        println!();
        let rows: Vec<Vec<String>> = arr(&sets["sets"])
            .iter()
            .map(|x| {
                vec![
                    x["set"].to_string(),
                    s(&x["state"]),
                    format!("{}/{}", x["online"], x["drives"]),
                    x["tolerance"].to_string(),
                    x["hints_pending"].to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["SET", "STATE", "ONLINE", "CAN LOSE", "HEALS PENDING"],
                &rows
            )
        );
        Ok(())
    }

    /// Prints the repair status; with `watch`, redraws it every second until no set has a
    /// pass, a requested scan or hints in hand (at most an hour). With `started`, the status
    /// from before a scan was asked for (and whether it was a full one): the sets' workers
    /// take commands on their next round, so until they show it, it counts as running.
    async fn heal_status(&self, watch: bool, started: Option<(Value, bool)>) -> anyhow::Result<()> {
        let taken_by = std::time::Instant::now() + Duration::from_secs(30);
        let deadline = std::time::Instant::now() + Duration::from_secs(3600);
        let mut drawn = 0;
        loop {
            let v = self.call("GET", "/admin/v1/heal", None).await?;
            let text = heal_text(&v);
            if watch && drawn > 0 {
                // Move up over the previous drawing.
                print!("\x1b[{drawn}A\x1b[J");
            }
            print!("{text}");
            drawn = text.lines().count();
            let running = arr(&v["sets"]).iter().any(|x| {
                x["in_pass"].as_bool() == Some(true)
                    || x["hints_pending"].as_u64().unwrap_or(0) > 0
                    || x["target"]["finished_ms"].as_u64() == Some(0)
            });
            let not_taken = started.as_ref().is_some_and(|(before, full)| {
                let field = if *full { "pass" } else { "target" };
                let old = |set: &Value| {
                    arr(&before["sets"])
                        .iter()
                        .find(|b| b["set"] == *set)
                        .map(|b| b[field].clone())
                };
                std::time::Instant::now() < taken_by
                    && arr(&v["sets"]).iter().any(|x| {
                        x["leader"].as_bool() == Some(true)
                            && old(&x["set"]) == Some(x[field].clone())
                    })
            });
            let running = running || not_taken;
            if !watch || !running || std::time::Instant::now() > deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn heal_text(v: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "repair: {}; healed {} versions, rebuilt {}, {} failed, {} hints pending",
        if v["paused"].as_bool() == Some(true) {
            "PAUSED"
        } else {
            "running"
        },
        v["healed"],
        bytes(v["bytes_rebuilt"].as_u64().unwrap_or(0)),
        v["failed"],
        v["hints_pending"]
    );
    for x in arr(&v["sets"]) {
        let set = &x["set"];
        if x["leader"].as_bool() != Some(true) {
            let _ = writeln!(out, "  set {set}: leader unreachable");
            continue;
        }
        let last = x["last_pass_objects"].as_u64().unwrap_or(0);
        let scanned = x["scanned"].as_u64().unwrap_or(0);
        if x["in_pass"].as_bool() == Some(true) {
            let kind = if x["deep"].as_bool() == Some(true) {
                "deep pass"
            } else {
                "pass"
            };
            let eta = x["eta_secs"]
                .as_u64()
                .map(|e| format!(", ETA {}", duration(e)))
                .unwrap_or_default();
            let bar = if last > 0 {
                progress(scanned, last)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  set {set}: {kind} {} {bar} {scanned} versions scanned (bucket {}){eta}",
                x["pass"],
                s(&x["bucket"])
            );
        } else {
            let when = x["last_pass_finished_ms"].as_u64().unwrap_or(0);
            let ago = if when == 0 {
                "no pass yet".to_string()
            } else {
                let secs = crate::drive::record::now_ms().saturating_sub(when) / 1000;
                format!(
                    "last pass {} ago: {last} versions in {}",
                    duration(secs),
                    duration(x["last_pass_ms"].as_u64().unwrap_or(0) / 1000)
                )
            };
            let _ = writeln!(out, "  set {set}: idle, {ago}");
        }
        let t = &x["target"];
        if t.is_object() {
            let state = if t["finished_ms"].as_u64() == Some(0) {
                "running"
            } else {
                "done"
            };
            let _ = writeln!(
                out,
                "    requested scan of {}/{}{}: {state}, {} versions checked",
                s(&t["bucket"]),
                s(&t["prefix"]),
                if t["deep"].as_bool() == Some(true) {
                    " (deep)"
                } else {
                    ""
                },
                t["scanned"]
            );
        }
    }
    out
}

fn drives_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = arr(&v["drives"])
        .iter()
        .map(|d| {
            let (used, total) = (
                d["used_bytes"].as_u64().unwrap_or(0),
                d["total_bytes"].as_u64().unwrap_or(0),
            );
            vec![
                format!("{}-{}", d["set"], d["index"]),
                s(&d["node"]),
                s(&d["state"]),
                format!("{} / {}", bytes(used), bytes(total)),
                d["errors"].to_string(),
                s(&d["endpoint"]),
            ]
        })
        .collect();
    table(
        &[
            "DRIVE",
            "NODE",
            "STATE",
            "USED / SIZE",
            "ERRORS",
            "ENDPOINT",
        ],
        &rows,
    )
}

fn buckets_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = arr(&v["buckets"])
        .iter()
        .map(|b| {
            vec![
                s(&b["name"]),
                b["objects"].to_string(),
                b["versions"].to_string(),
                b["delete_markers"].to_string(),
                bytes(b["bytes"].as_u64().unwrap_or(0)),
                b["uploads_in_flight"].to_string(),
                s(&b["versioning"]),
            ]
        })
        .collect();
    table(
        &[
            "BUCKET",
            "OBJECTS",
            "VERSIONS",
            "DELETE MARKERS",
            "SIZE",
            "UPLOADS",
            "VERSIONING",
        ],
        &rows,
    )
}

/// Columns padded to their widest cell.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = width[i]);
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(head.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    out
}

fn policy_size(p: &Value) -> usize {
    match &p["Statement"] {
        Value::Array(a) => a.len(),
        Value::Null => 0,
        _ => 1,
    }
}

fn progress(done: u64, of: u64) -> String {
    let frac = (done as f64 / of as f64).clamp(0.0, 1.0);
    let filled = (frac * 20.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(20 - filled),
        frac * 100.0
    )
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn list(v: &Value) -> String {
    let items: Vec<String> = arr(v).iter().map(|x| x.to_string()).collect();
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

fn unreachable(v: &Value) -> String {
    let missing = arr(&v["unreachable_sets"]);
    if missing.is_empty() {
        String::new()
    } else {
        format!(
            "; sets {} did not answer (their leader is down)",
            list(&v["unreachable_sets"])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_bars_and_sizes() {
        let t = table(&["A", "LONGER"], &[vec!["wide cell".into(), "x".into()]]);
        assert_eq!(t, "A          LONGER\nwide cell  x\n");
        assert_eq!(progress(5, 10), "[##########..........]  50%");
        assert_eq!(progress(20, 10), "[####################] 100%");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(duration(90), "90s");
        assert_eq!(duration(3 * 3600), "3h");
    }
}
