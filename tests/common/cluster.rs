//! A loopback cluster of real `tessera node` and `tessera gateway` processes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{client_with, ACCESS_KEY, SECRET_KEY};

pub const CLUSTER_SECRET: &str = "test-cluster-secret";

/// A free loopback port for a node to listen on. Ports come from below Linux's ephemeral
/// range (32768 and up), so no outgoing connection of a concurrently running test can take one
/// between the check here and the node's bind, and a counter keeps the tests of one binary from
/// picking the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        if p >= 32_000 {
            NEXT.store(20_000, Ordering::SeqCst);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Writes a topology of `nodes` nodes with `drives` drives each under `dir`.
pub fn write_topology(dir: &Path, nodes: usize, drives: usize, ec: &str) -> (PathBuf, Vec<u16>) {
    let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
    let mut t =
        format!("deployment_id = \"5a1e0c2b-7d3f-4e8a-9b6c-0f1e2d3c4b5a\"\nec = \"{ec}\"\n");
    for (n, port) in ports.iter().enumerate() {
        let ds: Vec<String> = (0..drives)
            .map(|d| format!("\"{}\"", dir.join(format!("node{n}/d{d}")).display()))
            .collect();
        t += &format!(
            "\n[[nodes]]\nname = \"node{n}\"\naddress = \"127.0.0.1:{port}\"\ndrives = [{}]\n",
            ds.join(", ")
        );
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, t).unwrap();
    (path, ports)
}

/// A process of the cluster.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    pub urls: Vec<String>,
}

impl Proc {
    /// Starts `tessera ARGS` and waits for `ready`; collects the `http://` URLs it prints.
    pub fn start(name: &str, args: &[&str], log: PathBuf) -> Result<Self, String> {
        Self::start_in(name, args, log, None)
    }

    /// Like `start`, with the process placed in a cgroup (v2) folder before it runs, so that
    /// every socket it opens belongs to that cgroup (firewall rules can then single it out).
    pub fn start_in(
        name: &str,
        args: &[&str],
        log: PathBuf,
        cgroup: Option<&Path>,
    ) -> Result<Self, String> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let bin = env!("CARGO_BIN_EXE_tessera");
        let mut cmd = match cgroup {
            Some(cg) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                        cg.display()
                    ))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(args)
            .env("TESSERA_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("TESSERA_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("TESSERA_ROOT_SECRET_KEY", SECRET_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut urls = Vec::new();
        let mut ready = false;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("http://") {
                urls.push(line[i..].trim().to_string());
            }
            if line.trim() == "ready" {
                ready = true;
                break;
            }
        }
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        }
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log,
            urls,
        })
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (e.g. "STOP", "CONT").
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status();
        }
    }

    /// Resident memory, in bytes (0 once the process is gone).
    pub fn rss(&self) -> u64 {
        self.child
            .as_ref()
            .map_or(0, |c| super::proc_status_bytes(c.id(), "VmRSS:"))
    }

    /// Peak resident memory since the process started, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> u64 {
        self.child
            .as_ref()
            .map_or(0, |c| super::proc_status_bytes(c.id(), "VmHWM:"))
    }

    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
    }
}

/// Nodes and gateways on loopback.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub topology: PathBuf,
    pub nodes: Vec<Proc>,
    pub gateways: Vec<Proc>,
    /// A cgroup (v2) folder that gateways are started in, when set.
    pub gateway_cgroup: Option<PathBuf>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster logs:\n{}", self.logs());
        }
    }
}

impl TestCluster {
    /// `nodes` nodes of `drives` drives and `gateways` gateways.
    pub fn start(nodes: usize, drives: usize, gateways: usize) -> Self {
        Self::start_with(nodes, drives, gateways, "")
    }

    /// Like `start`, with `extra` TOML appended to the cluster file (e.g. a `[repair]` table).
    pub fn start_with(nodes: usize, drives: usize, gateways: usize, extra: &str) -> Self {
        Self::start_full(nodes, drives, gateways, extra, None)
    }

