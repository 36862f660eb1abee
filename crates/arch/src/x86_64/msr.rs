//! The MSRs a Linux guest expects at boot.

use kvm_bindings::{kvm_msr_entry, Msrs};

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// Fast string operations enabled, as firmware leaves them.
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRs enabled, default memory type write-back.
const MTRR_ENABLE_WRITE_BACK: u64 = (1 << 11) | 6;

/// The boot MSR values, limited to those KVM reports it can set
/// (`supported` is KVM's MSR index list), so a host that lacks one does not
/// fail the boot.
pub fn boot_msrs(supported: &[u32]) -> Msrs {
    let wanted = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITE_BACK),
    ];
    let entries: Vec<kvm_msr_entry> = wanted
        .iter()
        .filter(|(index, _)| supported.contains(index))
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    // The list is far below KVM_MAX_MSR_ENTRIES, so this cannot fail.
    Msrs::from_entries(&entries).unwrap_or_else(|_| Msrs::new(0).expect("an empty MSR list"))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[test]
    fn keeps_only_supported_msrs() {
        let msrs = boot_msrs(&[MSR_IA32_MISC_ENABLE, MSR_LSTAR, 0x1234]);
        let got: Vec<(u32, u64)> = msrs.as_slice().iter().map(|e| (e.index, e.data)).collect();
        assert_eq!(got, vec![(MSR_LSTAR, 0), (MSR_IA32_MISC_ENABLE, 1)]);
    }

    #[test]
    fn mtrr_default_is_write_back() {
        let msrs = boot_msrs(&[MSR_MTRR_DEF_TYPE]);
        assert_eq!(msrs.as_slice()[0].data, 0x806);
    }
}
