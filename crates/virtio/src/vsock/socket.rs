//! The host's Unix sockets: the one host programs connect through, and
//! non-blocking connects to the ones guest connections go to.

use std::io::ErrorKind;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Why the host socket cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    #[error("{0} is in use by another program")]
    InUse(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The socket host programs connect through; its file goes when it does.
#[derive(Debug)]
pub struct HostSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl HostSocket {
    /// Listens on `path`, replacing a stale socket file that nobody
    /// listens on (left by a VMM that was killed).
    pub fn bind(path: &Path) -> Result<HostSocket, SocketError> {
        let bind_error = |source| SocketError::Bind {
            path: path.to_owned(),
            source,
        };
        let listener = match UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                let is_socket = std::fs::symlink_metadata(path)
                    .map(|m| m.file_type().is_socket())
                    .unwrap_or(false);
                if !is_socket {
                    return Err(SocketError::NotASocket(path.to_owned()));
                }
                match connect_nonblocking(path) {
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        std::fs::remove_file(path).map_err(bind_error)?;
                        UnixListener::bind(path).map_err(bind_error)?
                    }
                    _ => return Err(SocketError::InUse(path.to_owned())),
                }
            }
            Err(e) => return Err(bind_error(e)),
        };
        listener.set_nonblocking(true).map_err(bind_error)?;
        Ok(HostSocket {
            listener,
            path: path.to_owned(),
        })
    }

    /// Another handle on the listening socket, for the device's worker.
    pub fn listener(&self) -> std::io::Result<UnixListener> {
        self.listener.try_clone()
    }
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to the Unix socket at `path` without waiting: a listener
/// whose backlog is full counts as refusing, so a host program that does
/// not accept cannot stall the device.
pub fn connect_nonblocking(path: &Path) -> std::io::Result<UnixStream> {
    // SAFETY: sockaddr_un is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family =
        libc::sa_family_t::try_from(libc::AF_UNIX).map_err(|_| ErrorKind::Unsupported)?;
    let bytes = path.as_os_str().as_bytes();
    // Keep the terminating NUL that the zeroed address provides.
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(ErrorKind::InvalidInput.into());
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_un>())
        .map_err(|_| ErrorKind::Unsupported)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes, only read.
    let rc = unsafe {
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // A full backlog (EAGAIN) is a refusal here, never a wait.
        return Err(match e.kind() {
            ErrorKind::WouldBlock => ErrorKind::ConnectionRefused.into(),
            _ => e,
        });
    }
    Ok(UnixStream::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("vsock-socket-{}-{name}", std::process::id()))
    }

    #[test]
    fn binds_replaces_stale_sockets_and_cleans_up() {
        let path = temp("stale");
        let _ = std::fs::remove_file(&path);
        // A socket file nobody listens on any more.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let socket = HostSocket::bind(&path).unwrap();
        assert!(matches!(
            HostSocket::bind(&path),
            Err(SocketError::InUse(_))
        ));
        let stream = connect_nonblocking(&path).unwrap();
        let (accepted, _) = socket.listener().unwrap().accept().unwrap();
        drop((stream, accepted));
        drop(socket);
        assert!(!path.exists(), "removed on drop");
    }

    #[test]
    fn refuses_files_that_are_not_sockets() {
        let path = temp("file");
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            HostSocket::bind(&path),
            Err(SocketError::NotASocket(_))
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn connect_fails_fast_without_a_listener_or_with_a_bad_path() {
        let e = connect_nonblocking(&temp("nobody")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let long = PathBuf::from("/".repeat(200));
        assert_eq!(
            connect_nonblocking(&long).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
