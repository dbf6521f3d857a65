//! Configuration of `tessera server`: a typed struct with defaults, read from a TOML file
//! (`--config`), then overridden by `TESSERA_*` environment variables and flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Settings a TOML file may hold (every field optional; see `config/server.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data folder.
    pub data: Option<PathBuf>,
    /// Number of drive folders.
    pub drives: Option<usize>,
    /// Erasure layout, `"4+2"`.
    pub ec: Option<String>,
    /// S3 listen address.
    pub address: Option<String>,
    /// Admin listen address.
    pub admin_address: Option<String>,
    /// Region requests are signed for.
    pub region: Option<String>,
    /// Base domain for virtual-host-style requests.
    pub base_domain: Option<String>,
    /// Stripe size with a unit, `"1MiB"`.
    pub stripe_size: Option<String>,
    /// Largest object kept inline in metadata, `"64KiB"`.
    pub inline_limit: Option<String>,
    /// Age after which an unfinished multipart upload is aborted, `"7d"`.
    pub upload_expiry: Option<String>,
    /// Background repair.
    #[serde(default)]
    pub repair: RepairSection,
    /// TLS certificate chain (PEM) for the S3 and admin listeners.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM), readable by the server's user only.
    pub tls_key: Option<PathBuf>,
}

/// `[repair]` settings, of `tessera server` and of the cluster file.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepairSection {
    /// Time between scanner passes, default `"1h"`.
    pub scan_interval: Option<String>,
    /// How often a pass re-reads every block for bitrot, default `"30d"`; `"0s"`: never.
    pub deep_interval: Option<String>,
    /// Repair bytes per second, default `"256MiB"`; `"0"`: unlimited.
    pub bandwidth: Option<String>,
    /// Age below which orphan files and partial versions are left alone, default `"1h"`.
    pub grace: Option<String>,
}

impl RepairSection {
    /// The repair settings, with defaults for what is not given.
    pub fn resolve(&self) -> Result<crate::object::RepairConfig, ConfigError> {
        let d = crate::object::RepairConfig::default();
        // `TESSERA_REPAIR_<SETTING>` wins over the file.
        let env = |name: &str, v: &Option<String>| {
            std::env::var(format!("TESSERA_REPAIR_{}", name.to_uppercase()))
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| v.clone())
        };
        let dur = |name: &str, v: &Option<String>, default| match env(name, v) {
            Some(s) => parse_duration(&s),
            None => Ok(default),
        };
        Ok(crate::object::RepairConfig {
            scan_interval: dur("scan_interval", &self.scan_interval, d.scan_interval)?,
            deep_interval: dur("deep_interval", &self.deep_interval, d.deep_interval)?,
            bandwidth: match env("bandwidth", &self.bandwidth) {
                Some(s) => parse_size(&s)?,
                None => d.bandwidth,
            },
            grace: dur("grace", &self.grace, d.grace)?,
            poll: d.poll,
        })
    }
}

/// The resolved configuration of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data folder; drives are `data/drive-0` ...
    pub data: PathBuf,
    /// Number of drives.
    pub drives: usize,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// S3 listen address.
    pub address: String,
    /// Admin listen address.
    pub admin_address: String,
    /// Region.
    pub region: String,
    /// Base domain for virtual-host-style requests.
    pub base_domain: Option<String>,
    /// Object bytes per stripe.
    pub stripe_size: usize,
    /// Objects up to this size are stored inline in their metadata records.
    pub inline_limit: usize,
    /// Unfinished multipart uploads older than this are aborted.
    pub upload_expiry: std::time::Duration,
    /// Background repair.
    pub repair: crate::object::RepairConfig,
    /// Bearer token of the admin API (`TESSERA_ADMIN_TOKEN`), besides the root keys.
    pub admin_token: Option<String>,
    /// TLS certificate and key files; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The admin API's bearer token from `TESSERA_ADMIN_TOKEN`, if set (a secret: environment
