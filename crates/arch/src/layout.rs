//! The guest-physical address map of a Pointsman x86_64 machine.
//!
//! Every fixed address the VMM places something at lives here, so that the
//! boot loader, the ACPI tables, the device manager and the test guests agree.
//!
//! ```text
//! 0x0000_0500  boot GDT                 (long-mode and PVH entry)
//! 0x0000_0540  boot IDT                 (empty: limit 0)
//! 0x0000_6000  PVH hvm_start_info, its module list and memory map
//! 0x0000_7000  Linux boot_params ("zero page")
//! 0x0000_8ff0  boot stack pointer (grows down)
//! 0x0000_9000  PML4, PDPT, 4 page directories: 4 GiB identity map, 2 MiB pages
//! 0x0002_0000  kernel command line
//! 0x0009_fc00  EBDA: the MP table (floating pointer + configuration table)
//! 0x000e_0000  ACPI: RSDP then XSDT, FADT, MADT, DSDT
//! 0x000f_fff0  reset vector (f000:fff0): code that resets the machine
//! 0x0010_0000  kernel (HIMEM_START)
//! 0xc000_0000  32-bit device hole up to 4 GiB: virtio-mmio devices, IOAPIC, LAPIC
//! 0xd000_0000  PCI memory window: the BARs of virtio-pci devices
//! 0x1_0000_0000 RAM above the hole, when the guest has more than 3 GiB
//! ```

/// Global descriptor table the boot vCPU starts with.
pub const BOOT_GDT_START: u64 = 0x500;
/// Interrupt descriptor table the boot vCPU starts with (limit 0: any
/// exception before the guest sets its own IDT is a triple fault).
pub const BOOT_IDT_START: u64 = 0x540;

/// PVH `hvm_start_info`, handed to the kernel in `%ebx`.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (`hvm_modlist_entry`: the initrd), after the start info.
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map entries (`hvm_memmap_table_entry`), after the module list.
pub const PVH_MEMMAP_START: u64 = 0x6080;
/// Most PVH memory map entries that fit before the zero page.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = ((ZERO_PAGE_START - PVH_MEMMAP_START) / 24) as usize;

/// Linux `boot_params`, handed to a 64-bit kernel in `%rsi`.
pub const ZERO_PAGE_START: u64 = 0x7000;

/// Initial stack pointer of the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;

/// Boot page tables: one PML4, one PDPT and four page directories mapping
/// the first 4 GiB 1:1 with 2 MiB pages.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table of the boot page tables.
pub const PDPTE_START: u64 = 0xa000;
/// First of the four page directories of the boot page tables.
pub const PDE_START: u64 = 0xb000;

/// Kernel command line, NUL-terminated.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Longest command line accepted, including the NUL.
pub const CMDLINE_MAX_SIZE: usize = 0x1_0000;

/// Start of the extended BIOS data area; RAM below it is usable.
pub const EBDA_START: u64 = 0x9_fc00;
/// The MP table lives at the start of the EBDA, where guests scan for it.
pub const MPTABLE_START: u64 = EBDA_START;

/// ACPI RSDP, inside the BIOS area that guests scan for it; the other
/// tables follow it.
pub const RSDP_START: u64 = 0xe_0000;
/// End of the area reserved for ACPI tables (exclusive).
pub const ACPI_END: u64 = VMGENID_START;

/// The VM generation ID (16 bytes, a GUID), just below the reset vector
/// in the BIOS area the guest never uses as RAM: the ACPI `VGEN` device's
/// `ADDR` points the guest here, and each restore of a snapshot writes a
/// new one (see `x86_64::acpi::vmgenid_aml`).
pub const VMGENID_START: u64 = RESET_VECTOR - VMGENID_LEN;
/// Bytes of the VM generation ID.
pub const VMGENID_LEN: u64 = 16;

/// The x86 reset vector, `f000:fff0` in real mode, where a BIOS would
/// start the machine over; see `x86_64::reset_vector`.
pub const RESET_VECTOR: u64 = 0xf_fff0;

/// First byte of high memory, where kernels are loaded.
pub const HIMEM_START: u64 = 0x10_0000;

/// Start of the device hole below 4 GiB. RAM beyond this moves above 4 GiB.
pub const MEM_32BIT_GAP_START: u64 = 0xc000_0000;
/// Size of the device hole below 4 GiB.
pub const MEM_32BIT_GAP_SIZE: u64 = FIRST_ADDR_PAST_32BITS - MEM_32BIT_GAP_START;
/// First address above the 32-bit space, where the rest of RAM goes.
pub const FIRST_ADDR_PAST_32BITS: u64 = 1 << 32;

