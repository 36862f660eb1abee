//! The boot vCPU's registers, as each entry protocol prescribes them.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use super::gdt::{self, BOOT_GDT};
use crate::layout::{BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER};
use crate::{Error, Result};

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Bit 1 of RFLAGS is reserved and always set.
const RFLAGS_RESERVED: u64 = 0x2;

/// Limit (size - 1) of the boot GDT.
#[allow(clippy::cast_possible_truncation)] // five 8-byte entries
const BOOT_GDT_LIMIT: u16 = (BOOT_GDT.len() * 8 - 1) as u16;

/// How the boot vCPU enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// Linux 64-bit boot protocol: long mode, paging on (identity map at
    /// `cr3`), `%rsi` = address of `boot_params`.
    Linux64 {
        entry: u64,
        boot_params: u64,
        cr3: u64,
    },
    /// PVH: 32-bit protected mode, paging off, `%ebx` = address of
    /// `hvm_start_info`.
    Pvh { entry: u64, start_info: u64 },
}

/// General-purpose registers at entry.
pub fn boot_regs(mode: EntryMode) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    match mode {
        EntryMode::Linux64 {
            entry, boot_params, ..
        } => {
            regs.rip = entry;
            regs.rsi = boot_params;
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
        }
        EntryMode::Pvh { entry, start_info } => {
            regs.rip = entry;
            regs.rbx = start_info;
        }
    }
    regs
}

/// Writes the boot GDT and an empty IDT to guest memory.
pub fn write_descriptor_tables<M: GuestMemory>(mem: &M) -> Result<()> {
    for (i, entry) in BOOT_GDT.iter().enumerate() {
        let addr = BOOT_GDT_START + (i as u64) * 8;
        mem.write_obj(*entry, GuestAddress(addr))
            .map_err(|_| Error::GuestWrite {
                what: "boot GDT",
                addr,
            })?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(|_| Error::GuestWrite {
            what: "boot IDT",
            addr: BOOT_IDT_START,
        })
}

/// Segment and control registers at entry, starting from the vCPU's reset
/// state `sregs` (which keeps the APIC base and other fields KVM owns).
pub fn boot_sregs(mode: EntryMode, mut sregs: kvm_sregs) -> kvm_sregs {
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = BOOT_GDT_LIMIT;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 0;

    let code = match mode {
        EntryMode::Linux64 { .. } => gdt::CODE64_SELECTOR,
        EntryMode::Pvh { .. } => gdt::CODE32_SELECTOR,
    };
    let data = gdt::segment(&BOOT_GDT, gdt::DATA_SELECTOR / 8);
    sregs.cs = gdt::segment(&BOOT_GDT, code / 8);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = gdt::segment(&BOOT_GDT, gdt::TSS_SELECTOR / 8);

    match mode {
        EntryMode::Linux64 { cr3, .. } => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.cr3 = cr3;
            sregs.cr4 = X86_CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
        EntryMode::Pvh { .. } => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// x87 and SSE control words as after `FNINIT` and at reset.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn linux64_entry_is_long_mode_with_boot_params_in_rsi() {
        let mode = EntryMode::Linux64 {
            entry: 0x100200,
            boot_params: 0x7000,
            cr3: 0x9000,
        };
        let regs = boot_regs(mode);
        assert_eq!((regs.rip, regs.rsi, regs.rflags), (0x100200, 0x7000, 2));
        let sregs = boot_sregs(mode, kvm_sregs::default());
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_ne!(sregs.cr0 & X86_CR0_PG, 0);
        assert_eq!(sregs.cr3, 0x9000);
        assert_eq!(sregs.cs.selector, gdt::CODE64_SELECTOR);
        assert_eq!(sregs.cs.l, 1);
        assert_eq!(sregs.ds.selector, gdt::DATA_SELECTOR);
    }

    #[test]
    fn pvh_entry_is_protected_mode_without_paging() {
        let mode = EntryMode::Pvh {
            entry: 0x100000,
            start_info: 0x6000,
        };
        let regs = boot_regs(mode);
        assert_eq!((regs.rip, regs.rbx), (0x100000, 0x6000));
        let sregs = boot_sregs(mode, kvm_sregs::default());
        assert_eq!(sregs.cr0, X86_CR0_PE | X86_CR0_ET);
        assert_eq!((sregs.efer, sregs.cr4), (0, 0));
        assert_eq!((sregs.cs.db, sregs.cs.l), (1, 0));
        assert_eq!(sregs.tr.limit, 0x67);
    }

    #[test]
    fn descriptor_tables_land_in_memory() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        write_descriptor_tables(&mem).unwrap();
        let cs: u64 = mem.read_obj(GuestAddress(BOOT_GDT_START + 16)).unwrap();
        assert_eq!(cs, BOOT_GDT[2]);
    }
}
