//! Kernel images: ELF `vmlinux` (PVH or 64-bit entry) and bzImage.

use std::io::{Read, Seek, SeekFrom};

use arch::layout::HIMEM_START;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, ReadVolatile};

use crate::{Error, GuestMemoryMmap, Result};

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const ELF_HEADER_LEN: usize = 64;
const ELF_PHDR_LEN: usize = 56;

const SETUP_HEADER_OFFSET: u64 = 0x1f1;
const BZIMAGE_MAGIC: [u8; 4] = *b"HdrS";
/// Boot protocol 2.12 introduced `xloadflags`.
const BOOT_PROTOCOL_XLOADFLAGS: u16 = 0x020c;
const XLF_KERNEL_64: u16 = 1 << 0;
/// The 64-bit entry point sits this far into the protected-mode kernel.
const STARTUP_64_OFFSET: u64 = 0x200;

/// Where and how the boot vCPU enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelEntry {
    /// PVH: 32-bit protected mode at this address.
    Pvh(u64),
    /// 64-bit long mode at this address, with `boot_params` in `%rsi`.
    Linux64(u64),
}

/// A kernel in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    pub entry: KernelEntry,
    /// First byte past the kernel (and the memory it reserves for itself).
    pub end: u64,
    /// The bzImage's setup header, to be copied into `boot_params`.
    pub setup_header: Option<setup_header>,
}

/// The end of the RAM region that starts at 0 (all RAM below 4 GiB).
pub(crate) fn low_ram_end(mem: &GuestMemoryMmap) -> u64 {
    mem.find_region(GuestAddress(0)).map_or(0, |r| r.len())
}

fn read_at<R: Read + Seek>(image: &mut R, offset: u64, buf: &mut [u8]) -> Result<()> {
    image
        .seek(SeekFrom::Start(offset))
        .and_then(|_| image.read_exact(buf))
        .map_err(Error::ReadKernel)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

fn check_fits(start: u64, len: u64, ram_end: u64) -> Result<u64> {
    let end = start.checked_add(len).ok_or(Error::KernelTooLarge {
        start,
        end: u64::MAX,
        ram_end,
    })?;
    if start < HIMEM_START || end > ram_end {
        return Err(Error::KernelTooLarge {
            start,
            end,
            ram_end,
        });
    }
    Ok(end)
}

/// Checks what linux-loader does not: a 64-bit x86 ELF whose loadable
/// segments all land in RAM above 1 MiB.
fn check_elf<R: Read + Seek>(image: &mut R, ram_end: u64) -> Result<()> {
    let mut ehdr = [0u8; ELF_HEADER_LEN];
    read_at(image, 0, &mut ehdr).map_err(|_| Error::ElfInvalid("truncated ELF header"))?;
    if ehdr[4] != ELFCLASS64 {
        return Err(Error::Elf32);
    }
    let machine = u16_at(&ehdr, 18);
    if machine != EM_X86_64 {
        return Err(Error::ElfMachine(machine));
    }
    let phoff = u64_at(&ehdr, 32);
    let phnum = u16_at(&ehdr, 56);
    if usize::from(u16_at(&ehdr, 54)) != ELF_PHDR_LEN {
        return Err(Error::ElfInvalid("unexpected program header size"));
    }
    let mut loads = 0;
    for i in 0..u64::from(phnum) {
        let mut phdr = [0u8; ELF_PHDR_LEN];
        // `phoff` is the file's word: the table may claim to run past the
        // largest offset there is.
        let at = phoff
            .checked_add(i * ELF_PHDR_LEN as u64)
            .ok_or(Error::ElfInvalid(
                "program headers past the largest file offset",
            ))?;
        read_at(image, at, &mut phdr)
            .map_err(|_| Error::ElfInvalid("truncated program headers"))?;
        if u32_at(&phdr, 0) == PT_LOAD {
            check_fits(u64_at(&phdr, 24), u64_at(&phdr, 40), ram_end)?;
            loads += 1;
        }
    }
    if loads == 0 {
        return Err(Error::ElfInvalid("no loadable segment"));
    }
    Ok(())
}

fn load_elf<R>(mem: &GuestMemoryMmap, image: &mut R) -> Result<LoadedKernel>
where
    R: Read + Seek + ReadVolatile,
{
    check_elf(image, low_ram_end(mem))?;
    let result = Elf::load(mem, None, image, Some(GuestAddress(HIMEM_START)))?;
    let entry = match result.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => KernelEntry::Pvh(addr.0),
        _ => KernelEntry::Linux64(result.kernel_load.0),
    };
    Ok(LoadedKernel {
        entry,
        end: result.kernel_end,
        setup_header: None,
    })
}

