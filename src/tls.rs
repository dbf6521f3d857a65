//! TLS with rustls (ring): the acceptor of the HTTPS listeners (S3, admin, node RPC) and the
//! client configuration of node RPC and `tessera admin`, from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("TLS certificate {}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// A TLS acceptor for the certificate chain and private key in the PEM files `cert` and
/// `key`, offering HTTP/2 and HTTP/1.1.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("TLS key {}: {e}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("TLS certificate and key do not go together: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// A client configuration that trusts exactly the CA certificates in the PEM file `ca` (none
/// without it: for a client that only speaks plain HTTP).
pub fn client_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in certificates(ca)? {
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("CA certificate {}: {e}", ca.display()))?;
        }
    }
    trusting(roots)
}

/// A client configuration that trusts the system's CA certificates (Debian's
/// `ca-certificates`), as a browser or aws-cli does.
pub fn system_client_config() -> anyhow::Result<rustls::ClientConfig> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        anyhow::bail!(
            "TLS: no system CA certificates found ({} errors): pass --ca-bundle",
            found.errors.len()
        );
    }
    trusting(roots)
}

fn trusting(roots: rustls::RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The TLS failure (a certificate that does not verify, a handshake refused) behind a
/// client error, if that is what it is; `None` for other failures (refused, timed out).
pub fn failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t.to_string());
    }
    // An `io::Error` reports its inner error's source, not the inner error itself: look inside.
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        if let Some(t) = failure(inner) {
            return Some(t);
        }
    }
    e.source().and_then(failure)
}
