//! The host side of the serial console: the terminal's mode, and stdin
//! bytes carried to COM1.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use tracing::{debug, warn};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::terminal::Terminal;

use crate::device_manager::Com1;

const STDIN: RawFd = libc::STDIN_FILENO;

/// Puts the terminal in raw mode while the guest owns it, so keys reach
/// the guest as typed, and restores the mode it found on drop.
pub(crate) struct TerminalGuard {
    saved: Option<libc::termios>,
}

impl TerminalGuard {
    pub(crate) fn new() -> Self {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(STDIN) } != 1 {
            return TerminalGuard { saved: None };
        }
        // SAFETY: termios is plain data, filled by tcgetattr below.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid termios for tcgetattr to write.
        if unsafe { libc::tcgetattr(STDIN, &mut saved) } != 0 {
            return TerminalGuard { saved: None };
        }
        if let Err(e) = std::io::stdin().lock().set_raw_mode() {
            warn!("cannot put the terminal in raw mode: {e}");
            return TerminalGuard { saved: None };
        }
        TerminalGuard { saved: Some(saved) }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.as_ref() {
            // SAFETY: restores a termios that tcgetattr returned for this fd.
            unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, saved) };
        }
    }
}

/// Turns the console's input on and off: off while the machine is
/// paused, so that no key changes the serial port's state meanwhile.
pub(crate) struct InputSwitch {
    on: AtomicBool,
    /// Wakes the event loop to act on a change.
    changed: EventFd,
}

impl InputSwitch {
    pub(crate) fn new() -> crate::Result<InputSwitch> {
        Ok(InputSwitch {
            on: AtomicBool::new(true),
            changed: crate::device_manager::eventfd("create the console input switch eventfd")?,
        })
    }

    pub(crate) fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
        // The loop also looks at the switch on its next stdin event.
        let _ = self.changed.write(1);
    }

    fn is_on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }
}

/// Carries host stdin to COM1, holding input back while the guest's
/// receive FIFO is full or the input is switched off.
pub(crate) struct ConsoleInput {
    com1: Arc<Mutex<Com1>>,
    drained: EventFd,
    switch: Arc<InputSwitch>,
    pending: Vec<u8>,
    reading_stdin: bool,
}

impl ConsoleInput {
    pub(crate) fn new(com1: Arc<Mutex<Com1>>, drained: EventFd, switch: Arc<InputSwitch>) -> Self {
        ConsoleInput {
            com1,
            drained,
            switch,
            pending: Vec::new(),
            reading_stdin: false,
        }
    }

    fn stdin_events() -> Events {
        Events::new_raw(STDIN, EventSet::IN)
    }

    /// Offers pending input to the guest; true when all of it was taken.
    fn flush_pending(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        if !self.switch.is_on() {
            return false;
        }
        let taken = devices::bus::lock(&self.com1).enqueue_input(&self.pending);
        self.pending.drain(..taken);
        self.pending.is_empty()
    }

    fn read_stdin(&mut self, ops: &mut EventOps) {
        let mut buf = [0u8; 64];
        // SAFETY: stdin stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(STDIN) };
        // SAFETY: reads into a buffer we own, of the length we pass.
        let n = unsafe { libc::read(stdin.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => {
                debug!("stdin closed");
                self.stop_reading(ops);
            }
            n if n < 0 => {
                let err = std::io::Error::last_os_error();
                if err.kind() != ErrorKind::Interrupted && err.kind() != ErrorKind::WouldBlock {
                    warn!("cannot read stdin: {err}");
                    self.stop_reading(ops);
                }
            }
            n => {
                self.pending.extend_from_slice(&buf[..n as usize]);
                if !self.flush_pending() {
                    // Wait for the guest to drain the FIFO before reading more.
                    self.stop_reading(ops);
                }
            }
        }
    }

    fn stop_reading(&mut self, ops: &mut EventOps) {
        if self.reading_stdin {
            let _ = ops.remove(Self::stdin_events());
            self.reading_stdin = false;
        }
    }

    fn start_reading(&mut self, ops: &mut EventOps) {
        if !self.reading_stdin && self.switch.is_on() {
            match ops.add(Self::stdin_events()) {
                Ok(()) => self.reading_stdin = true,
                // /dev/null and regular files cannot be polled: no input.
                Err(e) => debug!("stdin is not pollable, the guest gets no input: {e}"),
            }
        }
    }
}

impl MutEventSubscriber for ConsoleInput {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.drained, EventSet::IN)) {
            warn!("cannot watch the serial input FIFO: {e}");
        }
        if let Err(e) = ops.add(Events::new(&self.switch.changed, EventSet::IN)) {
            warn!("cannot watch the console input switch: {e}");
        }
        self.start_reading(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.switch.changed.as_raw_fd() {
            let _ = self.switch.changed.read();
            if !self.switch.is_on() {
                self.stop_reading(ops);
            } else if self.flush_pending() {
                self.start_reading(ops);
            }
        } else if events.fd() == self.drained.as_raw_fd() {
            let _ = self.drained.read();
            if self.flush_pending() {
                self.start_reading(ops);
            }
        } else if events.fd() == STDIN {
            if events.event_set().contains(EventSet::IN) {
                self.read_stdin(ops);
            } else {
                // Hang-up or error with nothing left to read.
                self.stop_reading(ops);
            }
        }
    }
}
