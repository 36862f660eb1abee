//! The listening socket's file: taking over a stale one, refusing a live
//! one, and removing ours (and only ours) at shutdown.

use std::fs::{self, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::ApiError;

/// The socket file we created, told apart from one that replaced it later
/// by its device and inode numbers.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still the one we bound.
    pub(crate) fn remove(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a non-blocking listener on `path`, readable and writable by its
/// owner only. A socket file left by a server that is gone is removed
/// first (as Firecracker does); one a live server answers on is refused.
pub(crate) fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ApiError> {
    let path_buf = path.to_path_buf();
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ApiError::NotASocket { path: path_buf })
        }
        Ok(_) => {
            if UnixStream::connect(path).is_ok() {
                return Err(ApiError::SocketInUse { path: path_buf });
            }
            fs::remove_file(path).map_err(|source| ApiError::RemoveStale {
                path: path_buf.clone(),
                source,
            })?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        // Let bind say what is wrong with the path.
        Err(_) => {}
    }
    let bind_error = |source| ApiError::Bind {
        path: path_buf.clone(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    let file = (|| {
        fs::set_permissions(path, Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let meta = fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path_buf.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    })();
    match file {
        Ok(file) => Ok((listener, file)),
        Err(source) => {
            let _ = fs::remove_file(path);
            Err(bind_error(source))
        }
    }
}