fn load_bzimage<R>(mem: &GuestMemoryMmap, image: &mut R, file_len: u64) -> Result<LoadedKernel>
where
    R: Read + Seek + ReadVolatile,
{
    // Setup header fields, at their offsets from 0x1f1.
    let mut hdr = [0u8; 0x80];
    read_at(image, SETUP_HEADER_OFFSET, &mut hdr)?;
    let version = u16_at(&hdr, 0x206 - 0x1f1);
    let xloadflags = u16_at(&hdr, 0x236 - 0x1f1);
    if version < BOOT_PROTOCOL_XLOADFLAGS || xloadflags & XLF_KERNEL_64 == 0 {
        return Err(Error::BzImageNot64Bit);
    }
    let setup_sects = match hdr[0] {
        0 => 4,
        n => u64::from(n),
    };
    let payload = file_len.saturating_sub((setup_sects + 1) * 512);
    let code32_start = u64::from(u32_at(&hdr, 0x214 - 0x1f1));
    // The kernel decompresses itself in place and needs `init_size` bytes.
    let init_size = u64::from(u32_at(&hdr, 0x260 - 0x1f1));
    let end = check_fits(code32_start, payload.max(init_size), low_ram_end(mem))?;

    let result = BzImage::load(mem, None, image, Some(GuestAddress(HIMEM_START)))?;
    Ok(LoadedKernel {
        entry: KernelEntry::Linux64(result.kernel_load.0 + STARTUP_64_OFFSET),
        end: end.max(result.kernel_end),
        setup_header: result.setup_header,
    })
}

