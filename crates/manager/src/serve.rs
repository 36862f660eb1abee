//! `pointsman serve`'s loop. Two threads: the `api` crate's server thread
//! (an epoll loop over the socket and its connections, the one the VMM
//! uses) and this one, which owns the guests and answers one request at a
//! time, checking on the guests between requests and at least every
//! [`TICK`]. One thread for the guests keeps their state free of locks;
//! what can take long (a stop's grace period) waits in [`Daemon::tick`],
//! not in a request, so no request holds up the others for long.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::daemon::{Daemon, Settings};
use crate::state_dir::StateDir;
use crate::ManagerError;

pub const DEFAULT_SOCKET: &str = "/run/pointsman/pointsman.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pointsman";

/// How often guests are checked when no request comes.
const TICK: Duration = Duration::from_millis(200);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Where the daemon listens and keeps its state.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub settings: Settings,
}

/// Runs the daemon until SIGTERM or SIGINT. The guests run on.
pub fn serve(options: ServeOptions) -> Result<(), ManagerError> {
    // The lock first: a second daemon must not touch the socket.
    let state = StateDir::open(&options.state_dir)?;
    if let Some(parent) = options.socket.parent() {
        std::fs::create_dir_all(parent).map_err(ManagerError::io("create", parent))?;
    }
    let mut daemon = Daemon::new(options.settings, state)?;
    let (server, requests) = api::start(&options.socket, api::ServerOptions::default())?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(signal, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
    tracing::info!("listening on {}", server.socket_path().display());
    while !STOP.load(Ordering::Relaxed) {
        if let Some(pending) = requests.recv_timeout(TICK) {
            let response = crate::routes::handle(&mut daemon, &pending.request);
            pending.respond(response);
        }
        daemon.tick();
    }
    tracing::info!("stopping; the guests run on");
    Ok(())
}
