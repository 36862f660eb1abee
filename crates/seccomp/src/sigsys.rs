//! The report of a forbidden system call: a SIGSYS handler that names the
//! thread and the call on stderr, then ends the process with
//! [`FORBIDDEN_CALL_STATUS`].

use std::cell::Cell;
use std::sync::Once;

use crate::syscall_names::syscall_name;
use crate::Error;

/// The exit status of a process that made a forbidden system call: 128
/// plus SIGSYS (31), as a shell reports a process SIGSYS killed.
pub const FORBIDDEN_CALL_STATUS: i32 = 159;

/// Longest thread name kept (the kernel's limit, 15 bytes).
const NAME_LEN: usize = 15;

thread_local! {
    /// This thread's name, copied where the handler can read it without
    /// allocating or locking.
    static THREAD_NAME: Cell<([u8; NAME_LEN], usize)> = const { Cell::new(([0; NAME_LEN], 0)) };
}

/// Remembers `name` as this thread's for the report.
pub(crate) fn set_thread_name(name: &str) {
    let mut bytes = [0; NAME_LEN];
    let len = name.len().min(NAME_LEN);
    bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
    THREAD_NAME.with(|cell| cell.set((bytes, len)));
}

/// Installs the handler, once per process.
pub(crate) fn install_handler() -> Result<(), Error> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // `extern "C"` function of the SA_SIGINFO shape and does only
        // async-signal-safe work (stack formatting, write, _exit).
        let ret = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_sigsys;
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut())
        };
        if ret != 0 {
            result = Err(Error::Handler(std::io::Error::last_os_error()));
        }
    });
    result
}

/// Where the kernel puts the call's number in a SIGSYS `siginfo_t` on
/// x86_64: after signo, errno, code (and padding), then `_call_addr`.
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO; for a
    // seccomp SIGSYS, `si_syscall` is an int at this offset.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<libc::c_int>()
            .read_unaligned()
    };
    let (name, name_len) = THREAD_NAME
        .try_with(Cell::get)
        .unwrap_or(([0; NAME_LEN], 0));
    let mut line = Line::default();
    line.push(b"pointsman: seccomp: thread ");
    line.push(if name_len == 0 {
        b"?"
    } else {
        &name[..name_len]
    });
    line.push(b" made forbidden system call ");
    line.push_number(i64::from(nr));
    if let Some(call) = syscall_name(i64::from(nr)) {
        line.push(b" (");
        line.push(call.as_bytes());
        line.push(b")");
    }
    line.push(b"\n");
    // SAFETY: write and _exit are async-signal-safe; the buffer is ours.
    unsafe {
        libc::write(libc::STDERR_FILENO, line.bytes.as_ptr().cast(), line.len);
        libc::_exit(FORBIDDEN_CALL_STATUS);
    }
}

/// A line built on the stack: no allocation in a signal handler.
struct Line {
    bytes: [u8; 160],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            bytes: [0; 160],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, text: &[u8]) {
        let room = self.bytes.len() - self.len;
        let n = text.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&text[..n]);
        self.len += n;
    }

    fn push_number(&mut self, n: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_holds_numbers_and_stops_at_its_end() {
        let mut line = Line::default();
        line.push_number(0);
        line.push(b" ");
        line.push_number(-435);
        assert_eq!(&line.bytes[..line.len], b"0 -435");
        line.push(&[b'x'; 200]);
        assert_eq!(line.len, 160);
    }
}
