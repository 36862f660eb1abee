//! ACPI tables: RSDP, XSDT, FADT (hardware-reduced), MADT and DSDT.

use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::{
    ports, virtio_mmio_base, ACPI_END, APIC_START_32, IOAPIC_START_32, PCI_MMIO_SIZE,
    PCI_MMIO_START, RSDP_START, VIRTIO_MMIO_SIZE, VMGENID_START,
};
use crate::{Error, Result};

const OEM_ID: [u8; 6] = *b"PTSMAN";
const OEM_TABLE_ID: [u8; 8] = *b"POINTSMN";
const OEM_REVISION: u32 = 1;
/// FADT IA-PC boot architecture flags.
const IAPC_8042_PRESENT: u16 = 1 << 1;
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
/// Tables start on this alignment.
const TABLE_ALIGN: u64 = 16;

/// The AML describing COM1 as a PNP0501 UART, so guests bind it from ACPI.
pub fn com1_aml() -> Vec<u8> {
    let mut bytes = Vec::new();
    let io = aml::IO::new(ports::COM1, ports::COM1, 1, 8);
    let irq = aml::Interrupt::new(true, true, false, false, ports::COM1_IRQ);
    let crs = aml::ResourceTemplate::new(vec![&io, &irq]);
    aml::Device::new(
        "_SB_.COM1".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

/// The AML describing the i8042 as a `PNP0303` keyboard controller (its
/// data port, its command port, IRQ 1), which Linux's `i8042` driver
/// binds to. No `PNP0F13` mouse: Linux then leaves the AUX port alone.
pub fn i8042_aml() -> Vec<u8> {
    let mut bytes = Vec::new();
    let data = aml::IO::new(ports::I8042_DATA, ports::I8042_DATA, 1, 1);
    let command = aml::IO::new(ports::I8042_COMMAND, ports::I8042_COMMAND, 1, 1);
    let irq = aml::Interrupt::new(true, true, false, false, ports::I8042_IRQ);
    let crs = aml::ResourceTemplate::new(vec![&data, &command, &irq]);
    aml::Device::new(
        "_SB_.PS2K".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0303")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

/// The AML describing the pvpanic port as QEMU's `QEMU0001` device, which
/// Linux's `pvpanic-mmio` driver binds to.
pub fn pvpanic_aml() -> Vec<u8> {
    let mut bytes = Vec::new();
    let io = aml::IO::new(ports::PVPANIC, ports::PVPANIC, 1, 1);
    let crs = aml::ResourceTemplate::new(vec![&io]);
    let hid: aml::AmlString = "QEMU0001".to_owned();
    aml::Device::new(
        "_SB_.PEVT".into(),
        vec![
            &aml::Name::new("_HID".into(), &hid),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

/// The AML describing the VM generation ID device (`VGEN`, which Linux's
/// `vmgenid` driver binds to through `VMGENCTR`: its `ADDR` gives where
/// the 16-byte ID is) and the generic event device (`ACPI0013`) that
/// notifies it: an edge on [`ports::GED_IRQ`] runs `_EVT`, which tells the
/// guest the ID changed, and the guest reseeds its random number
/// generator at once (Linux 5.18 and later).
pub fn vmgenid_aml() -> Vec<u8> {
    let mut bytes = Vec::new();
    let addr_low = u32::try_from(VMGENID_START).unwrap_or(0);
    let addr_high = 0u32;
    let addr = aml::Package::new(vec![&addr_low, &addr_high]);
    let hid: aml::AmlString = "VMGENCTR".to_owned();
    let cid: aml::AmlString = "VM_Gen_Counter".to_owned();
    aml::Device::new(
        "_SB_.VGEN".into(),
        vec![
            &aml::Name::new("_HID".into(), &hid),
            &aml::Name::new("_CID".into(), &cid),
            &aml::Name::new("_DDN".into(), &cid),
            &aml::Name::new("ADDR".into(), &addr),
        ],
    )
    .to_aml_bytes(&mut bytes);

    let irq = aml::Interrupt::new(true, true, false, false, ports::GED_IRQ);
    let crs = aml::ResourceTemplate::new(vec![&irq]);
    let vgen: aml::Path = "\\_SB_.VGEN".into();
    let changed: u8 = 0x80;
    let notify = aml::Notify::new(&vgen, &changed);
    let is_ged_irq = aml::Equal::new(&aml::Arg(0), &ports::GED_IRQ);
    let on_ged_irq = aml::If::new(&is_ged_irq, vec![&notify]);
    let ged_hid: aml::AmlString = "ACPI0013".to_owned();
    aml::Device::new(
        "_SB_.GED_".into(),
        vec![
            &aml::Name::new("_HID".into(), &ged_hid),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
            &aml::Method::new("_EVT".into(), 1, true, vec![&on_ged_irq]),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

/// The AML describing virtio-mmio device number `index` on interrupt line
/// `gsi`, which Linux's `virtio_mmio` driver binds to through the
/// `LNRO0005` ID.
pub fn virtio_mmio_aml(index: u32, gsi: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Every slot lies in the 32-bit hole; a slot past it is described as
    // nothing rather than at a wrapped address.
    let base = u32::try_from(virtio_mmio_base(index)).unwrap_or(0);
    let size = u32::try_from(VIRTIO_MMIO_SIZE).unwrap_or(0);
    let mem = aml::Memory32Fixed::new(true, base, size);
    let irq = aml::Interrupt::new(true, true, false, false, gsi);
    let crs = aml::ResourceTemplate::new(vec![&mem, &irq]);
    let hid: aml::AmlString = "LNRO0005".to_owned();
    aml::Device::new(
        format!("_SB_.V{:03X}", index % 0x1000).as_str().into(),
        vec![
            &aml::Name::new("_HID".into(), &hid),
            &aml::Name::new("_UID".into(), &index),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

/// The AML describing the PCI host bridge: bus 0, configuration through
/// ports 0xcf8-0xcff, and the memory window that devices' BARs sit in.
/// Plain PCI (PNP0A03), not PCIe: the devices need no extended
/// configuration space, so no MCFG table and no `_OSC` handshake.
pub fn pci_host_bridge_aml() -> Vec<u8> {
    let mut bytes = Vec::new();
    let buses = aml::AddressSpace::new_bus_number(0u16, 0u16);
    let config_ports = aml::IO::new(ports::PCI_CONFIG, ports::PCI_CONFIG, 1, 8);
    let window_end = u32::try_from(PCI_MMIO_START + PCI_MMIO_SIZE - 1).unwrap_or(u32::MAX);
    let window = aml::AddressSpace::new_memory(
        aml::AddressSpaceCacheable::NotCacheable,
        true,
        u32::try_from(PCI_MMIO_START).unwrap_or(u32::MAX),
        window_end,
        None,
    );
    let crs = aml::ResourceTemplate::new(vec![&buses, &config_ports, &window]);
    aml::Device::new(
        "_SB_.PCI0".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0A03")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_SEG".into(), &aml::ZERO),
            &aml::Name::new("_BBN".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut bytes);
    bytes
}

fn dsdt(device_aml: &[u8]) -> Sdt {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    // S5 (soft off) with sleep type ACPI_S5_SLEEP_TYPE: what a guest writes
    // to the sleep control register to power off.
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(vec![&ports::ACPI_S5_SLEEP_TYPE]),
    );
    let mut body = Vec::new();
    s5.to_aml_bytes(&mut body);
    body.extend_from_slice(device_aml);
    dsdt.append_slice(&body);
    dsdt
}

fn io_register(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(port),
    )
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.sleep_control_reg = io_register(ports::ACPI_SLEEP_CONTROL);
    fadt.sleep_status_reg = io_register(ports::ACPI_SLEEP_STATUS);
    fadt.reset_reg = io_register(ports::ACPI_RESET);
    fadt.reset_value = ports::ACPI_RESET_VALUE;
    // No VGA and no CMOS RTC: without the RTC bit, Linux probes ports
    // 0x70/0x71, reads 0xff (update in progress) and polls for seconds.
    // Guests take wall-clock time from kvm-clock instead. The i8042 is
    // there (its keyboard carries Ctrl-Alt-Del).
    fadt.iapc_boot_arch =
        (IAPC_8042_PRESENT | IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).into();
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"POINTSMN").into();
    let mut bytes = Vec::new();
    fadt.finalize().to_aml_bytes(&mut bytes);
    bytes
}

fn madt(cpus: u8) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(APIC_START_32),
    );
    for cpu in 0..cpus {
        madt.add_structure(ProcessorLocalApic::new(cpu, cpu, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(cpus, IOAPIC_START_32, 0));
    let mut bytes = Vec::new();
    madt.to_aml_bytes(&mut bytes);
    bytes
}

/// Writes the ACPI tables for `cpus` vCPUs, with `device_aml` (device
/// descriptions) in the DSDT, and returns the RSDP's address.
pub fn write_acpi_tables<M: GuestMemory>(mem: &M, cpus: u32, device_aml: &[u8]) -> Result<u64> {
    let cpus = u8::try_from(cpus)
        .ok()
        .filter(|&n| u32::from(n) <= super::mptable::MAX_CPUS)
        .ok_or(Error::TooManyVcpus(cpus))?;
    let mut next = RSDP_START + Rsdp::len() as u64;
    let mut place = |bytes: &[u8]| -> Result<u64> {
        let addr = next.next_multiple_of(TABLE_ALIGN);
        let end = addr + bytes.len() as u64;
        if end > ACPI_END {
            return Err(Error::AcpiTooLarge {
                needed: end - RSDP_START,
                available: ACPI_END - RSDP_START,
            });
        }
        mem.write_slice(bytes, GuestAddress(addr))
            .map_err(|_| Error::GuestWrite {
                what: "ACPI tables",
                addr,
            })?;
        next = end;
        Ok(addr)
    };

    let dsdt_addr = place(dsdt(device_aml).as_slice())?;
    let fadt_addr = place(&fadt(dsdt_addr))?;
    let madt_addr = place(&madt(cpus))?;
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let mut xsdt_bytes = Vec::new();
    xsdt.to_aml_bytes(&mut xsdt_bytes);
    let xsdt_addr = place(&xsdt_bytes)?;

    let mut rsdp = Vec::new();
    Rsdp::new(OEM_ID, xsdt_addr).to_aml_bytes(&mut rsdp);
    mem.write_slice(&rsdp, GuestAddress(RSDP_START))
        .map_err(|_| Error::GuestWrite {
            what: "ACPI RSDP",
            addr: RSDP_START,
        })?;
    Ok(RSDP_START)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn read_table(mem: &GuestMemoryMmap, addr: u64) -> Vec<u8> {
        let len: u32 = mem.read_obj(GuestAddress(addr + 4)).unwrap();
        let mut bytes = vec![0; len as usize];
        mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
        bytes
    }

    fn sums_to_zero(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0
    }

    /// Follows RSDP -> XSDT and returns (signature, address) of each table.
    fn tables(mem: &GuestMemoryMmap) -> Vec<([u8; 4], u64)> {
        let mut sig = [0u8; 8];
        mem.read_slice(&mut sig, GuestAddress(RSDP_START)).unwrap();
        assert_eq!(&sig, b"RSD PTR ");
        let xsdt_addr: u64 = mem.read_obj(GuestAddress(RSDP_START + 24)).unwrap();
        let xsdt = read_table(mem, xsdt_addr);
        assert!(sums_to_zero(&xsdt));
        xsdt[36..]
            .chunks_exact(8)
            .map(|c| {
                let addr = u64::from_le_bytes(c.try_into().unwrap());
                let t = read_table(mem, addr);
                assert!(sums_to_zero(&t));
                (t[0..4].try_into().unwrap(), addr)
            })
            .collect()
    }

    #[test]
    fn rsdp_leads_to_fadt_and_madt() {
        let mem = mem();
        assert_eq!(write_acpi_tables(&mem, 4, &com1_aml()).unwrap(), RSDP_START);
        let sigs: Vec<[u8; 4]> = tables(&mem).iter().map(|t| t.0).collect();
        assert_eq!(sigs, vec![*b"FACP", *b"APIC"]);
    }

    #[test]
    fn madt_lists_every_cpu_and_the_ioapic() {
        let mem = mem();
        write_acpi_tables(&mem, 3, &[]).unwrap();
        let madt = read_table(&mem, tables(&mem)[1].1);
        let mut at = 44;
        let mut apic_ids = Vec::new();
        let mut ioapics = 0;
        while at < madt.len() {
            match madt[at] {
                0 => apic_ids.push(madt[at + 3]),
                1 => ioapics += 1,
                _ => {}
            }
            at += usize::from(madt[at + 1]);
        }
        assert_eq!(apic_ids, vec![0, 1, 2]);
        assert_eq!(ioapics, 1);
    }

    #[test]
    fn fadt_is_hardware_reduced_with_sleep_and_reset_registers() {
        let mem = mem();
        write_acpi_tables(&mem, 1, &[]).unwrap();
        let fadt = read_table(&mem, tables(&mem)[0].1);
        let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        let port = |off: usize| u64::from_le_bytes(fadt[off..off + 8].try_into().unwrap());
        assert_eq!(fadt[116], 1, "reset register is an I/O port");
        let boot_arch = u16::from_le_bytes([fadt[109], fadt[110]]);
        assert_ne!(boot_arch & (1 << 5), 0, "no CMOS RTC");
        assert_ne!(boot_arch & (1 << 1), 0, "an 8042");
        assert_eq!(port(120), u64::from(ports::ACPI_RESET));
        assert_eq!(fadt[128], ports::ACPI_RESET_VALUE);
        assert_eq!(port(248), u64::from(ports::ACPI_SLEEP_CONTROL));
        assert_eq!(port(260), u64::from(ports::ACPI_SLEEP_STATUS));
        let dsdt_addr = port(140);
        let dsdt = read_table(&mem, dsdt_addr);
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert!(sums_to_zero(&dsdt));
        assert!(dsdt.windows(4).any(|w| w == b"_S5_"));
    }

    #[test]
    fn the_generation_id_device_and_its_event_device_are_described() {
        let aml = vmgenid_aml();
        let has = |needle: &[u8]| aml.windows(needle.len()).any(|w| w == needle);
        for name in [
            &b"VMGENCTR"[..],
            b"VM_Gen_Counter",
            b"ADDR",
            b"ACPI0013",
            b"_EVT",
        ] {
            assert!(has(name), "no {}", String::from_utf8_lossy(name));
        }
        // ADDR's first element: the ID's address as a DWord.
        let mut addr = vec![0x0c];
        addr.extend_from_slice(&0xf_ffe0u32.to_le_bytes());
        assert!(has(&addr), "ADDR does not hold 0xfffe0");
    }

    #[test]
    fn pvpanic_is_described_as_qemu0001() {
        let aml = pvpanic_aml();
        assert!(aml.windows(8).any(|w| w == b"QEMU0001"));
        assert!(aml.windows(4).any(|w| w == b"PEVT"));
    }

    #[test]
    fn pci_host_bridge_is_described_with_its_window() {
        let aml = pci_host_bridge_aml();
        assert!(aml.windows(4).any(|w| w == b"PCI0"));
        // PNP0A03 as a compressed EISA ID.
        assert!(aml.windows(4).any(|w| w == [0x41, 0xd0, 0x0a, 0x03]));
        let start = u32::try_from(PCI_MMIO_START).unwrap().to_le_bytes();
        let end = u32::try_from(PCI_MMIO_START + PCI_MMIO_SIZE - 1)
            .unwrap()
            .to_le_bytes();
        let window: Vec<u8> = start.iter().chain(end.iter()).copied().collect();
        assert!(aml.windows(8).any(|w| w == window.as_slice()));
    }

    #[test]
    fn virtio_mmio_devices_are_described() {
        let aml = virtio_mmio_aml(3, 9);
        assert!(aml.windows(8).any(|w| w == b"LNRO0005"));
        assert!(aml.windows(4).any(|w| w == b"V003"));
        assert!(aml.windows(4).any(|w| w == 0xc000_3000u32.to_le_bytes()));
    }

    #[test]
    fn i8042_is_described_as_pnp0303_with_its_ports_and_irq_1() {
        let aml = i8042_aml();
        assert!(aml.windows(4).any(|w| w == b"PS2K"));
        // PNP0303 as a compressed EISA ID.
        assert!(aml.windows(4).any(|w| w == [0x41, 0xd0, 0x03, 0x03]));
        // IO descriptors: 0x47, decode16, min, max, alignment 1, length 1.
        for port in [0x60u16, 0x64] {
            let [lo, hi] = port.to_le_bytes();
            let io = [0x47, 0x01, lo, hi, lo, hi, 0x01, 0x01];
            assert!(aml.windows(8).any(|w| w == io), "port {port:#x}");
        }
        // Extended interrupt descriptor: consumer, edge, active high, one
        // interrupt: 1.
        assert!(aml
            .windows(9)
            .any(|w| w == [0x89, 0x06, 0x00, 0x03, 0x01, 1, 0, 0, 0]));
    }

    #[test]
    fn com1_is_described() {
        let aml = com1_aml();
        assert!(aml.windows(4).any(|w| w == b"COM1"));
    }
}
