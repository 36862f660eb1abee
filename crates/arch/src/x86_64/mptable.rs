//! The Intel MultiProcessor Specification table (version 1.4).
//!
//! Written by hand because no maintained crate builds one; the format is
//! fixed and small. Guests that do not parse ACPI (and Linux with
//! `acpi=off`) find their CPUs and the IOAPIC here.

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::{APIC_START_32, IOAPIC_START_32, MPTABLE_START};
use crate::{Error, Result};

const SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
const ISA_BUS_ID: u8 = 0;
const ISA_IRQS: u8 = 16;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
const ALL_LAPICS: u8 = 0xff;
/// Family 6 in the CPU signature, with an FPU and an APIC in its features.
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);

/// The configuration table follows the 16-byte floating pointer.
const MPTABLE_CONFIG_START: u32 = 0x9_fc00 + 16;
const _: () = assert!(MPTABLE_CONFIG_START as u64 == MPTABLE_START + 16);

/// Most vCPUs the table can name: APIC IDs are one byte and the IOAPIC
/// takes the ID after the last CPU.
pub const MAX_CPUS: u32 = 254;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_sub(*b))
}

/// The configuration table (header and entries) for `cpus` vCPUs.
fn config_table(cpus: u8) -> Vec<u8> {
    let ioapic_id = cpus;
    let mut entries = Vec::new();
    let mut count: u16 = 0;
    for cpu in 0..cpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 };
        entries.extend_from_slice(&[0, cpu, APIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
        count += 1;
    }
    entries.extend_from_slice(&[1, ISA_BUS_ID]);
    entries.extend_from_slice(b"ISA   ");
    count += 1;
    entries.extend_from_slice(&[2, ioapic_id, IOAPIC_VERSION, 1]);
    entries.extend_from_slice(&(IOAPIC_START_32).to_le_bytes());
    count += 1;
    // ISA IRQ n reaches IOAPIC pin n; pin 0 also carries the PIC's ExtINT.
    for irq in 0..ISA_IRQS {
        let kind = if irq == 0 {
            INT_TYPE_EXTINT
        } else {
            INT_TYPE_INT
        };
        entries.extend_from_slice(&[3, kind, 0, 0, ISA_BUS_ID, irq, ioapic_id, irq]);
        count += 1;
    }
    entries.extend_from_slice(&[4, INT_TYPE_EXTINT, 0, 0, ISA_BUS_ID, 0, ALL_LAPICS, 0]);
    entries.extend_from_slice(&[4, INT_TYPE_NMI, 0, 0, ISA_BUS_ID, 0, ALL_LAPICS, 1]);
    count += 2;

    // At most 254 CPUs: a few KiB, far below the 16-bit limit.
    let length = u16::try_from(44 + entries.len()).unwrap_or(u16::MAX);
    let mut table = Vec::with_capacity(usize::from(length));
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&length.to_le_bytes());
    table.extend_from_slice(&[SPEC_REV, 0]);
    table.extend_from_slice(b"POINTSMN");
    table.extend_from_slice(b"MICROVM     ");
    table.extend_from_slice(&[0; 4]); // no OEM table
    table.extend_from_slice(&[0; 2]);
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&(APIC_START_32).to_le_bytes());
    table.extend_from_slice(&[0; 4]); // no extended table
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);
    table
}

/// The 16-byte floating pointer structure, pointing at `config_addr`.
fn floating_pointer(config_addr: u32) -> [u8; 16] {
    let mut mpf = [0u8; 16];
    mpf[0..4].copy_from_slice(b"_MP_");
    mpf[4..8].copy_from_slice(&config_addr.to_le_bytes());
    mpf[8] = 1; // length in 16-byte units
    mpf[9] = SPEC_REV;
    mpf[10] = checksum(&mpf);
    mpf
}

/// Writes the MP table for `cpus` vCPUs at [`MPTABLE_START`].
pub fn write_mptable<M: GuestMemory>(mem: &M, cpus: u32) -> Result<()> {
    let cpus = u8::try_from(cpus)
        .ok()
        .filter(|&n| u32::from(n) <= MAX_CPUS)
        .ok_or(Error::TooManyVcpus(cpus))?;
    let config_addr = u64::from(MPTABLE_CONFIG_START);
    let err = |addr| Error::GuestWrite {
        what: "MP table",
        addr,
    };
    mem.write_slice(
        &floating_pointer(MPTABLE_CONFIG_START),
        GuestAddress(MPTABLE_START),
    )
    .map_err(|_| err(MPTABLE_START))?;
    mem.write_slice(&config_table(cpus), GuestAddress(config_addr))
        .map_err(|_| err(config_addr))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn tables_checksum_to_zero() {
        assert_eq!(sum(&floating_pointer(0x9fc10)), 0);
        assert_eq!(sum(&config_table(4)), 0);
    }

    #[test]
    fn one_processor_entry_per_cpu_with_bsp_flag() {
        let table = config_table(3);
        let count = u16::from_le_bytes([table[34], table[35]]);
        assert_eq!(count, 3 + 1 + 1 + 16 + 2);
        assert_eq!(
            usize::from(u16::from_le_bytes([table[4], table[5]])),
            table.len()
        );
        let cpus: Vec<(u8, u8)> = (0..3)
            .map(|i| (table[44 + i * 20 + 1], table[44 + i * 20 + 3]))
            .collect();
        assert_eq!(cpus, vec![(0, 3), (1, 1), (2, 1)]);
    }

    #[test]
    fn written_where_guests_scan() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        write_mptable(&mem, 2).unwrap();
        let mut sig = [0u8; 4];
        mem.read_slice(&mut sig, GuestAddress(MPTABLE_START))
            .unwrap();
        assert_eq!(&sig, b"_MP_");
        let ptr: u32 = mem.read_obj(GuestAddress(MPTABLE_START + 4)).unwrap();
        mem.read_slice(&mut sig, GuestAddress(u64::from(ptr)))
            .unwrap();
        assert_eq!(&sig, b"PCMP");
    }

    #[test]
    fn too_many_cpus_is_an_error() {
        let mem: GuestMemoryMmap =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        assert!(matches!(
            write_mptable(&mem, 255),
            Err(Error::TooManyVcpus(255))
        ));
    }
}