/// virtio-mmio devices: one page each from the start of the device hole.
pub const VIRTIO_MMIO_START: u64 = MEM_32BIT_GAP_START;
/// MMIO space of one virtio-mmio device.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// Guest-physical base of virtio-mmio device number `index`.
pub const fn virtio_mmio_base(index: u32) -> u64 {
    VIRTIO_MMIO_START + index as u64 * VIRTIO_MMIO_SIZE
}

/// The PCI host bridge's memory window, where PCI devices' BARs go; the
/// ACPI tables tell the guest so.
pub const PCI_MMIO_START: u64 = 0xd000_0000;
/// Size of the PCI memory window.
pub const PCI_MMIO_SIZE: u64 = 0x1000_0000;

/// Interrupt lines for virtio devices, one each: IOAPIC pins that no legacy
/// ISA device (timer, keyboard, COM ports, RTC, FPU) uses.
pub const VIRTIO_GSIS: &[u32] = &[
    5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
];

/// The in-kernel IOAPIC's MMIO window.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// The in-kernel local APICs' MMIO window.
pub const APIC_START: u64 = 0xfee0_0000;

/// A 32-bit address constant as `u32`, checked when compiled.
#[allow(clippy::cast_possible_truncation)] // guarded by the assert
const fn addr32(addr: u64) -> u32 {
    assert!(addr <= u32::MAX as u64);
    addr as u32
}

/// [`IOAPIC_START`] for 32-bit table fields.
pub const IOAPIC_START_32: u32 = addr32(IOAPIC_START);
/// [`APIC_START`] for 32-bit table fields.
pub const APIC_START_32: u32 = addr32(APIC_START);

/// Legacy I/O ports and interrupt lines.
pub mod ports {
    /// COM1, a 16550 UART (8 registers).
    pub const COM1: u16 = 0x3f8;
    /// Interrupt line of COM1 (ISA IRQ 4, IOAPIC pin 4).
    pub const COM1_IRQ: u32 = 4;
    /// i8042 data port; the command/status port is `I8042_DATA + 4`.
    pub const I8042_DATA: u16 = 0x60;
    /// i8042 command and status port.
    pub const I8042_COMMAND: u16 = I8042_DATA + 4;
    /// Interrupt line of the i8042's keyboard (ISA IRQ 1, IOAPIC pin 1).
    pub const I8042_IRQ: u32 = 1;
    /// The i8042 command that pulses the CPU reset line.
    pub const I8042_RESET_COMMAND: u8 = 0xfe;
    /// The ACPI power-management block: sleep control (offset 0), sleep
    /// status (offset 1) and reset register (offset 2), one byte each.
    pub const ACPI_PM: u16 = 0x600;
    /// Number of ports in the ACPI power-management block.
    pub const ACPI_PM_LEN: u16 = 3;
    /// Sleep control register, named in the FADT.
    pub const ACPI_SLEEP_CONTROL: u16 = ACPI_PM;
    /// Sleep status register, named in the FADT.
    pub const ACPI_SLEEP_STATUS: u16 = ACPI_PM + 1;
    /// Reset register, named in the FADT.
    pub const ACPI_RESET: u16 = ACPI_PM + 2;
    /// Value the guest writes to the reset register to reset the machine.
    pub const ACPI_RESET_VALUE: u8 = 0x1;
    /// pvpanic: the guest reports a panic here (QEMU's port, which
    /// guests' ACPI `QEMU0001` drivers expect).
    pub const PVPANIC: u16 = 0x505;
    /// PCI configuration mechanism #1: CONFIG_ADDRESS, then CONFIG_DATA.
    pub const PCI_CONFIG: u16 = 0xcf8;
    /// Ports of PCI configuration mechanism #1.
    pub const PCI_CONFIG_LEN: u16 = 8;
    /// Sleep type of S5 (soft off), as the DSDT's `_S5_` object gives it.
    pub const ACPI_S5_SLEEP_TYPE: u8 = 5;
    /// Interrupt line of the ACPI generic event device (GED), by which
    /// the VMM tells the guest its generation ID changed: ISA IRQ 3, free
    /// since the machine has no COM2.
    pub const GED_IRQ: u32 = 3;
}
