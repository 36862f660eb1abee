//! The CPUID each vCPU sees: what KVM supports, with this vCPU's topology,
//! the hypervisor bit and the host's brand string.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

/// Leaf 1 ECX: running under a hypervisor.
pub(crate) const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX: more than one logical processor per package.
pub(crate) const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Leaf 0x80000001 ECX: AMD's "core multi-processing legacy mode".
pub(crate) const EXT1_ECX_CMP_LEGACY: u32 = 1 << 1;
/// Leaf 0xB/0x1F ECX level types.
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;

/// The brand string leaves (48 bytes of text in their EAX..EDX).
const BRAND_LEAVES: [u32; 3] = [0x8000_0002, 0x8000_0003, 0x8000_0004];

/// The host CPU's brand string leaves, EAX..EDX of each, or zeros where
/// the host has none. Read once: a CPUID instruction traps to the outer
/// hypervisor where the host is itself a guest (6 µs each under PVM).
fn host_brand() -> [[u32; 4]; 3] {
    static BRAND: std::sync::OnceLock<[[u32; 4]; 3]> = std::sync::OnceLock::new();
    *BRAND.get_or_init(read_host_brand)
}

fn read_host_brand() -> [[u32; 4]; 3] {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86_64 CPU and only reads registers.
    #[allow(unused_unsafe)]
    let max = unsafe { __cpuid(0x8000_0000) }.eax;
    if max < BRAND_LEAVES[2] {
        return [[0; 4]; 3];
    }
    BRAND_LEAVES.map(|leaf| {
        // SAFETY: as above; the host reports this leaf.
        #[allow(unused_unsafe)]
        let r = unsafe { __cpuid(leaf) };
        [r.eax, r.ebx, r.ecx, r.edx]
    })
}

/// Gives brand string leaves that KVM left empty the host's text, as
/// QEMU's `-cpu host` does: KVM's supported CPUID zeroes them, and a Linux
/// guest without one names its CPU from a table ("Hammer" on AMD).
fn fill_brand(entries: &mut [kvm_cpuid_entry2], brand: &[[u32; 4]; 3]) {
    for entry in entries.iter_mut() {
        let Some(i) = BRAND_LEAVES.iter().position(|&l| l == entry.function) else {
            continue;
        };
        if [entry.eax, entry.ebx, entry.ecx, entry.edx] == [0; 4] {
            [entry.eax, entry.ebx, entry.ecx, entry.edx] = brand[i];
        }
    }
}

/// Bits needed to number `count` items (at least 0).
fn id_bits(count: u32) -> u32 {
    if count <= 1 {
        0
    } else {
        32 - (count - 1).leading_zeros()
    }
}

/// One package with `cpus` cores of one thread each; vCPU `apic_id`
/// is core `apic_id`.
fn topology_entries(function: u32, apic_id: u32, cpus: u32) -> [kvm_cpuid_entry2; 3] {
    let level = |index: u32, shift: u32, count: u32, kind: u32| kvm_cpuid_entry2 {
        function,
        index,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        eax: shift,
        ebx: count,
        ecx: (kind << 8) | index,
        edx: apic_id,
        ..Default::default()
    };
    [
        level(0, 0, 1, LEVEL_TYPE_SMT),
        level(1, id_bits(cpus), cpus, LEVEL_TYPE_CORE),
        level(2, 0, 0, 0),
    ]
}

