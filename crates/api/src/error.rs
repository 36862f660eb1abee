//! Why the API server could not start.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("API socket {} is in use by a running server", path.display())]
    SocketInUse { path: PathBuf },
    #[error("API socket path {} exists and is not a socket", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot remove the stale API socket {}: {source}", path.display())]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot create the API socket {}: {source}", path.display())]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set up the API server's {what}: {source}")]
    Setup {
        what: &'static str,
        source: io::Error,
    },
    #[error("cannot start the API server thread: {0}")]
    Spawn(io::Error),
}