    /// Like `start_with`, with the gateways started in the cgroup (v2) folder `cgroup`.
    pub fn start_full(
        nodes: usize,
        drives: usize,
        gateways: usize,
        extra: &str,
        cgroup: Option<PathBuf>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (topology, _) = write_topology(dir.path(), nodes, drives, "4+2");
        if !extra.is_empty() {
            let mut t = std::fs::read_to_string(&topology).unwrap();
            t = format!("{t}\n{extra}\n");
            std::fs::write(&topology, t).unwrap();
        }
        let mut c = Self {
            dir,
            topology,
            nodes: Vec::new(),
            gateways: Vec::new(),
            gateway_cgroup: cgroup,
        };
        for n in 0..nodes {
            c.start_node(n);
        }
        for _ in 0..gateways {
            c.add_gateway()
                .unwrap_or_else(|log| panic!("gateway failed:\n{log}"));
        }
        c
    }

    pub fn start_node(&mut self, n: usize) {
        let name = format!("node{n}");
        let log = self.dir.path().join(format!("{name}.log"));
        let topo = self.topology.to_str().unwrap().to_string();
        let p = Proc::start(&name, &["node", "--config", &topo, "--name", &name], log)
            .unwrap_or_else(|log| panic!("{name} failed:\n{log}"));
        if n < self.nodes.len() {
            self.nodes[n] = p;
        } else {
            self.nodes.push(p);
        }
    }

    /// Starts one more gateway with the cluster's topology file.
    pub fn add_gateway(&mut self) -> Result<(), String> {
        let topo = self.topology.to_str().unwrap().to_string();
        let p = self.gateway_with(&topo)?;
        self.gateways.push(p);
        Ok(())
    }

    /// Starts a gateway with the given topology file (not added to the cluster).
    pub fn gateway_with(&self, topology: &str) -> Result<Proc, String> {
        let i = self.gateways.len();
        let log = self
            .dir
            .path()
            .join(format!("gateway{i}-{}.log", free_port()));
        Proc::start_in(
            &format!("gateway{i}"),
            &[
                "gateway",
                "--config",
                topology,
                "--address",
                "127.0.0.1:0",
                "--admin-address",
                "127.0.0.1:0",
            ],
            log,
            self.gateway_cgroup.as_deref(),
        )
    }

    /// The S3 URL of gateway `i`.
    pub fn s3_url(&self, i: usize) -> &str {
        &self.gateways[i].urls[0]
    }

    /// The admin URL of gateway `i`.
    pub fn admin_url(&self, i: usize) -> &str {
        &self.gateways[i].urls[1]
    }

    /// An SDK client of gateway `i`.
    pub fn client(&self, i: usize) -> aws_sdk_s3::Client {
        client_with(self.s3_url(i), ACCESS_KEY, SECRET_KEY)
    }

    /// Waits (at most 30 s) until gateway `i` reports ready.
    pub async fn wait_ready(&self, i: usize) {
        let url = format!("{}/health/ready", self.admin_url(i));
        for _ in 0..300 {
            if http_status(&url) == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("gateway {i} not ready after 30 s\n{}", self.logs());
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for p in self.nodes.iter().chain(self.gateways.iter()) {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out += &format!("--- {} ---\n", p.name);
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

/// Status and body of a plain HTTP/1.1 GET; `None` when the connection fails.
fn http_get(url: &str) -> Option<(u16, String)> {
    http_request("GET", url, &[], b"")
}

/// Status and body of a plain HTTP/1.1 request with extra headers and a body; `None` when
/// the connection fails.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut head = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Status of a plain HTTP GET (0 when the connection fails).
pub fn http_status(url: &str) -> u16 {
    http_get(url).map_or(0, |(status, _)| status)
}

/// Body of a plain HTTP GET (empty when the connection fails).
pub fn http_body(url: &str) -> String {
    http_get(url).map(|(_, body)| body).unwrap_or_default()
}