/// The CPUID for vCPU `apic_id` of `cpus`, from KVM's supported leaves.
pub fn vcpu_cpuid(supported: &CpuId, apic_id: u32, cpus: u32) -> CpuId {
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .filter(|e| e.function != 0xb && e.function != 0x1f)
        .copied()
        .collect();
    let max_basic = entries
        .iter()
        .find(|e| e.function == 0)
        .map_or(0, |e| e.eax);

    for entry in entries.iter_mut() {
        match entry.function {
            0x1 => {
                entry.ebx = (entry.ebx & 0x0000_ffff) | (apic_id << 24) | ((cpus & 0xff) << 16);
                entry.ecx |= LEAF1_ECX_HYPERVISOR;
                if cpus > 1 {
                    entry.edx |= LEAF1_EDX_HTT;
                } else {
                    entry.edx &= !LEAF1_EDX_HTT;
                }
            }
            0x4 if entry.eax & 0x1f != 0 => {
                // Cores per package, and threads sharing each cache: one
                // thread per core, the last level shared by the package.
                let cache_level = (entry.eax >> 5) & 0x7;
                let sharing = if cache_level >= 3 { cpus - 1 } else { 0 };
                entry.eax = (entry.eax & 0x3ff) | ((cpus - 1) << 26) | (sharing << 14);
            }
            0x8000_0001 => {
                if cpus > 1 {
                    entry.ecx |= EXT1_ECX_CMP_LEGACY;
                } else {
                    entry.ecx &= !EXT1_ECX_CMP_LEGACY;
                }
            }
            0x8000_0008 => {
                entry.ecx = (id_bits(cpus) << 12) | (cpus - 1);
            }
            0x8000_001e => {
                entry.eax = apic_id;
                entry.ebx = apic_id & 0xff;
                entry.ecx = 0;
            }
            _ => {}
        }
    }

    fill_brand(&mut entries, &host_brand());
    entries.extend(topology_entries(0xb, apic_id, cpus));
    if max_basic >= 0x1f {
        entries.extend(topology_entries(0x1f, apic_id, cpus));
    }
    // KVM's own limit on entries is far above what is added here.
    CpuId::from_entries(&entries).unwrap_or_else(|_| supported.clone())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    fn host_like() -> CpuId {
        let entries = [
            kvm_cpuid_entry2 {
                function: 0,
                eax: 0xd,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 4,
                index: 3,
                eax: (3 << 5) | 3,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                edx: 99,
                ..Default::default()
            },
        ];
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn empty_brand_leaves_get_the_host_text_and_others_stay() {
        let mut entries: Vec<kvm_cpuid_entry2> = BRAND_LEAVES
            .iter()
            .map(|&function| kvm_cpuid_entry2 {
                function,
                ..Default::default()
            })
            .collect();
        entries[1].eax = 7;
        let brand = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]];
        fill_brand(&mut entries, &brand);
        let regs: Vec<[u32; 4]> = entries
            .iter()
            .map(|e| [e.eax, e.ebx, e.ecx, e.edx])
            .collect();
        assert_eq!(regs, [[1, 2, 3, 4], [7, 0, 0, 0], [9, 10, 11, 12]]);
    }

    #[test]
    fn vcpu_sees_the_host_brand_string() {
        let mut entries = host_like().as_slice().to_vec();
        entries.extend(BRAND_LEAVES.map(|function| kvm_cpuid_entry2 {
            function,
            ..Default::default()
        }));
        let cpuid = vcpu_cpuid(&CpuId::from_entries(&entries).unwrap(), 0, 1);
        let host = host_brand();
        for (i, function) in BRAND_LEAVES.into_iter().enumerate() {
            let e = leaf(&cpuid, function, 0);
            assert_eq!([e.eax, e.ebx, e.ecx, e.edx], host[i]);
        }
    }

    fn leaf(cpuid: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
        *cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap()
    }

    #[test]
    fn leaf1_carries_apic_id_count_and_hypervisor_bit() {
        let cpuid = vcpu_cpuid(&host_like(), 3, 4);
        let l1 = leaf(&cpuid, 1, 0);
        assert_eq!(l1.ebx >> 24, 3);
        assert_eq!((l1.ebx >> 16) & 0xff, 4);
        assert_eq!(l1.ebx & 0xffff, 0x0800);
        assert_ne!(l1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(l1.edx & LEAF1_EDX_HTT, 0);
    }

    #[test]
    fn leaf_b_describes_one_package_of_cores() {
        let cpuid = vcpu_cpuid(&host_like(), 2, 4);
        let smt = leaf(&cpuid, 0xb, 0);
        let core = leaf(&cpuid, 0xb, 1);
        assert_eq!((smt.eax, smt.ebx, smt.edx), (0, 1, 2));
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (2, 4, 2, 2));
        assert_eq!(leaf(&cpuid, 0xb, 2).ecx >> 8, 0);
        // The host's own leaf 0xB is gone.
        assert_eq!(
            cpuid
                .as_slice()
                .iter()
                .filter(|e| e.function == 0xb)
                .count(),
            3
        );
    }

    #[test]
    fn last_level_cache_is_shared_by_all_cores() {
        let cpuid = vcpu_cpuid(&host_like(), 0, 4);
        let l3 = leaf(&cpuid, 4, 3);
        assert_eq!(l3.eax >> 26, 3);
        assert_eq!((l3.eax >> 14) & 0xfff, 3);
    }

    #[test]
    fn single_cpu_has_no_htt() {
        let cpuid = vcpu_cpuid(&host_like(), 0, 1);
        assert_eq!(leaf(&cpuid, 1, 0).edx & LEAF1_EDX_HTT, 0);
        assert_eq!(leaf(&cpuid, 0xb, 1).eax, 0);
    }

    #[test]
    fn id_bits_rounds_up() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(id_bits), [0, 1, 2, 2, 3, 3, 4]);
    }
}
