//! `pointsman vm logs --follow` and `pointsman vm console`: a guest's
//! serial console through the daemon. Output is the guest's log, read on
//! from where the last read ended every [`POLL`]; input goes to the
//! daemon, which writes it into the FIFO the guest's VMM reads.

use std::io::{ErrorKind, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use manager::client::Client;
use manager::ManagerError;

use crate::detach_key::DetachKey;
use crate::raw_terminal::RawTerminal;

/// How often the log is read for new output.
const POLL: Duration = Duration::from_millis(150);
/// How much recent output `vm console` shows first.
const RECENT_BYTES: u64 = 2048;
/// Where `vm logs --follow` starts: as far back as plain `vm logs` shows.
const LOGS_BYTES: u64 = 1 << 20;
/// The daemon's answer to input that does not fit in the guest's FIFO.
const INPUT_FULL: u16 = 503;

const STDIN: RawFd = libc::STDIN_FILENO;

/// What a `pointsman vm` command can fail with: the daemon's errors and,
/// for the console, the terminal's.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Manager(#[from] ManagerError),
    #[error("cannot write the guest's output: {0}")]
    Output(std::io::Error),
    #[error("cannot read the console's input: {0}")]
    Input(std::io::Error),
    #[error("cannot put the terminal in raw mode: {0}")]
    Terminal(std::io::Error),
}

