//! `tessera server`: the whole store in one process over local drive folders; and the S3 and
//! admin listeners that it shares with `tessera gateway`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::ServerConfig;
use crate::credentials::{self, Credentials, Source};
use crate::drive::{Drive, LocalDrive};
use crate::erasure::Codec;
use crate::object::{setup, ErasureSet, Repairer, Store};
use crate::s3::{self, S3State};

/// The S3 and admin listeners over a store.
pub struct Frontend {
    /// Bound S3 address.
    pub s3_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    s3: (TcpListener, axum::Router),
    admin: (TcpListener, axum::Router),
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What the listeners serve and where.
pub struct FrontendConfig {
    /// S3 listen address.
    pub address: String,
    /// Admin listen address.
    pub admin_address: String,
    /// Region.
    pub region: String,
    /// Base domain for virtual-host-style requests.
    pub base_domain: Option<String>,
    /// Root credentials.
    pub credentials: Credentials,
    /// Abandoned-upload age.
    pub upload_expiry: std::time::Duration,
    /// Where the repair status of every set comes from.
    pub repair: admin::RepairSource,
    /// Where repair commands go.
    pub control: admin::RepairControl,
    /// Nodes and drives, for the admin API.
    pub layout: admin::Layout,
    /// Admin bearer token, if configured.
    pub admin_token: Option<String>,
    /// TLS certificate and key files, if the listeners speak HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Frontend {
    /// Whether the listeners speak HTTPS.
    pub fn https(&self) -> bool {
        self.tls.is_some()
    }

    /// Binds both listeners and starts the abandoned-upload expiry.
    pub async fn bind(store: Arc<Store>, cfg: FrontendConfig) -> anyhow::Result<Self> {
        let tls = match &cfg.tls {
            Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
            None => None,
        };
        let iam = Arc::new(crate::iam::Iam::new(
            store.clone(),
            &cfg.credentials.secret_key,
        ));
        let s3_state = Arc::new(S3State {
            iam: iam.clone(),
            store: store.clone(),
            region: cfg.region.clone(),
            credentials: HashMap::from([(
                cfg.credentials.access_key.clone(),
                cfg.credentials.secret_key.clone(),
            )]),
            base_domain: cfg.base_domain.clone(),
        });
        spawn_upload_expiry(store.clone(), cfg.upload_expiry);
        let admin_state = Arc::new(AdminState::new(
            store,
            iam,
            cfg.repair,
            cfg.control,
            cfg.layout,
            admin::AdminAuth {
                region: cfg.region.clone(),
                root: cfg.credentials.clone(),
                token: cfg.admin_token.clone(),
            },
        ));
        let s3_listener = TcpListener::bind(&cfg.address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.address))?;
        let admin_listener = TcpListener::bind(&cfg.admin_address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.admin_address))?;
        Ok(Self {
            s3_addr: s3_listener.local_addr()?,
            admin_addr: admin_listener.local_addr()?,
            s3: (s3_listener, s3::router(s3_state)),
            admin: (admin_listener, admin::router(admin_state)),
            tls,
        })
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests finish; with the
    /// connection, header and body limits of `crate::limits`.
    pub async fn serve(self) -> anyhow::Result<()> {
        let (s3_l, s3_r) = self.s3;
        let (admin_l, admin_r) = self.admin;
        let s3 = crate::limits::serve(s3_l, s3_r, self.tls.clone(), shutdown_signal());
        let admin = crate::limits::serve(admin_l, admin_r, self.tls, shutdown_signal());
        tokio::try_join!(s3, admin)?;
        Ok(())
    }
}

/// A started one-process server: drives open, listeners bound.
pub struct Server {
    /// The listeners.
    pub frontend: Frontend,
    /// Root credentials.
    pub credentials: Credentials,
    /// Where they came from.
    pub credentials_source: Source,
    /// Deployment id of the drives.
    pub deployment_id: String,
}

impl Server {
    /// Opens the drives, checks their format records, and binds both listeners.
    pub async fn start(cfg: ServerConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&cfg.data)?;
        let mut local: Vec<Arc<LocalDrive>> = Vec::new();
        for i in 0..cfg.drives {
            let path = cfg.data.join(format!("drive-{i}"));
            let drive = LocalDrive::open(&path)
                .map_err(|e| anyhow::anyhow!("drive {}: {e}", path.display()))?;
            local.push(Arc::new(drive));
        }
        let drives: Vec<Arc<dyn Drive>> =
            local.iter().map(|d| d.clone() as Arc<dyn Drive>).collect();
        let codec = Codec::new(cfg.k, cfg.m, cfg.stripe_size)?;
        let set = ErasureSet::new(drives, codec, cfg.inline_limit);
        let deployment_id = setup::check_formats(set.drives(), 0, set.read_quorum(), None).await?;
        let set = Arc::new(set);
        setup::spawn_drive_watch(
            local
                .into_iter()
                .enumerate()
                .map(|(i, drive)| setup::WatchedDrive {
                    drive,
                    deployment_id: deployment_id.clone(),
                    set: 0,
                    index: i as u32,
                    set_drives: set.drives().to_vec(),
                })
                .collect(),
        );
        // One process holds every drive: it leads the repair of its one set.
        let repair = Repairer::new(
            set.clone(),
            0,
            cfg.repair.clone(),
            Arc::new(|| true),
            Arc::new(crate::load::busy),
        )
        .spawn();
        let store = Arc::new(Store::new(vec![set], deployment_id.clone()));
        let (credentials, credentials_source) = credentials::root(&cfg.data)?;
        let frontend = Frontend::bind(
            store,
            FrontendConfig {
                address: cfg.address.clone(),
                admin_address: cfg.admin_address.clone(),
                region: cfg.region.clone(),
                base_domain: cfg.base_domain.clone(),
                credentials: credentials.clone(),
                upload_expiry: cfg.upload_expiry,
                repair: admin::local_repair(vec![repair.clone()]),
                control: admin::local_control(vec![repair]),
                layout: admin::Layout {
                    mode: "server",
                    nodes: vec![admin::NodeEntry {
                        name: "local".into(),
                        address: "local".into(),
                    }],
                    sets: vec![vec![0; cfg.drives]],
                },
                admin_token: cfg.admin_token.clone(),
                tls: cfg.tls.clone(),
            },
        )
        .await?;
        Ok(Self {
            frontend,
            credentials,
            credentials_source,
            deployment_id,
        })
    }
}

/// Aborts abandoned multipart uploads: at start, then every hour (or every `max_age`, when
/// shorter).
fn spawn_upload_expiry(store: Arc<Store>, max_age: std::time::Duration) {
    let period = max_age.clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(3600),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            match store.expire_uploads(max_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "aborted abandoned multipart uploads"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
