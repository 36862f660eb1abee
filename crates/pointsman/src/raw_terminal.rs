//! The terminal's mode while `vm console` holds it: every key goes to the
//! guest as typed, and the mode found is put back on drop, whichever way
//! the console ends.

use std::os::fd::RawFd;

const STDIN: RawFd = libc::STDIN_FILENO;

/// Stdin in raw mode while this lives.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Puts stdin in raw mode; `None` if it is not a terminal.
    pub fn enter() -> std::io::Result<Option<RawTerminal>> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(STDIN) } != 1 {
            return Ok(None);
        }
        // SAFETY: termios is plain data, filled by tcgetattr below.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid termios for tcgetattr to write.
        if unsafe { libc::tcgetattr(STDIN, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let raw = raw_mode(saved);
        // SAFETY: sets a termios derived from the one tcgetattr gave.
        if unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Some(RawTerminal { saved }))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the termios tcgetattr returned for this fd.
        unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &self.saved) };
    }
}

/// `mode` with input passed through untouched: no line editing or echo
/// (the guest echoes), no signals from Ctrl-C or Ctrl-Z (they are the
/// guest's), no flow control from Ctrl-S and Ctrl-Q, and Enter sent as
/// the CR a serial terminal sends. Output processing stays on, so a guest
/// that ends lines with a bare LF still starts each on the left.
fn raw_mode(mode: libc::termios) -> libc::termios {
    let mut raw = mode;
    raw.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
    raw.c_cflag &= !(libc::CSIZE | libc::PARENB);
    raw.c_cflag |= libc::CS8;
    raw.c_cc[libc::VMIN] = 1;
    raw.c_cc[libc::VTIME] = 0;
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_passes_keys_and_keeps_output_processing() {
        // SAFETY: termios is plain data; all zeroes is a valid value.
        let mut cooked: libc::termios = unsafe { std::mem::zeroed() };
        cooked.c_iflag = libc::ICRNL | libc::IXON | libc::IUTF8;
        cooked.c_oflag = libc::OPOST | libc::ONLCR;
        cooked.c_lflag = libc::ECHO | libc::ICANON | libc::ISIG | libc::IEXTEN;
        let raw = raw_mode(cooked);
        assert_eq!(raw.c_iflag, libc::IUTF8);
        assert_eq!(raw.c_lflag, 0);
        assert_eq!(raw.c_oflag, libc::OPOST | libc::ONLCR);
        assert_eq!(raw.c_cflag & libc::CSIZE, libc::CS8);
        assert_eq!(raw.c_cc[libc::VMIN], 1);
    }

    #[test]
    fn no_terminal_is_left_alone() {
        // Under the test harness stdin is not a terminal (cargo test's
        // stdin is /dev/null in CI); where it is, the mode comes back.
        let before = stdin_mode();
        drop(RawTerminal::enter().unwrap());
        assert_eq!(before, stdin_mode());
    }

    fn stdin_mode() -> Option<(u32, u32, u32)> {
        // SAFETY: termios is plain data, filled by tcgetattr.
        let mut mode: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `mode` is a valid termios for tcgetattr to write.
        (unsafe { libc::tcgetattr(STDIN, &mut mode) } == 0).then_some((
            mode.c_iflag,
            mode.c_oflag,
            mode.c_lflag,
        ))
    }
}
