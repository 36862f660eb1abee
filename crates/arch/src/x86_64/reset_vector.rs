//! The code at the x86 reset vector.
//!
//! Pointsman boots kernels directly and has no firmware, yet guests still
//! jump to the reset vector, `f000:fff0`, expecting a BIOS to start the
//! machine over: Linux does it for `reboot=b`, and by default too on a
//! hardware-reduced ACPI machine without EFI runtime services (its reboot
//! code then tries EFI, finds none and falls back to the BIOS way). Plain
//! RAM there would run zeros (`add %al,(%bx,%si)`) through the segment for
//! ever, at a host CPU's full cost. A few bytes there instead pulse the
//! i8042's reset line, which the VMM turns into a reset (a restart, or the
//! end of the run under `--no-reboot`), and halt with interrupts off if
//! that write is ever ignored.

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::{ports, ACPI_END, HIMEM_START, RESET_VECTOR};
use crate::{Error, Result};

/// The instructions at the reset vector. Each encodes the same in 16-, 32-
/// and 64-bit code, so a guest that jumps here in any mode gets a reset.
#[allow(clippy::cast_possible_truncation)] // the i8042 ports are 8-bit
pub const RESET_VECTOR_CODE: [u8; 8] = [
    0xb0,
    ports::I8042_RESET_COMMAND, // mov $0xfe, %al
    0xe6,
    (ports::I8042_DATA + 4) as u8, // out %al, $0x64
    0xfa,                          // cli
    0xf4,                          // 1: hlt
    0xeb,
    0xfd, // jmp 1b
];

// The code lies between the ACPI tables and the kernel.
const _: () = assert!(
    ACPI_END <= RESET_VECTOR && RESET_VECTOR + RESET_VECTOR_CODE.len() as u64 <= HIMEM_START
);

/// Writes [`RESET_VECTOR_CODE`] at [`RESET_VECTOR`].
pub fn write_reset_vector<M: GuestMemory>(mem: &M) -> Result<()> {
    mem.write_slice(&RESET_VECTOR_CODE, GuestAddress(RESET_VECTOR))
        .map_err(|_| Error::GuestWrite {
            what: "reset vector code",
            addr: RESET_VECTOR,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn reset_vector_pulses_the_i8042_reset_line_then_halts() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
        write_reset_vector(&mem).unwrap();
        let mut code = [0u8; 8];
        mem.read_slice(&mut code, GuestAddress(0xf_fff0)).unwrap();
        assert_eq!(code[..4], [0xb0, 0xfe, 0xe6, 0x64], "out 0xfe to port 0x64");
        assert_eq!(code[4..6], [0xfa, 0xf4], "cli; hlt");
        assert_eq!(code[6..], [0xeb, 0xfd], "back to the hlt");
    }
}
