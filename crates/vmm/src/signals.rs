//! SIGTERM and SIGINT: the host asks the VMM to end. The handler only
//! records the signal and wakes the machine's event loop, which then stops
//! the machine as a power-off would and ends the run with
//! [`Error::Stopped`].

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::{Error, Result};

/// The signals that end a run.
pub const STOP_SIGNALS: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

/// The first stop signal received, or 0.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The eventfd the handler writes to; -1 until installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Keeps that eventfd open for the life of the process.
static WAKE: OnceLock<EventFd> = OnceLock::new();

extern "C" fn on_stop_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: an atomic and a write(2).
    let _ = RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live local to an eventfd that
        // stays open for the life of the process (`WAKE`).
        unsafe { libc::write(fd, std::ptr::addr_of!(one).cast(), 8) };
    }
}

/// Installs the handlers once per process; later calls do nothing.
pub(crate) fn install() -> Result<()> {
    if WAKE.get().is_some() {
        return Ok(());
    }
    let evt = EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host {
        what: "create the stop-signal eventfd",
        source,
    })?;
    let evt = WAKE.get_or_init(|| evt);
    WAKE_FD.store(evt.as_raw_fd(), Ordering::SeqCst);
    for signal in STOP_SIGNALS {
        // SAFETY: an all-zero sigaction is valid; the handler does only
        // async-signal-safe work; SA_RESTART keeps other threads' system
        // calls from failing with EINTR.
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if result != 0 {
            return Err(Error::Host {
                what: "install the stop-signal handler",
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// The stop signal received so far, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Readable once a stop signal came (clear it with [`clear_wake`]).
pub(crate) fn wake_fd() -> Option<RawFd> {
    WAKE.get().map(AsRawFd::as_raw_fd)
}

/// Clears the wake-up; the received signal stays recorded.
pub(crate) fn clear_wake() {
    if let Some(evt) = WAKE.get() {
        let _ = evt.read();
    }
}

/// A signal's name, for the message that ends the run.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_signal_is_recorded_and_wakes_the_loop() {
        install().unwrap();
        install().unwrap();
        // SAFETY: raising a signal whose handler is installed above.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        assert_eq!(received(), Some(libc::SIGTERM));
        let evt = WAKE.get().unwrap();
        assert_eq!(evt.read().unwrap(), 1);
        assert_eq!(signal_name(libc::SIGINT), "SIGINT");
    }
}
