use std::path::{Path, PathBuf};

/// Why a VMM could not be jailed. [`JailError::is_bad_input`] tells the
/// user's mistakes (exit status 2, nothing changed on the host) from the
/// host's failures.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("--id {0:?}: an id is 1 to 64 letters, digits, '-' or '_'")]
    BadId(String),
    #[error("--uid 0 or --gid 0 runs the VMM as root: give --allow-root to mean it")]
    RootUser,
    #[error("--chroot-base {0}: not a directory")]
    BaseNotDirectory(PathBuf),
    #[error("--chroot-base {0}: a relative path (give an absolute one)")]
    BaseRelative(PathBuf),
    #[error("{what} {path}: {source}")]
    MissingFile {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: not a regular file or block device")]
    NotAFile { what: String, path: PathBuf },
    #[error("{what} {path}: user {uid} cannot {access} it (owner {owner}, mode {mode:o}): chown it to that user or its group")]
    NoAccess {
        what: String,
        path: PathBuf,
        uid: u32,
        access: &'static str,
        owner: u32,
        mode: u32,
    },
    #[error("two of the VM's files are both {0} in the jail")]
    SameName(String),
    #[error("--net tap={0}: not a TAP name (1 to 15 characters, no '/', ':' or spaces)")]
    BadTap(String),
    #[error("--netns {path}: {source}")]
    NetNs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--cgroup {0:?}: not FILE=VALUE with FILE like cpu.shares or memory.max")]
    BadCgroup(String),
    #[error("--parent-cgroup {0:?}: a relative path of names, no '..'")]
    BadParentCgroup(String),
    #[error("--resource-limit {0:?}: {1}")]
    BadLimit(String, &'static str),
    #[error("cgroup v{version}: no {controller} controller is mounted at {path}")]
    NoController {
        version: u8,
        controller: String,
        path: PathBuf,
    },
    #[error("the jail {0} exists already: another VMM has that --id (remove it first)")]
    Exists(PathBuf),
    #[error("cannot {what} {path}: {source}")]
    Host {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    System {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("an argument holds a NUL byte")]
    NulInArgument,
    #[error("cannot start the VMM in the jail: {0}")]
    Exec(#[source] std::io::Error),
}

impl JailError {
    pub(crate) fn host(what: &'static str, path: &Path, source: std::io::Error) -> JailError {
        JailError::Host {
            what,
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn system(what: &'static str) -> impl FnOnce(nix::Error) -> JailError {
        move |source| JailError::System { what, source }
    }

    /// The user's mistake, found before anything changed on the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            JailError::BadId(_)
                | JailError::RootUser
                | JailError::BaseNotDirectory(_)
                | JailError::BaseRelative(_)
                | JailError::MissingFile { .. }
                | JailError::NotAFile { .. }
                | JailError::NoAccess { .. }
                | JailError::SameName(_)
                | JailError::NetNs { .. }
                | JailError::BadTap(_)
                | JailError::BadCgroup(_)
                | JailError::BadParentCgroup(_)
                | JailError::BadLimit(..)
                | JailError::NoController { .. }
                | JailError::Exists(_)
                | JailError::NulInArgument
        )
    }
}
