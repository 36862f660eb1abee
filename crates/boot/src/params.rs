//! The boot information a kernel reads at entry: Linux `boot_params` for
//! the 64-bit boot protocol, `hvm_start_info` for PVH.

use arch::layout::{
    PVH_INFO_START, PVH_MEMMAP_MAX_ENTRIES, PVH_MEMMAP_START, PVH_MODLIST_START, ZERO_PAGE_START,
};
use arch::x86_64::memory::MemoryMapEntry;
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{ByteValued, Bytes, GuestAddress};

use crate::kernel::{KernelEntry, LoadedKernel};
use crate::{Error, GuestMemoryMmap, InitrdRegion, Result};

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// "Undefined" boot loader type: Linux accepts it from any loader.
const KERNEL_LOADER_OTHER: u8 = 0xff;
/// Linux's default physical alignment, for kernels without a setup header.
const KERNEL_MIN_ALIGNMENT: u32 = 0x0100_0000;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// Version 1 of `hvm_start_info` carries the memory map.
const PVH_START_INFO_VERSION: u32 = 1;

// Newtypes so the PVH structures, defined in linux-loader, can be written
// to guest memory as plain bytes.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct StartInfo(hvm_start_info);
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct MemmapEntry(hvm_memmap_table_entry);
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
struct ModlistEntry(hvm_modlist_entry);
// SAFETY: plain `repr(C)` structs of integers with no implicit padding
// (their sizes are asserted in linux-loader); any bit pattern is valid.
unsafe impl ByteValued for StartInfo {}
// SAFETY: as above.
unsafe impl ByteValued for MemmapEntry {}
// SAFETY: as above.
unsafe impl ByteValued for ModlistEntry {}

/// Everything the boot information describes.
#[derive(Clone, Debug)]
pub struct BootInfo<'a> {
    pub kernel: &'a LoadedKernel,
    /// Address and length (with the NUL) of the command line.
    pub cmdline: (u64, usize),
    pub initrd: Option<InitrdRegion>,
    pub rsdp: u64,
    pub memory_map: &'a [MemoryMapEntry],
}

/// The low half of a 64-bit value that the boot protocol splits in two.
#[allow(clippy::cast_possible_truncation)] // the split is the point
fn low32(value: u64) -> u32 {
    value as u32
}

/// The high half of a 64-bit value that the boot protocol splits in two.
fn high32(value: u64) -> u32 {
    low32(value >> 32)
}

fn write_linux(mem: &GuestMemoryMmap, info: &BootInfo) -> Result<u64> {
    let mut params = boot_params::default();
    if let Some(hdr) = info.kernel.setup_header {
        params.hdr = hdr;
    } else {
        params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = low32(info.cmdline.0);
    params.hdr.cmdline_size = low32(info.cmdline.1 as u64);
    if let Some(initrd) = info.initrd {
        params.hdr.ramdisk_image = low32(initrd.addr);
        params.hdr.ramdisk_size = low32(initrd.size);
        params.ext_ramdisk_image = high32(initrd.addr);
        params.ext_ramdisk_size = high32(initrd.size);
    }
    params.acpi_rsdp_addr = info.rsdp;
    let entries = u8::try_from(info.memory_map.len())
        .ok()
        .filter(|&n| usize::from(n) <= params.e820_table.len())
        .ok_or(Error::TooManyMemoryMapEntries(info.memory_map.len()))?;
    for (slot, entry) in params.e820_table.iter_mut().zip(info.memory_map) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind,
        };
    }
    params.e820_entries = entries;
    mem.write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(|_| Error::GuestWrite("Linux boot parameters"))?;
    Ok(ZERO_PAGE_START)
}

