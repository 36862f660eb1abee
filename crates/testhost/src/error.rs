use std::path::PathBuf;

/// What stopped the test host from running a test.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "Debian package {0} not found in the apt lists (is apt-get update run and the network up?)"
    )]
    PackageMissing(String),
    #[error("kernel module {0} not found in the kernel package")]
    ModuleMissing(String),
    #[error("the test host did not finish within {seconds} s; last console lines:\n{tail}")]
    Timeout { seconds: u64, tail: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