/// only, never the config file).
pub fn admin_token() -> Option<String> {
    std::env::var("TESSERA_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Values given on the command line or in the environment (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data` / `TESSERA_DATA`
    pub data: Option<PathBuf>,
    /// `--drives` / `TESSERA_DRIVES`
    pub drives: Option<usize>,
    /// `--ec` / `TESSERA_EC`
    pub ec: Option<String>,
    /// `--address` / `TESSERA_ADDRESS`
    pub address: Option<String>,
    /// `--admin-address` / `TESSERA_ADMIN_ADDRESS`
    pub admin_address: Option<String>,
    /// `--region` / `TESSERA_REGION`
    pub region: Option<String>,
    /// `--base-domain` / `TESSERA_BASE_DOMAIN`
    pub base_domain: Option<String>,
    /// `--tls-cert` / `TESSERA_TLS_CERT`
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` / `TESSERA_TLS_KEY`
    pub tls_key: Option<PathBuf>,
}

/// Pairs a TLS certificate with its key: both or neither.
pub fn tls_pair(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err(ConfigError::Invalid(
            "TLS needs both a certificate (--tls-cert) and its key (--tls-key)".into(),
        )),
    }
}

/// Errors in configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for this struct.
    #[error("invalid config {0}: {1}")]
    Parse(PathBuf, String),
    /// A value is out of range or badly formed.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl ServerConfig {
    /// Loads the file (if any) and applies the overrides and defaults.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<Self, ConfigError> {
        let f: FileConfig = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.to_path_buf(), e))?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse(p.to_path_buf(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        let ec = o.ec.or(f.ec).unwrap_or_else(|| "4+2".into());
        let (k, m) = parse_ec(&ec)?;
        let drives = o.drives.or(f.drives).unwrap_or(6);
        if drives != k + m {
            return Err(ConfigError::Invalid(format!(
                "{drives} drives cannot hold one erasure set of {k}+{m}: use --drives {}",
                k + m
            )));
        }
        let stripe_size = parse_size(f.stripe_size.as_deref().unwrap_or("1MiB"))? as usize;
        let inline_limit = parse_size(f.inline_limit.as_deref().unwrap_or("64KiB"))? as usize;
        if !(4096..=(64 << 20)).contains(&stripe_size) || inline_limit >= stripe_size {
            return Err(ConfigError::Invalid(
                "stripe_size must be 4KiB..64MiB and larger than inline_limit".into(),
            ));
        }
        Ok(Self {
            data: o.data.or(f.data).unwrap_or_else(|| PathBuf::from("./data")),
            drives,
            k,
            m,
            address: o
                .address
                .or(f.address)
                .unwrap_or_else(|| "127.0.0.1:9000".into()),
            admin_address: o
                .admin_address
                .or(f.admin_address)
                .unwrap_or_else(|| "127.0.0.1:9001".into()),
            region: o.region.or(f.region).unwrap_or_else(|| "us-east-1".into()),
            base_domain: o.base_domain.or(f.base_domain).filter(|d| !d.is_empty()),
            stripe_size,
            inline_limit,
            upload_expiry: parse_duration(f.upload_expiry.as_deref().unwrap_or("7d"))?,
            repair: f.repair.resolve()?,
            admin_token: admin_token(),
            tls: tls_pair(o.tls_cert.or(f.tls_cert), o.tls_key.or(f.tls_key))?,
        })
    }
}

/// Parses `"K+M"`.
pub fn parse_ec(s: &str) -> Result<(usize, usize), ConfigError> {
    let bad = || ConfigError::Invalid(format!("erasure layout {s:?}: expected K+M, e.g. 4+2"));
    let (k, m) = s.trim().split_once('+').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let m: usize = m.trim().parse().map_err(|_| bad())?;
    if k == 0 || m == 0 || k + m > 32 {
        return Err(bad());
    }
    Ok((k, m))
}

/// Parses a size with an optional unit: `"4096"`, `"64KiB"`, `"1MiB"`, `"2GiB"`, `"1MB"`.
pub fn parse_size(s: &str) -> Result<u64, ConfigError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("size {s:?}")))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => return Err(ConfigError::Invalid(format!("unknown size unit {u:?}"))),
    };
    n.checked_mul(mult)
        .ok_or_else(|| ConfigError::Invalid(format!("size {s:?} too large")))
}

/// Parses a duration with a unit: `"90s"`, `"30m"`, `"12h"`, `"7d"`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, ConfigError> {
    let s = s.trim();
    let bad = || ConfigError::Invalid(format!("duration {s:?}: expected e.g. 90s, 30m, 12h, 7d"));
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_layouts() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("10").unwrap(), 10);
        assert!(parse_size("1XB").is_err());
        assert_eq!(parse_ec("4+2").unwrap(), (4, 2));
        assert!(parse_ec("4-2").is_err());
        assert!(parse_ec("0+2").is_err());
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604800);
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7w").is_err());
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "data = \"/srv/t\"\ndrives = 3\nec = \"2+1\"\naddress = \"0.0.0.0:9000\"\n",
        )
        .unwrap();
        let c = ServerConfig::load(
            Some(&p),
            Overrides {
                address: Some("127.0.0.1:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((c.k, c.m, c.drives), (2, 1, 3));
        assert_eq!(c.data, PathBuf::from("/srv/t"));
        assert_eq!(c.address, "127.0.0.1:1");
        assert_eq!(c.admin_address, "127.0.0.1:9001");
        std::fs::write(&p, "unknown = 1\n").unwrap();
        assert!(ServerConfig::load(Some(&p), Overrides::default()).is_err());
    }
}
