//! Test guests for Pointsman: tiny x86 kernels, assembled from `asm/` at
//! build time.
//!
//! All three images run one body of code, which does what the first word of
//! the kernel command line that names a command asks (`demo` when none does):
//! `demo`, `memmap`, `smp`, `echo`, `reset`, `acpireset`, `biosreset`, `triplefault`,
//! `poke`, `piobench`, `initrd`, `idle`, `count`, `stamp`, `checks`, `exit`, `wildjump`. They write to COM1 and power
//! off through the FADT's sleep control register. The images differ only in
//! how they are booted.

/// An ELF64 file with a PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`): entered in
/// 32-bit protected mode with paging off, `%ebx` = `hvm_start_info`. It runs
/// the body in 32-bit mode.
pub const PVH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pvh.elf"));

/// The demo guest: the PVH guest, which runs `demo` on a command line that
/// names no command.
pub const DEMO: &[u8] = PVH;

/// An ELF64 x86-64 file without a PVH note: entered at `e_entry` (in the
/// first MiB above 1 MiB) in long mode, `%rsi` = Linux `boot_params`.
pub const ELF64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/elf64.elf"));

/// A Linux boot protocol 2.15 bzImage (one setup sector, `XLF_KERNEL_64`):
/// the payload loads at 1 MiB and is entered at 1 MiB + 0x200 in long mode,
/// `%rsi` = `boot_params`.
pub const BZIMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bzimage.bin"));

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// A program header: (type, file offset, physical address, file size, memory size).
    type Phdr = (u32, usize, u64, usize, u64);

    /// Checks the ELF64 header the way the VMM's loader does; returns
    /// e_entry and the program headers.
    fn elf(image: &[u8]) -> (u64, Vec<Phdr>) {
        assert_eq!(&image[..4], b"\x7fELF");
        assert_eq!(image[4], 2, "ELFCLASS64");
        assert_eq!(image[5], 1, "little endian");
        assert_eq!(u16_at(image, 18), 62, "EM_X86_64");
        let entry = u64_at(image, 24);
        let phoff = usize::try_from(u64_at(image, 32)).unwrap();
        assert_eq!(u16_at(image, 54), 56, "e_phentsize");
        let phnum = usize::from(u16_at(image, 56));
        let phdrs = (0..phnum)
            .map(|i| {
                let p = phoff + i * 56;
                (
                    u32_at(image, p),
                    usize::try_from(u64_at(image, p + 8)).unwrap(),
                    u64_at(image, p + 24),
                    usize::try_from(u64_at(image, p + 32)).unwrap(),
                    u64_at(image, p + 40),
                )
            })
            .collect();
        (entry, phdrs)
    }

    /// The PVH entry point from the image's notes, if it has one.
    fn pvh_entry(image: &[u8], phdrs: &[Phdr]) -> Option<u32> {
        for &(_, offset, _, size, _) in phdrs.iter().filter(|p| p.0 == PT_NOTE) {
            let mut p = offset;
            while p + 12 <= offset + size {
                let namesz = usize::try_from(u32_at(image, p)).unwrap();
                let descsz = usize::try_from(u32_at(image, p + 4)).unwrap();
                let kind = u32_at(image, p + 8);
                let name = &image[p + 12..p + 12 + namesz];
                let desc = p + 12 + namesz.next_multiple_of(4);
                if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" {
                    assert!(descsz >= 4);
                    return Some(u32_at(image, desc));
                }
                p = desc + descsz.next_multiple_of(4);
            }
        }
        None
    }

    /// Every loadable segment lies at or above 1 MiB, and `addr` is in one.
    fn check_segments(phdrs: &[Phdr], addr: u64) {
        let loads: Vec<_> = phdrs.iter().filter(|p| p.0 == PT_LOAD).collect();
        assert!(!loads.is_empty());
        for &&(_, _, paddr, filesz, memsz) in &loads {
            assert!(paddr >= 0x10_0000, "segment below 1 MiB: {paddr:#x}");
            assert!(u64::try_from(filesz).unwrap() <= memsz);
        }
        assert!(loads
            .iter()
            .any(|&&(_, _, paddr, _, memsz)| (paddr..paddr + memsz).contains(&addr)));
    }

    #[test]
    fn pvh_has_the_entry_note() {
        let (entry, phdrs) = elf(PVH);
        let pvh = pvh_entry(PVH, &phdrs).expect("no PVH note");
        assert_eq!(u64::from(pvh), entry);
        check_segments(&phdrs, entry);
        assert_eq!(DEMO, PVH);
    }

    #[test]
    fn elf64_has_no_pvh_note() {
        let (entry, phdrs) = elf(ELF64);
        assert_eq!(pvh_entry(ELF64, &phdrs), None);
        assert!(entry >= 0x10_0000);
        check_segments(&phdrs, entry);
    }

    #[test]
    fn bzimage_has_a_64_bit_setup_header() {
        let b = BZIMAGE;
        let setup_sects = usize::from(b[0x1f1]);
        assert_ne!(setup_sects, 0);
        let payload = &b[(setup_sects + 1) * 512..];
        assert_eq!(u16_at(b, 0x1fe), 0xaa55, "boot_flag");
        assert_eq!(&b[0x202..0x206], b"HdrS");
        assert_eq!(u16_at(b, 0x206), 0x020f, "version");
        assert_eq!(b[0x211] & 1, 1, "LOADED_HIGH");
        assert_eq!(u32_at(b, 0x214), 0x10_0000, "code32_start");
        assert_eq!(u32_at(b, 0x22c), 0x7fff_ffff, "initrd_addr_max");
        assert_eq!(u16_at(b, 0x236) & 1, 1, "XLF_KERNEL_64");
        assert!(u32_at(b, 0x238) >= 255, "cmdline_size");
        let syssize = usize::try_from(u32_at(b, 0x1f4)).unwrap();
        assert!(syssize * 16 >= payload.len(), "syssize");
        let init_size = usize::try_from(u32_at(b, 0x260)).unwrap();
        assert!(init_size >= payload.len(), "init_size");
        // The 64-bit entry at +0x200 is a jump into the payload.
        assert!(payload.len() > 0x200);
        assert_eq!(payload[0x200], 0xe9, "jmp at the 64-bit entry");
    }
}