/// Loads an ELF or bzImage kernel from `image` into `mem`.
pub fn load_kernel<R>(mem: &GuestMemoryMmap, image: &mut R) -> Result<LoadedKernel>
where
    R: Read + Seek + ReadVolatile,
{
    let file_len = image.seek(SeekFrom::End(0)).map_err(Error::ReadKernel)?;
    let mut magic = [0u8; 4];
    if file_len >= 4 {
        read_at(image, 0, &mut magic)?;
    }
    if magic == ELF_MAGIC {
        return load_elf(mem, image);
    }
    if file_len > 0x240 {
        read_at(image, 0x202, &mut magic)?;
        if magic == BZIMAGE_MAGIC {
            return load_bzimage(mem, image, file_len);
        }
    }
    Err(Error::UnknownKernelFormat)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use std::io::Cursor;
    use vm_memory::Bytes;

    const MIB: u64 = 1 << 20;

    fn mem(size: u64) -> GuestMemoryMmap {
        crate::test_memory(size as usize)
    }

    /// A minimal ELF64 with one PT_LOAD of `code` at `paddr`.
    fn elf(class: u8, machine: u16, paddr: u64, code: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x1000];
        f[0..4].copy_from_slice(&ELF_MAGIC);
        f[4] = class;
        f[5] = 1; // little-endian
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[24..32].copy_from_slice(&paddr.to_le_bytes()); // e_entry
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&0x800u64.to_le_bytes()); // p_offset
        f[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&(code.len() as u64).to_le_bytes());
        f[0x800..0x800 + code.len()].copy_from_slice(code);
        f
    }

    fn bzimage(version: u16, xloadflags: u16, payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 5 * 512 + payload];
        f[0x1f1] = 4;
        f[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        f[0x202..0x206].copy_from_slice(&BZIMAGE_MAGIC);
        f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        f[0x211] = 1; // LOADED_HIGH
        f[0x214..0x218].copy_from_slice(&(HIMEM_START as u32).to_le_bytes());
        f[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        f[5 * 512] = 0xf4;
        f
    }

    #[test]
    fn elf64_without_note_enters_in_long_mode() {
        let mem = mem(4 * MIB);
        let image = elf(ELFCLASS64, EM_X86_64, 0x200000, &[0xf4, 0x90]);
        let k = load_kernel(&mem, &mut Cursor::new(image)).unwrap();
        assert_eq!(k.entry, KernelEntry::Linux64(0x200000));
        assert_eq!(k.end, 0x200002);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x200000)).unwrap(), 0xf4);
    }

    #[test]
    fn elf32_and_foreign_machines_are_refused() {
        let mem = mem(4 * MIB);
        let image = elf(1, EM_X86_64, 0x200000, &[0xf4]);
        assert!(matches!(
            load_kernel(&mem, &mut Cursor::new(image)),
            Err(Error::Elf32)
        ));
        let image = elf(ELFCLASS64, 183, 0x200000, &[0xf4]);
        assert!(matches!(
            load_kernel(&mem, &mut Cursor::new(image)),
            Err(Error::ElfMachine(183))
        ));
    }

    #[test]
    fn elf_beyond_ram_does_not_fit() {
        let mem = mem(2 * MIB);
        let image = elf(ELFCLASS64, EM_X86_64, 0x1000000, &[0xf4]);
        assert!(matches!(
            load_kernel(&mem, &mut Cursor::new(image)),
            Err(Error::KernelTooLarge { .. })
        ));
    }

    #[test]
    fn bzimage_enters_at_startup_64() {
        let mem = mem(4 * MIB);
        let k = load_kernel(&mem, &mut Cursor::new(bzimage(0x020f, 1, 0x400))).unwrap();
        assert_eq!(k.entry, KernelEntry::Linux64(HIMEM_START + 0x200));
        assert!(k.setup_header.is_some());
        assert_eq!(mem.read_obj::<u8>(GuestAddress(HIMEM_START)).unwrap(), 0xf4);
    }

    #[test]
    fn bzimage_without_64bit_entry_is_refused() {
        let mem = mem(4 * MIB);
        for image in [bzimage(0x020b, 1, 0x400), bzimage(0x020f, 0, 0x400)] {
            assert!(matches!(
                load_kernel(&mem, &mut Cursor::new(image)),
                Err(Error::BzImageNot64Bit)
            ));
        }
    }

    #[test]
    fn bzimage_too_large_for_ram() {
        let mem = mem(2 * MIB);
        let image = bzimage(0x020f, 1, 2 * MIB as usize);
        assert!(matches!(
            load_kernel(&mem, &mut Cursor::new(image)),
            Err(Error::KernelTooLarge { .. })
        ));
    }

    /// A file that reads as `head` and then zeros at every offset, as a
    /// crafted image on a file system with sparse files could.
    struct ZerosAfter {
        head: Vec<u8>,
        pos: u64,
    }

    impl Read for ZerosAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for (i, b) in buf.iter_mut().enumerate() {
                let at = usize::try_from(self.pos.saturating_add(i as u64)).unwrap_or(usize::MAX);
                *b = self.head.get(at).copied().unwrap_or(0);
            }
            self.pos = self.pos.saturating_add(buf.len() as u64);
            Ok(buf.len())
        }
    }

    impl Seek for ZerosAfter {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            match to {
                SeekFrom::Start(at) => self.pos = at,
                _ => return Err(std::io::Error::other("only absolute seeks")),
            }
            Ok(self.pos)
        }
    }

    #[test]
    fn program_headers_past_the_largest_offset_are_refused() {
        let mut image = elf(ELFCLASS64, EM_X86_64, 0x200000, &[0xf4]);
        // Two program headers, the second beyond u64::MAX.
        image[32..40].copy_from_slice(&(u64::MAX - 40).to_le_bytes());
        image[56..58].copy_from_slice(&2u16.to_le_bytes());
        let mut file = ZerosAfter {
            head: image,
            pos: 0,
        };
        assert!(matches!(
            check_elf(&mut file, 4 * MIB),
            Err(Error::ElfInvalid(
                "program headers past the largest file offset"
            ))
        ));
    }

    #[test]
    fn garbage_is_neither_format() {
        let mem = mem(2 * MIB);
        for image in [vec![], vec![0u8; 3], vec![0x55u8; 0x1000]] {
            assert!(matches!(
                load_kernel(&mem, &mut Cursor::new(image)),
                Err(Error::UnknownKernelFormat)
            ));
        }
    }
}
