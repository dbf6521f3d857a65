//! `tessera gateway`: the object layer over the nodes' drives, with nothing on local disk.
//! At start it checks that every reachable node holds the same topology, formats blank
//! drives into the deployment, and refuses drives of another deployment.

use std::sync::Arc;

use crate::cluster::Topology;
use crate::credentials::Credentials;
use crate::drive::remote::{rpc_client, RemoteDrive, RpcClient};
use crate::drive::Drive;
use crate::erasure::Codec;
use crate::object::{setup, ErasureSet, Store};
use crate::server::{Frontend, FrontendConfig};

/// A started gateway.
pub struct Gateway {
    /// The listeners.
    pub frontend: Frontend,
    /// Number of erasure sets.
    pub sets: usize,
}

/// Listen addresses and settings that flags or the environment may override.
#[derive(Default)]
pub struct GatewayOverrides {
    /// S3 listen address.
    pub address: Option<String>,
    /// Admin listen address.
    pub admin_address: Option<String>,
    /// TLS certificate and key files.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Gateway {
    /// Connects to the nodes of `topo` and binds the listeners.
    pub async fn start(topo: &Topology, o: GatewayOverrides) -> anyhow::Result<Self> {
        let secret: Arc<str> = topo.secret()?.into();
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) = (
            env("TESSERA_ROOT_ACCESS_KEY"),
            env("TESSERA_ROOT_SECRET_KEY"),
        ) else {
            anyhow::bail!("a gateway needs TESSERA_ROOT_ACCESS_KEY and TESSERA_ROOT_SECRET_KEY");
        };
        let client = rpc_client(topo.rpc_ca())?;
        let topology: Arc<str> = topo.hash.clone().into();
        check_peers(&client, topo, &secret).await?;
        let mut sets = Vec::new();
        for (s, members) in topo.sets.iter().enumerate() {
            let drives: Vec<Arc<dyn Drive>> = members
                .iter()
                .map(|d| {
                    let node = &topo.file.nodes[d.node];
                    Arc::new(RemoteDrive::new(
                        client.clone(),
                        &node.address,
                        d.drive,
                        secret.clone(),
                        topology.clone(),
                    )) as Arc<dyn Drive>
                })
                .collect();
            let codec = Codec::new(topo.k, topo.m, topo.stripe_size)?;
            let set = ErasureSet::new(drives, codec, topo.inline_limit);
            setup::check_formats(
                set.drives(),
                s as u32,
                set.read_quorum(),
                Some(&topo.file.deployment_id),
            )
            .await
            .map_err(|e| anyhow::anyhow!("erasure set {s}: {e}"))?;
            sets.push(Arc::new(set));
        }
        let n = sets.len();
        let store = Arc::new(Store::new(sets, topo.file.deployment_id.clone()));
        let g = &topo.file.gateway;
        let frontend = Frontend::bind(
            store,
            FrontendConfig {
                address: o
                    .address
                    .or_else(|| g.address.clone())
                    .unwrap_or_else(|| "127.0.0.1:9000".into()),
                admin_address: o
                    .admin_address
                    .or_else(|| g.admin_address.clone())
                    .unwrap_or_else(|| "127.0.0.1:9001".into()),
                region: g.region.clone().unwrap_or_else(|| "us-east-1".into()),
                base_domain: g.base_domain.clone(),
                credentials: Credentials {
                    access_key,
                    secret_key,
                },
                upload_expiry: topo.upload_expiry,
                // Repair runs on the nodes, each set led by one of them.
                repair: node_repair(client.clone(), topo, secret.clone()),
                control: node_control(client.clone(), topo, secret.clone()),
                layout: crate::admin::Layout {
                    mode: "gateway",
                    nodes: topo
                        .file
                        .nodes
                        .iter()
                        .map(|n| crate::admin::NodeEntry {
                            name: n.name.clone(),
                            address: n.address.clone(),
                        })
                        .collect(),
                    sets: topo
                        .sets
                        .iter()
                        .map(|m| m.iter().map(|d| d.node).collect())
                        .collect(),
                },
                admin_token: crate::config::admin_token(),
                tls: o.tls,
            },
        )
        .await?;
        Ok(Self { frontend, sets: n })
    }
}

/// The repair status of every set, from the node that leads it (the first that answers
/// and says so); a set whose leader cannot be reached is reported with `leader: false`.
fn node_repair(client: RpcClient, topo: &Topology, secret: Arc<str>) -> crate::admin::RepairSource {
    let nodes: Vec<String> = topo.file.nodes.iter().map(|n| n.address.clone()).collect();
    let sets = topo.sets.len();
    Arc::new(move || {
        let (client, nodes, secret) = (client.clone(), nodes.clone(), secret.clone());
        Box::pin(async move {
            let answers = futures::future::join_all(nodes.iter().map(|addr| {
                rpc_get::<Vec<crate::object::RepairStatus>>(
                    &client,
                    addr,
                    &secret,
                    "/rpc/v1/repair",
                )
            }))
            .await;
            let mut out: Vec<crate::object::RepairStatus> = (0..sets)
                .map(|set| crate::object::RepairStatus {
                    set,
                    ..Default::default()
                })
                .collect();
            for st in answers.into_iter().flatten().flatten() {
                if st.leader && st.set < sets {
                    let set = st.set;
                    out[set] = st;
                }
            }
            out
        })
    })
}

