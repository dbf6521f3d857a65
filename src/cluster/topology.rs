//! The cluster topology: nodes, their drives, the erasure layout and the deployment id, read
//! from one TOML file that every process holds. Drives are grouped into erasure sets of `k+m`,
//! taking drives round-robin over nodes, so each set is spread over as many nodes as possible.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{parse_duration, parse_ec, parse_size, ConfigError};

/// A storage node of the topology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique name; `tessera node --name` selects it.
    pub name: String,
    /// `host:port` where gateways and peers reach the node's RPC.
    pub address: String,
    /// Drive folders on that node.
    pub drives: Vec<PathBuf>,
}

/// `[node]` settings of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// RPC listen address (defaults to the node's `address`).
    pub listen: Option<String>,
}

/// `[gateway]` settings of the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// S3 listen address.
    pub address: Option<String>,
    /// Admin listen address.
    pub admin_address: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Base domain for virtual-host-style requests.
    pub base_domain: Option<String>,
}

/// `[rpc_tls]` settings: node RPC over HTTPS. Every process of the cluster must have the
/// same table: nodes serve their RPC over TLS only, gateways and peers verify the node's
/// certificate against `ca`. Calls stay signed with the cluster secret as over HTTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcTlsSection {
    /// CA certificates (PEM) that sign the nodes' certificates.
    pub ca: PathBuf,
    /// The node's certificate chain (PEM), for every node address (`tessera node
    /// --rpc-tls-cert` overrides it per node).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM) (`--rpc-tls-key`).
    pub key: Option<PathBuf>,
}

/// The cluster file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Deployment id shared by every drive.
    pub deployment_id: String,
    /// Erasure layout `"K+M"`.
    pub ec: String,
    /// Stripe size, default `"1MiB"`.
    pub stripe_size: Option<String>,
    /// Inline limit, default `"64KiB"`.
    pub inline_limit: Option<String>,
    /// Age after which unfinished multipart uploads are aborted, default `"7d"`.
    pub upload_expiry: Option<String>,
    /// File holding the cluster secret (else `TESSERA_CLUSTER_SECRET`).
    pub cluster_secret_file: Option<PathBuf>,
    /// The storage nodes.
    pub nodes: Vec<NodeSpec>,
    /// Node settings.
    #[serde(default)]
    pub node: NodeSection,
    /// Gateway settings.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Background repair, run by the nodes.
    #[serde(default)]
    pub repair: crate::config::RepairSection,
    /// Node RPC over TLS (HTTP when absent).
    pub rpc_tls: Option<RpcTlsSection>,
}

/// Where one drive of a set lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriveRef {
    /// Index into `nodes`.
    pub node: usize,
    /// Index into that node's `drives`.
    pub drive: usize,
}

/// The resolved topology.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The file it came from.
    pub file: ClusterFile,
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
    /// Stripe size in bytes.
    pub stripe_size: usize,
    /// Inline limit in bytes.
    pub inline_limit: usize,
    /// Abandoned-upload age.
    pub upload_expiry: std::time::Duration,
    /// Background repair settings.
    pub repair: crate::object::RepairConfig,
    /// The erasure sets, each `k+m` drives in set order.
    pub sets: Vec<Vec<DriveRef>>,
    /// Hash of everything that must agree across processes.
    pub hash: String,
}

