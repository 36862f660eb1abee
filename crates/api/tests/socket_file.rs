//! The API socket's file: stale ones replaced, live ones and other files
//! refused, owner-only permissions, removed at shutdown.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

use api::{start, ApiError, ServerOptions};
use common::Client;
use vmm_sys_util::tempdir::TempDir;

#[test]
fn stale_socket_is_replaced_and_removed_at_shutdown() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    // A server that died leaves its socket file behind.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (handle, receiver) = start(&path, ServerOptions::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let vmm = std::thread::spawn(move || {
        if let Some(pending) = receiver.recv() {
            pending.respond(api::ApiResponse::no_content());
        }
    });
    assert_eq!(Client::connect(&path).request("PUT", "/x", "").status, 204);
    assert_eq!(handle.socket_path(), path);
    drop(handle);
    assert!(!path.exists());
    // The server thread ended: the VMM side sees the channel close.
    vmm.join().unwrap();
}

#[test]
fn a_live_servers_socket_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    let (first, _receiver) = start(&path, ServerOptions::default()).unwrap();
    let err = start(&path, ServerOptions::default()).unwrap_err();
    assert!(matches!(err, ApiError::SocketInUse { .. }), "{err}");
    assert!(err.to_string().contains("in use"));
    // The first server still owns and serves its socket.
    assert!(path.exists());
    drop(first);
    assert!(!path.exists());
}

#[test]
fn other_files_and_bad_paths_are_refused() {
    let dir = TempDir::new().unwrap();
    let file = dir.as_path().join("config.json");
    std::fs::write(&file, "{}").unwrap();
    let err = start(&file, ServerOptions::default()).unwrap_err();
    assert!(matches!(err, ApiError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}");

    let missing = dir.as_path().join("no-such-dir").join("api.sock");
    let err = start(&missing, ServerOptions::default()).unwrap_err();
    assert!(matches!(err, ApiError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"));
}

#[test]
fn shutdown_leaves_a_socket_that_replaced_ours() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    let (handle, _receiver) = start(&path, ServerOptions::default()).unwrap();
    std::fs::remove_file(&path).unwrap();
    let _other = UnixListener::bind(&path).unwrap();
    drop(handle);
    assert!(path.exists(), "removed another server's socket");
}
