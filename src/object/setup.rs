//! Start-up of an erasure set: every drive's format record is read; blank drives are formatted
//! into the deployment; a drive from another deployment, or in the wrong place, stops start-up.

use std::sync::Arc;

use futures::future::join_all;

use crate::drive::record::RECORD_VERSION;
use crate::drive::{Drive, FormatRecord};

/// Why a set could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Drives disagree on the deployment or sit in the wrong position.
    #[error("{0}")]
    Foreign(String),
    /// Too few drives could be read or formatted.
    #[error("{0}")]
    Quorum(String),
}

/// Checks (and, for blank drives, writes) the format records of the drives of set `set`.
/// Returns the deployment id (`expected`, when the topology names it). Unreadable drives are
/// tolerated down to `quorum`.
pub async fn check_formats(
    drives: &[Arc<dyn Drive>],
    set: u32,
    quorum: usize,
    expected: Option<&str>,
) -> Result<String, SetupError> {
    let formats = join_all(drives.iter().map(|d| d.read_format())).await;
    let mut deployment: Option<String> = expected.map(str::to_string);
    for (pos, f) in formats.iter().enumerate() {
        if let Ok(Some(f)) = f {
            match &deployment {
                None => deployment = Some(f.deployment_id.clone()),
                Some(d) if *d != f.deployment_id => {
                    return Err(SetupError::Foreign(format!(
                    "drive {} belongs to deployment {}, but other drives to {d}: refusing to start",
                    drives[pos].endpoint(),
                    f.deployment_id
                )))
                }
                Some(_) => {}
            }
            if f.set != set || f.index as usize != pos {
                return Err(SetupError::Foreign(format!(
                    "drive {} was formatted as set {} position {}, but is configured as set {set} position {pos}: refusing to start",
                    drives[pos].endpoint(),
                    f.set,
                    f.index
                )));
            }
        }
    }
    let deployment = deployment.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut usable = 0;
    for (pos, f) in formats.into_iter().enumerate() {
        match f {
            Ok(Some(_)) => usable += 1,
            Ok(None) => {
                let rec = FormatRecord {
                    version: RECORD_VERSION,
                    deployment_id: deployment.clone(),
                    set,
                    index: pos as u32,
                    drive_id: uuid::Uuid::new_v4().to_string(),
                };
                match drives[pos].write_format(&rec).await {
                    Ok(()) => {
                        tracing::info!(drive = %drives[pos].endpoint(), "formatted blank drive");
                        usable += 1;
                    }
                    Err(e) => {
                        tracing::error!(drive = %drives[pos].endpoint(), error = %e, "cannot format drive")
                    }
                }
            }
            Err(e) => {
                tracing::error!(drive = %drives[pos].endpoint(), error = %e, "cannot read format record")
            }
        }
    }
    if usable < quorum {
        return Err(SetupError::Quorum(format!(
            "only {usable} of {} drives usable, need {quorum}",
            drives.len()
        )));
    }
    Ok(deployment)
}