impl Topology {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let file: ClusterFile = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse(path.to_path_buf(), e.to_string()))?;
        Self::from_file(file)
    }

    /// Checks a parsed cluster file and lays out its erasure sets.
    pub fn from_file(file: ClusterFile) -> Result<Self, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let (k, m) = parse_ec(&file.ec)?;
        if uuid::Uuid::parse_str(&file.deployment_id).is_err() {
            return invalid(format!(
                "deployment_id {:?} is not a UUID",
                file.deployment_id
            ));
        }
        if file.nodes.is_empty() {
            return invalid("the topology lists no nodes".into());
        }
        let mut names: Vec<&str> = file.nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return invalid("node names must be unique".into());
        }
        let total: usize = file.nodes.iter().map(|n| n.drives.len()).sum();
        let width = k + m;
        if total == 0 || !total.is_multiple_of(width) {
            return invalid(format!(
                "{total} drives cannot be cut into erasure sets of {k}+{m}: the total must be a multiple of {width}"
            ));
        }
        // Round-robin over nodes: drive 0 of every node, then drive 1 of every node, ...
        let most = file.nodes.iter().map(|n| n.drives.len()).max().unwrap_or(0);
        let mut order = Vec::with_capacity(total);
        for d in 0..most {
            for (n, node) in file.nodes.iter().enumerate() {
                if d < node.drives.len() {
                    order.push(DriveRef { node: n, drive: d });
                }
            }
        }
        let sets: Vec<Vec<DriveRef>> = order.chunks(width).map(|c| c.to_vec()).collect();
        for (s, set) in sets.iter().enumerate() {
            for (n, node) in file.nodes.iter().enumerate() {
                let held = set.iter().filter(|d| d.node == n).count();
                if held > m {
                    return invalid(format!(
                        "node {} would hold {held} drives of erasure set {s}, more than m = {m}: losing it would lose data; add nodes or drives",
                        node.name
                    ));
                }
            }
        }
        let stripe_size = parse_size(file.stripe_size.as_deref().unwrap_or("1MiB"))? as usize;
        let inline_limit = parse_size(file.inline_limit.as_deref().unwrap_or("64KiB"))? as usize;
        let upload_expiry = parse_duration(file.upload_expiry.as_deref().unwrap_or("7d"))?;
        let repair = file.repair.resolve()?;
        let canonical = serde_json::json!({
            "deployment_id": file.deployment_id,
            "k": k,
            "m": m,
            "stripe_size": stripe_size,
            "inline_limit": inline_limit,
            "nodes": file.nodes,
        });
        let hash = blake3::hash(canonical.to_string().as_bytes()).to_hex()[..16].to_string();
        Ok(Self {
            file,
            k,
            m,
            stripe_size,
            inline_limit,
            upload_expiry,
            repair,
            sets,
            hash,
        })
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<(usize, &NodeSpec)> {
        self.file
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == name)
    }

    /// The set and position of drive `drive` of node `node`.
    pub fn place_of(&self, node: usize, drive: usize) -> Option<(usize, usize)> {
        self.sets.iter().enumerate().find_map(|(s, set)| {
            set.iter()
                .position(|d| d.node == node && d.drive == drive)
                .map(|p| (s, p))
        })
    }

    /// The CA file that node certificates are verified against, when node RPC uses TLS.
    pub fn rpc_ca(&self) -> Option<&Path> {
        self.file.rpc_tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A node's RPC certificate and key: `overrides` (from its command line), else the
    /// `[rpc_tls]` table's; `None` when the cluster's RPC is plain HTTP.
    pub fn node_tls(
        &self,
        overrides: Option<(PathBuf, PathBuf)>,
    ) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
        let Some(t) = &self.file.rpc_tls else {
            return match overrides {
                None => Ok(None),
                Some(_) => Err(ConfigError::Invalid(
                    "a node RPC certificate needs [rpc_tls] ca in the cluster file, so that gateways and peers verify it".into(),
                )),
            };
        };
        match (overrides, &t.cert, &t.key) {
            (Some(pair), _, _) => Ok(Some(pair)),
            (None, Some(cert), Some(key)) => Ok(Some((cert.clone(), key.clone()))),
            _ => Err(ConfigError::Invalid(
                "[rpc_tls] is set: a node needs a certificate and key (cert and key in [rpc_tls], or --rpc-tls-cert and --rpc-tls-key)".into(),
            )),
        }
    }

    /// The cluster secret: `TESSERA_CLUSTER_SECRET`, or the file named in the topology
    /// (which must not be readable by others).
    pub fn secret(&self) -> Result<String, ConfigError> {
        if let Ok(s) = std::env::var("TESSERA_CLUSTER_SECRET") {
            if !s.is_empty() {
                return Ok(s);
            }
        }
        let Some(path) = &self.file.cluster_secret_file else {
            return Err(ConfigError::Invalid(
                "no cluster secret: set TESSERA_CLUSTER_SECRET or cluster_secret_file".into(),
            ));
        };
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(ConfigError::Invalid(format!(
                "{} is readable by others: chmod 600 it",
                path.display()
            )));
        }
        let s = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
        Ok(s.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(nodes: usize, drives: usize, ec: &str) -> ClusterFile {
        ClusterFile {
            deployment_id: "3f6c2a9e-5b1d-4c8e-9a07-2d4b8e1f6a53".into(),
            ec: ec.into(),
            stripe_size: None,
            inline_limit: None,
            upload_expiry: None,
            cluster_secret_file: None,
            nodes: (0..nodes)
                .map(|n| NodeSpec {
                    name: format!("node{n}"),
                    address: format!("node{n}:9100"),
                    drives: (0..drives)
                        .map(|d| PathBuf::from(format!("/d{d}")))
                        .collect(),
                })
                .collect(),
            node: Default::default(),
            gateway: Default::default(),
            repair: Default::default(),
            rpc_tls: None,
        }
    }

    #[test]
    fn six_nodes_of_two_drives_make_two_sets_one_drive_per_node() {
        let t = Topology::from_file(file(6, 2, "4+2")).unwrap();
        assert_eq!(t.sets.len(), 2);
        for set in &t.sets {
            let mut nodes: Vec<usize> = set.iter().map(|d| d.node).collect();
            nodes.sort();
            assert_eq!(nodes, [0, 1, 2, 3, 4, 5]);
        }
        assert_eq!(t.place_of(3, 1), Some((1, 3)));
    }

    #[test]
    fn three_nodes_of_four_drives_hold_two_shards_each() {
        let t = Topology::from_file(file(3, 4, "4+2")).unwrap();
        assert_eq!(t.sets.len(), 2);
        for set in &t.sets {
            for n in 0..3 {
                assert_eq!(set.iter().filter(|d| d.node == n).count(), 2);
            }
        }
    }

    #[test]
    fn unsafe_or_broken_layouts_are_refused() {
        assert!(
            Topology::from_file(file(2, 3, "4+2")).is_err(),
            "a node would hold 3 > m"
        );
        assert!(Topology::from_file(file(5, 1, "4+2")).is_err(), "5 drives");
        let mut f = file(6, 1, "4+2");
        f.deployment_id = "nope".into();
        assert!(Topology::from_file(f).is_err());
        let mut f = file(6, 1, "4+2");
        f.nodes[1].name = "node0".into();
        assert!(Topology::from_file(f).is_err());
    }

    #[test]
    fn hash_changes_with_topology() {
        let a = Topology::from_file(file(6, 2, "4+2")).unwrap();
        let b = Topology::from_file(file(6, 2, "4+2")).unwrap();
        assert_eq!(a.hash, b.hash);
        let mut f = file(6, 2, "4+2");
        f.nodes[0].address = "elsewhere:9100".into();
        assert_ne!(Topology::from_file(f).unwrap().hash, a.hash);
    }

    #[test]
    fn example_files_parse() {
        for p in ["config/cluster.toml", "config/cluster-3x4.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
            Topology::load(&path).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }
}
