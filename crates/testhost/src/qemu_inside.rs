//! Debian's QEMU inside the test host, to compare Pointsman with on the
//! same nested `/dev/kvm`.
//!
//! The host's `/usr/bin/qemu-system-x86_64` goes into the test host's
//! initramfs with the shared libraries `ldd` lists and the firmware that
//! `-M microvm` loads.

use std::path::Path;

use crate::host::shared_libraries;
use crate::{Error, Initramfs, Result};

/// Where QEMU is on this machine and inside the test host.
pub const QEMU_BINARY: &str = "/usr/bin/qemu-system-x86_64";

/// Where the firmware is on this machine and inside the test host: pass
/// it to QEMU as `-L`.
pub const QEMU_FIRMWARE_DIR: &str = "/usr/share/qemu";

/// The firmware `-M microvm` needs: qboot (as itself and as the microvm
/// BIOS), and the option ROMs that load a `-kernel` (bzImage or PVH).
const FIRMWARE: &[&str] = &["qboot.rom", "pvh.bin", "linuxboot_dma.bin"];
const MICROVM_BIOS: (&str, &str) = ("bios-microvm.bin", "qboot.rom");

/// Adds QEMU, its libraries and its microvm firmware to `image`.
pub(crate) fn add_qemu(image: &mut Initramfs) -> Result<()> {
    let binary = Path::new(QEMU_BINARY);
    if !binary.exists() {
        return Err(Error::Command {
            command: QEMU_BINARY.into(),
            detail: "not found (install Debian's qemu-system-x86)".into(),
        });
    }
    image.file(QEMU_BINARY, binary, 0o755);
    for lib in shared_libraries(binary)? {
        image.file(&lib.to_string_lossy(), &lib, 0o755);
    }
    let firmware = Path::new(QEMU_FIRMWARE_DIR);
    for name in FIRMWARE {
        image.file(
            &format!("{QEMU_FIRMWARE_DIR}/{name}"),
            &firmware.join(name),
            0o644,
        );
    }
    let (link, target) = MICROVM_BIOS;
    image.symlink(&format!("{QEMU_FIRMWARE_DIR}/{link}"), target);
    Ok(())
}

/// The arguments (shell-quoted, for a test script) that boot `kernel` with
/// `initrd` and `cmdline` on QEMU's microvm with `memory_mib` of RAM and one
/// vCPU, the serial console on stdout, ending when the guest powers off or
/// resets.
pub fn qemu_microvm_args(kernel: &str, initrd: &str, cmdline: &str, memory_mib: u32) -> String {
    format!(
        "-enable-kvm -cpu host -M microvm -m {memory_mib}M -smp 1 \
         -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
         -L {QEMU_FIRMWARE_DIR} -kernel {kernel} -initrd {initrd} -append '{cmdline}'"
    )
}
