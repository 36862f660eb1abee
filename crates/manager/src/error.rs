//! Everything that can go wrong in the daemon or its client, each saying
//! what and with which value.

use std::path::PathBuf;

use api::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("name {0:?}: a guest's name is 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("size {0:?}: expected a number with K, M, G or T (a bare number is MiB)")]
    BadSize(String),
    #[error("--capacity {0:?}: expected cpus=N,memory=SIZE (either may be left out)")]
    BadCapacity(String),
    #[error("--overcommit {0:?}: expected cpu=R,memory=R with R a ratio of at least 1")]
    BadOvercommit(String),
    #[error("--uid-range {0:?}: expected FIRST-LAST, both above 0, FIRST <= LAST")]
    BadUidRange(String),
    #[error("--console-log-max {0:?}: expected a size of at least 4K")]
    BadConsoleLogMax(String),
    #[error("{0}")]
    BadGuest(String),
    #[error("the request body is not a guest description: {0}")]
    BadJson(String),
    #[error("no guest named {0:?}")]
    UnknownGuest(String),
    #[error("a guest named {0:?} exists already")]
    Duplicate(String),
    /// One line naming what is short, e.g. "memory: 1536 MiB asked, 1024
    /// MiB left of 2048 MiB".
    #[error("{0}")]
    Admission(String),
    #[error("snapshot directory {}: {why}", dir.display())]
    SnapshotDir { dir: PathBuf, why: String },
    #[error("guest {0:?} is running: stop or kill it first")]
    StillRunning(String),
    #[error("guest {0:?} is not running")]
    NotRunning(String),
    #[error("no uid is free in the range {first}-{last}: every one has a guest")]
    NoFreeUid { first: u32, last: u32 },
    #[error("guest {name:?} did not start: {reason}")]
    StartFailed { name: String, reason: String },
    #[error("guest {name:?}'s VMM refused {what}: {message}")]
    Vmm {
        name: String,
        what: &'static str,
        message: String,
    },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another pointsman serve holds the state directory {} (its lock {} is taken)", dir.display(), dir.join(crate::state_dir::LOCK_FILE).display())]
    Locked { dir: PathBuf },
    #[error("cannot serve the API: {0}")]
    Api(#[from] api::ApiError),
    #[error("cannot reach {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("a malformed answer from {}: {what}", path.display())]
    BadResponse { path: PathBuf, what: String },
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
}

impl ManagerError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ManagerError::Io { what, path, source }
    }

    /// The user's mistake, as the client's exit status 2 says: refused by
    /// the daemon with a 4xx, or found bad before asking it.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ManagerError::Refused { status, .. } => (400..500).contains(status),
            ManagerError::Connect { .. }
            | ManagerError::BadResponse { .. }
            | ManagerError::Io { .. }
            | ManagerError::Api(_) => false,
            other => other.status() != StatusCode::InternalServerError,
        }
    }

    /// The HTTP status the daemon answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            ManagerError::UnknownGuest(_) => StatusCode::NotFound,
            ManagerError::Console(e) => e.status(),
            ManagerError::Io { .. } | ManagerError::Api(_) | ManagerError::Locked { .. } => {
                StatusCode::InternalServerError
            }
            _ => StatusCode::BadRequest,
        }
    }
}
