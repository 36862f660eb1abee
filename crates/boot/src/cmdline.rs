use arch::layout::{CMDLINE_MAX_SIZE, CMDLINE_START};
use linux_loader::loader::{load_cmdline, Cmdline};
use vm_memory::GuestAddress;

use crate::{Error, GuestMemoryMmap, Result};

/// Writes `text` as the kernel command line; returns its address and its
/// length including the terminating NUL.
pub fn write_cmdline(mem: &GuestMemoryMmap, text: &str) -> Result<(u64, usize)> {
    let mut cmdline = Cmdline::new(CMDLINE_MAX_SIZE).map_err(|e| Error::Cmdline(e.to_string()))?;
    if !text.is_empty() {
        cmdline
            .insert_str(text)
            .map_err(|e| Error::Cmdline(e.to_string()))?;
    }
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline)
        .map_err(|e| Error::Cmdline(e.to_string()))?;
    Ok((CMDLINE_START, text.len() + 1))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::Bytes;

    fn mem() -> GuestMemoryMmap {
        crate::test_memory(0x10_0000)
    }

    #[test]
    fn writes_nul_terminated_text() {
        let mem = mem();
        let (addr, len) = write_cmdline(&mem, "console=ttyS0 quiet").unwrap();
        let mut buf = vec![0u8; len];
        mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
        assert_eq!(&buf, b"console=ttyS0 quiet\0");
    }

    #[test]
    fn empty_command_line_is_a_single_nul() {
        let mem = mem();
        assert_eq!(write_cmdline(&mem, "").unwrap().1, 1);
    }

    #[test]
    fn too_long_is_an_error() {
        let mem = mem();
        let long = "a".repeat(CMDLINE_MAX_SIZE + 1);
        assert!(matches!(write_cmdline(&mem, &long), Err(Error::Cmdline(_))));
    }
}
