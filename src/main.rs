//! The `tessera` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera::cluster::Topology;
use tessera::config::{Overrides, ServerConfig};
use tessera::credentials::Source;
use tessera::gateway::{Gateway, GatewayOverrides};
use tessera::node::Node;
use tessera::server::Server;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Erasure-coded, S3-compatible object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole store in one process over local drive folders.
    Server(ServerArgs),
    /// Run a storage node: serve this node's drives to gateways over the node RPC.
    Node(NodeArgs),
    /// Run a gateway: S3 and admin over the nodes' drives, nothing on local disk.
    Gateway(GatewayArgs),
    /// Ask a running server or gateway's admin API: health, drives, buckets, repair.
    Admin(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Admin API of a server or gateway.
    #[arg(
        long,
        env = "TESSERA_ADMIN_URL",
        default_value = "http://127.0.0.1:9001"
    )]
    url: String,
    /// Admin bearer token (else requests are signed with the root keys).
    #[arg(long, env = "TESSERA_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data folder of a local `tessera server`, whose root-credentials.json signs requests
    /// when neither a token nor TESSERA_ROOT_ACCESS_KEY / TESSERA_ROOT_SECRET_KEY is given.
    #[arg(long, env = "TESSERA_DATA", default_value = "./data")]
    data: PathBuf,
    /// Region the server answers for.
    #[arg(long, env = "TESSERA_REGION", default_value = "us-east-1")]
    region: String,
    /// CA certificates (PEM) that sign an https:// admin URL's certificate [default: the
    /// system's]
    #[arg(long, env = "TESSERA_CA_BUNDLE", value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Cluster health, nodes and the redundancy of every erasure set.
    Status,
    /// Every drive: state, space, errors.
    Drives,
    /// Objects, versions, bytes and uploads in flight per bucket.
    Buckets,
    /// Background repair: status, start a scan, pause, resume.
    Heal {
        #[command(subcommand)]
        command: HealCommand,
    },
    /// Users and their policies.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List users.
    List,
    /// Create a user; prints its keys (the secret only this once).
    Add {
        /// User name.
        name: String,
        /// IAM policy document (JSON file) to attach.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Delete a user.
    Remove {
        /// User name.
        name: String,
    },
    /// Let a disabled user in again.
    Enable {
        /// User name.
        name: String,
    },
    /// Refuse a user's requests (its keys are kept).
    Disable {
        /// User name.
        name: String,
    },
    /// Attach a policy document (JSON file) to a user, replacing its policy.
    Policy {
        /// User name.
        name: String,
        /// Policy file; without it, the user's policy is removed.
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum HealCommand {
    /// Repair status of every set.
    Status {
        /// Follow with progress bars until nothing is running.
        #[arg(long)]
        watch: bool,
    },
    /// Scan now: everything, or a bucket, or a prefix of it.
    Start {
        /// Bucket to scan [default: all]
        #[arg(long)]
        bucket: Option<String>,
        /// Key prefix within the bucket.
        #[arg(long, requires = "bucket")]
        prefix: Option<String>,
        /// Re-read every block to find bitrot.
        #[arg(long)]
        deep: bool,
        /// Follow with progress bars until the scan finishes.
        #[arg(long)]
        wait: bool,
    },
    /// Pause repair (kept across restarts).
    Pause,
    /// Resume repair.
    Resume,
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Cluster topology file (see config/cluster.toml).
    #[arg(long, env = "TESSERA_CONFIG")]
    config: PathBuf,
    /// This node's name in the topology.
    #[arg(long, env = "TESSERA_NODE_NAME")]
    name: String,
    /// RPC listen address [default: the topology's [node] listen, else the node's address]
    #[arg(long, env = "TESSERA_NODE_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// This node's RPC certificate chain (PEM) [default: the topology's [rpc_tls] cert]
    #[arg(long, env = "TESSERA_RPC_TLS_CERT", value_name = "FILE")]
    rpc_tls_cert: Option<PathBuf>,
    /// Its private key (PEM) [default: the topology's [rpc_tls] key]
    #[arg(long, env = "TESSERA_RPC_TLS_KEY", value_name = "FILE")]
    rpc_tls_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct GatewayArgs {
    /// Cluster topology file (see config/cluster.toml).
    #[arg(long, env = "TESSERA_CONFIG")]
    config: PathBuf,
    /// S3 listen address [default: the topology's [gateway] address, else 127.0.0.1:9000]
    #[arg(long, env = "TESSERA_ADDRESS", value_name = "HOST:PORT")]
    address: Option<String>,
    /// Admin listen address [default: [gateway] admin_address, else 127.0.0.1:9001]
    #[arg(long, env = "TESSERA_ADMIN_ADDRESS", value_name = "HOST:PORT")]
    admin_address: Option<String>,
    /// TLS certificate chain (PEM): S3 and admin then speak HTTPS
    #[arg(long, env = "TESSERA_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the certificate
    #[arg(long, env = "TESSERA_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// TOML config file (see config/server.toml).
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Data folder; drives are DIR/drive-0 ... [default: ./data]
    #[arg(long, env = "TESSERA_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Number of drive folders [default: 6]
    #[arg(long, env = "TESSERA_DRIVES", value_name = "N")]
    drives: Option<usize>,
    /// Erasure layout K+M [default: 4+2]
    #[arg(long, env = "TESSERA_EC", value_name = "K+M")]
    ec: Option<String>,
    /// S3 listen address [default: 127.0.0.1:9000]
    #[arg(long, env = "TESSERA_ADDRESS", value_name = "HOST:PORT")]
    address: Option<String>,
    /// Admin listen address [default: 127.0.0.1:9001]
    #[arg(long, env = "TESSERA_ADMIN_ADDRESS", value_name = "HOST:PORT")]
    admin_address: Option<String>,
    /// Region requests are signed for [default: us-east-1]
    #[arg(long, env = "TESSERA_REGION")]
    region: Option<String>,
    /// Base domain for virtual-host-style requests (bucket.DOMAIN)
    #[arg(long, env = "TESSERA_BASE_DOMAIN")]
    base_domain: Option<String>,
    /// TLS certificate chain (PEM): S3 and admin then speak HTTPS
    #[arg(long, env = "TESSERA_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the certificate
    #[arg(long, env = "TESSERA_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colour only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Only a gateway: its node connections' frames were the faults the thresholds remove,
    // while a process with drives keeps the tops of its many arenas at them, which
    // `malloc_trim` does not hand back (docs/decisions.md).
    // SAFETY: no other thread runs yet: the runtime starts below.
    let tuned =
        matches!(cli.command, Command::Gateway(_)).then(|| unsafe { tessera::heap::tune() });
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run(cli, tuned)),
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, heap_tuned: Option<bool>) -> std::process::ExitCode {
    init_logging();
    if heap_tuned == Some(false) {
        tracing::warn!("glibc refused the malloc thresholds: large buffers are mapped afresh");
    }
    match tessera::limits::Limits::from_env() {
        Ok(l) => {
            l.install();
        }
        Err(e) => {
            eprintln!("tessera: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Server(args) => run_server(args).await,
        Command::Node(args) => run_node(args).await,
        Command::Gateway(args) => run_gateway(args).await,
        Command::Admin(args) => run_admin(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig::load(
        args.config.as_deref(),
        Overrides {
            data: args.data,
            drives: args.drives,
            ec: args.ec,
            address: args.address,
            admin_address: args.admin_address,
            region: args.region,
            base_domain: args.base_domain,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
        },
    )?;
    let (data, k, m, drives) = (cfg.data.clone(), cfg.k, cfg.m, cfg.drives);
    let server = Server::start(cfg).await?;
    println!("Tessera {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  data:      {} ({drives} drives, erasure {k}+{m})",
        data.display()
    );
    let scheme = if server.frontend.https() {
        "https"
    } else {
        "http"
    };
    println!("  S3 API:    {scheme}://{}", server.frontend.s3_addr);
    println!("  admin:     {scheme}://{}", server.frontend.admin_addr);
    match server.credentials_source {
        Source::Environment => println!(
            "  root access key: {} (from TESSERA_ROOT_ACCESS_KEY)",
            server.credentials.access_key
        ),
        source => {
            println!("  root access key: {}", server.credentials.access_key);
            println!("  root secret key: {}", server.credentials.secret_key);
            if source == Source::Generated {
                println!(
                    "  (generated once and saved in {}/root-credentials.json, readable by you only)",
                    data.display()
                );
            }
        }
    }
    println!("ready");
    server.frontend.serve().await
}

async fn run_admin(args: AdminArgs) -> anyhow::Result<()> {
    use tessera::admin::client::{Client, Command as C};
    let keys = match args.token {
        Some(_) => None,
        None => Some(tessera::credentials::existing_root(&args.data)?),
    };
    let client = Client {
        url: args.url,
        token: args.token,
        keys,
        region: args.region,
        ca_bundle: args.ca_bundle,
    };
    let command = match args.command {
        AdminCommand::Status => C::Status,
        AdminCommand::Drives => C::Drives,
        AdminCommand::Buckets => C::Buckets,
        AdminCommand::Heal { command } => match command {
            HealCommand::Status { watch } => C::HealStatus { watch },
            HealCommand::Start {
                bucket,
                prefix,
                deep,
                wait,
            } => C::HealStart {
                bucket,
                prefix,
                deep,
                wait,
            },
            HealCommand::Pause => C::HealPause,
            HealCommand::Resume => C::HealResume,
        },
        AdminCommand::User { command } => {
            let read = |f: Option<PathBuf>| -> anyhow::Result<Option<String>> {
                f.map(|f| {
                    std::fs::read_to_string(&f)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))
                })
                .transpose()
            };
            match command {
                UserCommand::List => C::UserList,
                UserCommand::Add { name, policy } => C::UserAdd {
                    name,
                    policy: read(policy)?,
                },
                UserCommand::Remove { name } => C::UserRemove { name },
                UserCommand::Enable { name } => C::UserEnable {
                    name,
                    enabled: true,
                },
                UserCommand::Disable { name } => C::UserEnable {
                    name,
                    enabled: false,
                },
                UserCommand::Policy { name, file } => C::UserPolicy {
                    name,
                    policy: read(file)?,
                },
            }
        }
    };
    client.run(command).await
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let topo = Topology::load(&args.config)?;
    let tls = tessera::config::tls_pair(args.rpc_tls_cert, args.rpc_tls_key)?;
    let node = Node::start(&topo, &args.name, args.listen, tls).await?;
    println!("Tessera {} node {}", env!("CARGO_PKG_VERSION"), args.name);
    let scheme = if topo.rpc_ca().is_some() {
        "https"
    } else {
        "http"
    };
    println!("  node RPC:  {scheme}://{}", node.addr);
    println!(
        "  topology:  {} ({} erasure sets)",
        topo.hash,
        topo.sets.len()
    );
    println!("ready");
    tokio::select! {
        r = node.serve() => r,
        _ = tessera::server::shutdown_signal() => Ok(()),
    }
}

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let topo = Topology::load(&args.config)?;
    let gw = Gateway::start(
        &topo,
        GatewayOverrides {
            address: args.address,
            admin_address: args.admin_address,
            tls: tessera::config::tls_pair(args.tls_cert, args.tls_key)?,
        },
    )
    .await?;
    println!("Tessera {} gateway", env!("CARGO_PKG_VERSION"));
    println!(
        "  nodes:     {} ({} erasure sets of {}+{})",
        topo.file.nodes.len(),
        gw.sets,
        topo.k,
        topo.m
    );
    let scheme = if gw.frontend.https() { "https" } else { "http" };
    println!("  S3 API:    {scheme}://{}", gw.frontend.s3_addr);
    println!("  admin:     {scheme}://{}", gw.frontend.admin_addr);
    println!("ready");
    tessera::heap::spawn_idle_release();
    gw.frontend.serve().await
}
