//! Whether a guest's CPUID can be given on this host: a restored guest
//! keeps the CPUID it was booted with, and may use any feature it saw, so
//! every feature bit it saw must be one this host's KVM supports.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

use super::cpuid::{EXT1_ECX_CMP_LEGACY, LEAF1_ECX_HYPERVISOR, LEAF1_EDX_HTT};

/// The feature words compared: (leaf, subleaf, register name, bits that
/// Pointsman itself sets or clears, which KVM need not report).
const FEATURE_WORDS: [(u32, u32, Register, u32); 7] = [
    (0x1, 0, Register::Ecx, LEAF1_ECX_HYPERVISOR),
    (0x1, 0, Register::Edx, LEAF1_EDX_HTT),
    (0x7, 0, Register::Ebx, 0),
    (0x7, 0, Register::Ecx, 0),
    (0x7, 0, Register::Edx, 0),
    (0x8000_0001, 0, Register::Ecx, EXT1_ECX_CMP_LEGACY),
    (0x8000_0001, 0, Register::Edx, 0),
];

#[derive(Clone, Copy, Debug)]
enum Register {
    Ebx,
    Ecx,
    Edx,
}

impl Register {
    fn of(self, entry: &kvm_cpuid_entry2) -> u32 {
        match self {
            Register::Ebx => entry.ebx,
            Register::Ecx => entry.ecx,
            Register::Edx => entry.edx,
        }
    }
}

fn find(entries: &[kvm_cpuid_entry2], leaf: u32, subleaf: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == leaf && e.index == subleaf)
}

/// The feature bits `guest` has that `host` (KVM_GET_SUPPORTED_CPUID)
/// lacks, one line per register: empty when the guest fits.
pub fn missing_features(guest: &[kvm_cpuid_entry2], host: &CpuId) -> Vec<String> {
    FEATURE_WORDS
        .iter()
        .filter_map(|&(leaf, subleaf, register, ours)| {
            let wanted = find(guest, leaf, subleaf).map_or(0, |e| register.of(e)) & !ours;
            let offered = find(host.as_slice(), leaf, subleaf).map_or(0, |e| register.of(e));
            let missing = wanted & !offered;
            (missing != 0).then(|| {
                format!("CPUID leaf {leaf:#x}.{subleaf} {register:?} bits {missing:#010x}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf7(ebx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function: 7,
            ebx,
            ..Default::default()
        }
    }

    #[test]
    fn a_guest_within_the_host_fits() {
        let host = CpuId::from_entries(&[leaf7(0b1111)]).unwrap();
        assert!(missing_features(&[leaf7(0b0101)], &host).is_empty());
    }

    #[test]
    fn a_feature_the_host_lacks_is_named() {
        let host = CpuId::from_entries(&[leaf7(0b0001)]).unwrap();
        let missing = missing_features(&[leaf7(0b0101)], &host);
        assert_eq!(missing, ["CPUID leaf 0x7.0 Ebx bits 0x00000004"]);
    }

    #[test]
    fn bits_pointsman_sets_itself_do_not_count() {
        let guest = kvm_cpuid_entry2 {
            function: 1,
            ecx: LEAF1_ECX_HYPERVISOR,
            edx: LEAF1_EDX_HTT,
            ..Default::default()
        };
        let host = CpuId::from_entries(&[]).unwrap();
        assert!(missing_features(&[guest], &host).is_empty());
    }
}
