//! The `tessera` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera::config::{Overrides, ServerConfig};
use tessera::credentials::Source;
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
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => run_server(args).await,
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
        },
    )?;
    let (data, k, m, drives) = (cfg.data.clone(), cfg.k, cfg.m, cfg.drives);
    let server = Server::start(cfg).await?;
    println!("Tessera {}", env!("CARGO_PKG_VERSION"));
    println!(
        "  data:      {} ({drives} drives, erasure {k}+{m})",
        data.display()
    );
    println!("  S3 API:    http://{}", server.s3_addr);
    println!("  admin:     http://{}", server.admin_addr);
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
    server.serve().await
}