impl VmError {
    /// The user's mistake (exit status 2), as [`ManagerError::is_bad_input`].
    pub fn is_bad_input(&self) -> bool {
        match self {
            VmError::Manager(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// `vm logs NAME --follow`: the log so far, then its new output until the
/// guest has ended and all of it is printed.
pub fn follow_logs(client: &Client, name: &str) -> Result<(), VmError> {
    let mut follower = LogFollower::near_end(client, name, LOGS_BYTES, false)?;
    let mut out = std::io::stdout().lock();
    while !follower.pump(&mut out)? {
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// How a console session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Detached,
    GuestEnded,
    /// The terminal went away.
    InputClosed,
    Signal(libc::c_int),
}

/// `vm console NAME`: recent output, then the guest's output as it comes
/// and input to the guest, until the detach key, the guest's end or a
/// signal. The guest runs on after a detach.
pub fn console(client: &Client, name: &str, key: DetachKey) -> Result<(), VmError> {
    let shown = client.show(name)?;
    if shown["state"] == "stopped" {
        return Err(ManagerError::NotRunning(name.to_owned()).into());
    }
    let mut follower = LogFollower::near_end(client, name, RECENT_BYTES, true)?;
    eprintln!("connected to {name}; {key} detaches");
    let signals = SignalCatcher::install();
    let terminal = RawTerminal::enter().map_err(VmError::Terminal)?;
    let interactive = terminal.is_some();
    let end = attach(&mut follower, key, interactive);
    // The terminal comes back before anything else is said, on errors too.
    drop(terminal);
    let end = end?;
    let line_start = if follower.at_line_start { "" } else { "\n" };
    match end {
        End::Detached => eprintln!("{line_start}detached from {name}; it runs on"),
        End::GuestEnded => {
            let reason = client
                .show(name)
                .ok()
                .and_then(|s| s["exit"]["reason"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "stopped".to_owned());
            eprintln!("{line_start}guest {name} has ended: {reason}");
        }
        End::InputClosed => eprintln!("{line_start}the terminal closed; {name} runs on"),
        End::Signal(signal) => {
            drop(signals);
            // Ends as the signal would have ended it, now that the
            // terminal is restored.
            // SAFETY: raise with the signal's own disposition restored.
            unsafe { libc::raise(signal) };
        }
    }
    Ok(())
}

/// The session's loop: stdin to the guest, the log to stdout. Input the
/// guest has no room for yet waits here, in [`Input`], while keys are
/// still read: the detach key always works, even with a paused guest.
fn attach(follower: &mut LogFollower, key: DetachKey, interactive: bool) -> Result<End, VmError> {
    let mut out = std::io::stdout().lock();
    if follower.pump(&mut out)? {
        return Ok(End::GuestEnded);
    }
    let mut input = Input::default();
    let mut reading = true;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(signal) = SignalCatcher::caught() {
            return Ok(End::Signal(signal));
        }
        let wants_input = reading && input.pending.len() < MAX_PENDING;
        if wants_input && stdin_ready(POLL) {
            match read_stdin(&mut buf) {
                Ok(0) if interactive => return Ok(End::InputClosed),
                // A pipe's end: output is still followed.
                Ok(0) => reading = false,
                Ok(n) => {
                    let bytes = &buf[..n];
                    match key.find_in(bytes) {
                        Some(at) => {
                            input.pending.extend_from_slice(&bytes[..at]);
                            input.send(follower)?;
                            input.warn_unsent();
                            return Ok(End::Detached);
                        }
                        None => input.pending.extend_from_slice(bytes),
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) if interactive => return Err(VmError::Input(e)),
                Err(_) => reading = false,
            }
        } else if !wants_input {
            std::thread::sleep(POLL);
        }
        if let Err(e) = input.send(follower) {
            // Refused because the guest just ended: say so, after its
            // last output.
            return match follower.pump(&mut out)? {
                true => Ok(End::GuestEnded),
                false => Err(e),
            };
        }
        if follower.pump(&mut out)? {
            return Ok(End::GuestEnded);
        }
    }
}

/// Most input read ahead of what the guest has taken: stdin is left
/// unread past this (a pipe then waits).
const MAX_PENDING: usize = 1 << 20;

/// Input read and not yet taken by the guest.
#[derive(Default)]
struct Input {
    pending: Vec<u8>,
}

impl Input {
    /// Sends what the guest has room for, without waiting.
    fn send(&mut self, follower: &LogFollower) -> Result<(), VmError> {
        while !self.pending.is_empty() {
            match follower.client.send_console(follower.name, &self.pending) {
                Ok(0)
                | Err(ManagerError::Refused {
                    status: INPUT_FULL, ..
                }) => break,
                Ok(taken) => {
                    self.pending.drain(..taken);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Says what a detach left unsent.
    fn warn_unsent(&self) {
        if !self.pending.is_empty() {
            eprintln!(
                "\r\n{} bytes of input not sent: the guest takes no input now",
                self.pending.len()
            );
        }
    }
}

/// Whether stdin has input (or its end) within `timeout`.
fn stdin_ready(timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: STDIN,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: polls one pollfd that lives across the call.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    // POLLHUP or POLLNVAL too: the read then finds the end or the error.
    n > 0 && fd.revents != 0
}

/// One read of stdin, unbuffered: what poll said is there is all there is.
fn read_stdin(buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: reads into `buf`, of the length given.
    let n = unsafe { libc::read(STDIN, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Prints a guest's log from an offset on, as it grows.
struct LogFollower<'a> {
    client: &'a Client,
    name: &'a str,
    offset: u64,
    /// The log's generation `offset` is in (the daemon empties a log past
    /// its limit: then the offset is of the part it kept).
    generation: u64,
    /// Started inside the log: the first line, likely cut, is dropped.
    skip_partial_line: bool,
    /// Whether the last byte printed ended a line.
    at_line_start: bool,
}

impl<'a> LogFollower<'a> {
    /// Starts `back` bytes before the log's end, at a line's start if
    /// `whole_lines`.
    fn near_end(
        client: &'a Client,
        name: &'a str,
        back: u64,
        whole_lines: bool,
    ) -> Result<Self, VmError> {
        // Any read answers with the log's size and generation.
        let now = client.log_from(name, 0, None)?;
        let offset = now.size.saturating_sub(back);
        Ok(LogFollower {
            client,
            name,
            offset,
            generation: now.generation,
            skip_partial_line: whole_lines && offset > 0,
            at_line_start: true,
        })
    }

    /// Prints what is new; true once the guest has ended and all of its
    /// log is printed.
    fn pump(&mut self, out: &mut impl Write) -> Result<bool, VmError> {
        loop {
            let chunk = self
                .client
                .log_from(self.name, self.offset, Some(self.generation))?;
            let mut data = chunk.data.as_bytes();
            if self.skip_partial_line && !data.is_empty() {
                if let Some(end) = data.iter().position(|&b| b == b'\n') {
                    data = &data[end + 1..];
                }
                self.skip_partial_line = false;
            }
            if let Some(&last) = data.last() {
                out.write_all(data)
                    .and_then(|()| out.flush())
                    .map_err(VmError::Output)?;
                self.at_line_start = last == b'\n';
            }
            let moved = chunk.next_offset != self.offset || chunk.generation != self.generation;
            self.offset = chunk.next_offset;
            self.generation = chunk.generation;
            if chunk.is_last() {
                return Ok(true);
            }
            if chunk.next_offset >= chunk.size || !moved {
                return Ok(false);
            }
        }
    }
}

/// The last of SIGINT, SIGTERM and SIGHUP caught, or 0.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    CAUGHT.store(signal, Ordering::Relaxed);
}

/// While it lives, the signals that would end the client are caught
/// instead, so the loop ends and the terminal is restored first; a closed
/// stdout is a write error rather than a death by SIGPIPE.
struct SignalCatcher {
    previous: Vec<(libc::c_int, libc::sighandler_t)>,
}

const CAUGHT_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

impl SignalCatcher {
    fn install() -> SignalCatcher {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let mut previous = Vec::new();
        for (signal, action) in CAUGHT_SIGNALS
            .iter()
            .map(|&s| (s, handler))
            .chain([(libc::SIGPIPE, libc::SIG_IGN)])
        {
            // SAFETY: the handler only stores to an atomic, which is
            // async-signal-safe; SIG_IGN needs nothing.
            let old = unsafe { libc::signal(signal, action) };
            previous.push((signal, old));
        }
        SignalCatcher { previous }
    }

    fn caught() -> Option<libc::c_int> {
        match CAUGHT.load(Ordering::Relaxed) {
            0 => None,
            signal => Some(signal),
        }
    }
}

impl Drop for SignalCatcher {
    fn drop(&mut self) {
        for &(signal, old) in &self.previous {
            // SAFETY: puts back the disposition `signal` returned earlier.
            unsafe { libc::signal(signal, old) };
        }
    }
}