fn write_pvh(mem: &GuestMemoryMmap, info: &BootInfo) -> Result<u64> {
    let entries = u32::try_from(info.memory_map.len())
        .ok()
        .filter(|&n| n as usize <= PVH_MEMMAP_MAX_ENTRIES)
        .ok_or(Error::TooManyMemoryMapEntries(info.memory_map.len()))?;
    let mut start_info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: PVH_START_INFO_VERSION,
        cmdline_paddr: info.cmdline.0,
        rsdp_paddr: info.rsdp,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: entries,
        ..Default::default()
    };
    if let Some(initrd) = info.initrd {
        let module = hvm_modlist_entry {
            paddr: initrd.addr,
            size: initrd.size,
            ..Default::default()
        };
        mem.write_obj(ModlistEntry(module), GuestAddress(PVH_MODLIST_START))
            .map_err(|_| Error::GuestWrite("PVH module list"))?;
        start_info.nr_modules = 1;
        start_info.modlist_paddr = PVH_MODLIST_START;
    }
    for (i, entry) in info.memory_map.iter().enumerate() {
        let e = hvm_memmap_table_entry {
            addr: entry.addr,
            size: entry.size,
            type_: entry.kind,
            reserved: 0,
        };
        let at = PVH_MEMMAP_START + (i * std::mem::size_of::<MemmapEntry>()) as u64;
        mem.write_obj(MemmapEntry(e), GuestAddress(at))
            .map_err(|_| Error::GuestWrite("PVH memory map"))?;
    }
    mem.write_obj(StartInfo(start_info), GuestAddress(PVH_INFO_START))
        .map_err(|_| Error::GuestWrite("PVH start info"))?;
    Ok(PVH_INFO_START)
}

/// Writes the boot information the kernel's entry protocol expects and
/// returns its address (for `%rsi` or `%ebx`).
pub fn write_boot_info(mem: &GuestMemoryMmap, info: &BootInfo) -> Result<u64> {
    match info.kernel.entry {
        KernelEntry::Linux64(_) => write_linux(mem, info),
        KernelEntry::Pvh(_) => write_pvh(mem, info),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use arch::x86_64::memory::memory_map;

    const MIB: u64 = 1 << 20;

    fn mem() -> GuestMemoryMmap {
        crate::test_memory(4 * MIB as usize)
    }

    fn kernel(entry: KernelEntry) -> LoadedKernel {
        LoadedKernel {
            entry,
            end: 2 * MIB,
            setup_header: None,
        }
    }

    #[test]
    fn linux_boot_params_carry_e820_cmdline_initrd_and_rsdp() {
        let mem = mem();
        let k = kernel(KernelEntry::Linux64(MIB));
        let map = memory_map(6 << 30);
        let info = BootInfo {
            kernel: &k,
            cmdline: (0x20000, 12),
            initrd: Some(InitrdRegion {
                addr: 0x30_0000,
                size: 1234,
            }),
            rsdp: 0xe0000,
            memory_map: &map,
        };
        assert_eq!(write_boot_info(&mem, &info).unwrap(), ZERO_PAGE_START);
        let p: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
        assert_eq!(p.e820_entries, 3);
        let third = p.e820_table[2];
        assert_eq!((third.addr, third.size), (4 << 30, 3 << 30));
        let hdr = p.hdr;
        assert_eq!((hdr.cmd_line_ptr, hdr.cmdline_size), (0x20000, 12));
        assert_eq!((hdr.ramdisk_image, hdr.ramdisk_size), (0x30_0000, 1234));
        assert_eq!({ hdr.boot_flag }, KERNEL_BOOT_FLAG_MAGIC);
        assert_eq!({ p.acpi_rsdp_addr }, 0xe0000);
    }

    #[test]
    fn pvh_start_info_carries_memmap_and_module() {
        let mem = mem();
        let k = kernel(KernelEntry::Pvh(MIB));
        let map = memory_map(128 * MIB);
        let info = BootInfo {
            kernel: &k,
            cmdline: (0x20000, 1),
            initrd: Some(InitrdRegion {
                addr: 0x30_0000,
                size: 99,
            }),
            rsdp: 0xe0000,
            memory_map: &map,
        };
        assert_eq!(write_boot_info(&mem, &info).unwrap(), PVH_INFO_START);
        let si: StartInfo = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(si.0.magic, XEN_HVM_START_MAGIC);
        assert_eq!(si.0.memmap_entries, 2);
        assert_eq!(si.0.nr_modules, 1);
        let m: ModlistEntry = mem.read_obj(GuestAddress(si.0.modlist_paddr)).unwrap();
        assert_eq!((m.0.paddr, m.0.size), (0x30_0000, 99));
        let e: MemmapEntry = mem.read_obj(GuestAddress(si.0.memmap_paddr + 24)).unwrap();
        assert_eq!((e.0.addr, e.0.size, e.0.type_), (MIB, 127 * MIB, 1));
    }
}