/// Sends a repair command to every node; each queues it on the workers that lead their set
/// there and answers which sets took it.
fn node_control(
    client: RpcClient,
    topo: &Topology,
    secret: Arc<str>,
) -> crate::admin::RepairControl {
    let nodes: Vec<String> = topo.file.nodes.iter().map(|n| n.address.clone()).collect();
    Arc::new(move |command| {
        let (client, nodes, secret) = (client.clone(), nodes.clone(), secret.clone());
        Box::pin(async move {
            let Ok(body) = serde_json::to_vec(&command) else {
                return Vec::new();
            };
            let answers = futures::future::join_all(nodes.iter().map(|addr| {
                signed_call(
                    &client,
                    addr,
                    &secret,
                    "POST",
                    "/rpc/v1/repair",
                    body.clone(),
                    std::time::Duration::from_secs(2),
                )
            }))
            .await;
            answers
                .into_iter()
                .flatten()
                .filter(|(status, _)| status.is_success())
                .filter_map(|(_, body)| serde_json::from_slice::<Vec<usize>>(&body).ok())
                .flatten()
                .collect()
        })
    })
}

/// A signed GET of a node RPC path, within `deadline`: the status and the whole body.
async fn signed_get(
    client: &RpcClient,
    address: &str,
    secret: &str,
    path: &str,
    deadline: std::time::Duration,
) -> anyhow::Result<(hyper::StatusCode, bytes::Bytes)> {
    signed_call(client, address, secret, "GET", path, Vec::new(), deadline).await
}

/// A signed call of a node RPC path, within `deadline`: the status and the whole body.
async fn signed_call(
    client: &RpcClient,
    address: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
    deadline: std::time::Duration,
) -> anyhow::Result<(hyper::StatusCode, bytes::Bytes)> {
    use http_body_util::BodyExt;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(client.url(address, path))
        .header("content-type", "application/json");
    for (k, v) in crate::cluster::auth::sign(secret, method, path) {
        req = req.header(k, v);
    }
    let req = req.body(axum::body::Body::from(body))?;
    tokio::time::timeout(deadline, async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {deadline:?}"))?
}

/// A signed GET of a node RPC path whose JSON answer is decoded, within 2 s; `None` when it
/// fails.
async fn rpc_get<T: serde::de::DeserializeOwned>(
    client: &RpcClient,
    address: &str,
    secret: &str,
    path: &str,
) -> Option<T> {
    let deadline = std::time::Duration::from_secs(2);
    match signed_get(client, address, secret, path, deadline).await {
        Ok((status, body)) if status.is_success() => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// Asks every node for its topology hash: a node that answers with another one stops the
/// gateway; nodes that do not answer are tolerated (they may be down; quorums decide).
async fn check_peers(client: &RpcClient, topo: &Topology, secret: &str) -> anyhow::Result<()> {
    let mut reachable = 0;
    for node in &topo.file.nodes {
        let answer = signed_get(
            client,
            &node.address,
            secret,
            "/rpc/v1/topology",
            std::time::Duration::from_secs(5),
        )
        .await;
        match answer {
            Ok((status, body)) if status.is_success() => {
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let theirs = v["hash"].as_str().unwrap_or_default();
                if theirs != topo.hash {
                    anyhow::bail!(
                        "node {} at {} holds topology {theirs}, this gateway {}: every process must have the same cluster file; refusing to serve",
                        node.name,
                        node.address,
                        topo.hash
                    );
                }
                reachable += 1;
            }
            Ok((status, body)) => anyhow::bail!(
                "node {} at {} refused the gateway ({status}: {}): is the cluster secret the same?",
                node.name,
                node.address,
                String::from_utf8_lossy(&body)
            ),
            Err(e) => match crate::tls::failure(e.as_ref()) {
                // A certificate that does not verify is a configuration error, not a node down.
                Some(why) => anyhow::bail!(
                    "node {} at {}: TLS failed ({why}): does [rpc_tls] ca sign the node's certificate, and does it name {}?",
                    node.name,
                    node.address,
                    node.address
                ),
                // Unreachable, or no answer within 5 s (the error says which).
                None => {
                    tracing::warn!(node = %node.name, error = %e, "node unreachable at start")
                }
            },
        }
    }
    tracing::info!(
        reachable,
        nodes = topo.file.nodes.len(),
        "checked node topologies"
    );
    Ok(())
}
