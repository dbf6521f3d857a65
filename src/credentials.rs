//! Root credentials: from `TESSERA_ROOT_ACCESS_KEY` / `TESSERA_ROOT_SECRET_KEY`, else from
//! `<data>/root-credentials.json` (owner-only), generated there once on first start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};

/// An access key pair.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
}

/// Where the credentials came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The environment.
    Environment,
    /// The file under the data folder.
    File,
    /// Generated now and written to the file.
    Generated,
}

const FILE: &str = "root-credentials.json";

/// Credentials from the environment, else from the file; `None` when neither has them.
fn lookup(data: &Path) -> anyhow::Result<Option<(Credentials, Source)>> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (
        env("TESSERA_ROOT_ACCESS_KEY"),
        env("TESSERA_ROOT_SECRET_KEY"),
    ) {
        (Some(access_key), Some(secret_key)) => {
            return Ok(Some((
                Credentials {
                    access_key,
                    secret_key,
                },
                Source::Environment,
            )))
        }
        (None, None) => {}
        _ => anyhow::bail!(
            "set both TESSERA_ROOT_ACCESS_KEY and TESSERA_ROOT_SECRET_KEY, or neither"
        ),
    }
    let path = data.join(FILE);
    if path.exists() {
        let mode = std::fs::metadata(&path)?.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} is readable by others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
        let creds: Credentials = serde_json::from_slice(&std::fs::read(&path)?)?;
        return Ok(Some((creds, Source::File)));
    }
    Ok(None)
}

/// The root credentials from the environment or `<data>/root-credentials.json`, for a
/// client of a running server (`tessera admin`); never generates them.
pub fn existing_root(data: &Path) -> anyhow::Result<Credentials> {
    lookup(data)?.map(|(c, _)| c).ok_or_else(|| {
        anyhow::anyhow!(
            "no credentials: give --token (or TESSERA_ADMIN_TOKEN), set TESSERA_ROOT_ACCESS_KEY and TESSERA_ROOT_SECRET_KEY, or point --data at the server's data folder"
        )
    })
}

/// Resolves the root credentials for a server whose data folder is `data`.
pub fn root(data: &Path) -> anyhow::Result<(Credentials, Source)> {
    if let Some(found) = lookup(data)? {
        return Ok(found);
    }
    let path = data.join(FILE);
    let creds = Credentials {
        access_key: format!(
            "TS{}",
            Alphanumeric
                .sample_string(&mut rand::thread_rng(), 18)
                .to_uppercase()
        ),
        secret_key: Alphanumeric.sample_string(&mut rand::thread_rng(), 40),
    };
    std::fs::create_dir_all(data)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&serde_json::to_vec_pretty(&creds)?)?;
    f.sync_all()?;
    Ok((creds, Source::Generated))
}
