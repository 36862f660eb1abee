use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::Path;
use std::sync::OnceLock;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm};

use crate::error::{Error, Result};
use crate::vm::Vm;

/// Leaf 1 ECX: the LAPIC timer has TSC-deadline mode.
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;

/// KVM emulates the LAPIC's TSC-deadline timer wherever it reports
/// KVM_CAP_TSC_DEADLINE_TIMER, but kernels before 6.14 leave its CPUID bit
/// out of KVM_GET_SUPPORTED_CPUID (userspace is to add it, as QEMU and
/// Firecracker do). A Linux guest without it must calibrate the LAPIC
/// timer against another clock at boot and programs it through the
/// divide-and-count registers.
fn add_tsc_deadline(cpuid: &mut CpuId) {
    for entry in cpuid.as_mut_slice() {
        if entry.function == 1 {
            entry.ecx |= LEAF1_ECX_TSC_DEADLINE;
        }
    }
}

/// The KVM system: the open `/dev/kvm`.
pub struct Hypervisor {
    kvm: Kvm,
    // What KVM supports does not change while it runs, and asking costs:
    // under a nested hypervisor each host CPUID instruction traps, so one
    // KVM_GET_SUPPORTED_CPUID takes about 0.4 ms. Ask once per process.
    supported_cpuid: OnceLock<CpuId>,
    msr_index_list: OnceLock<Vec<u32>>,
}

impl Hypervisor {
    /// Opens `path` (normally `/dev/kvm`) and checks the API version and
    /// the capabilities every Pointsman VM relies on.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => Error::DeviceMissing {
                    path: path.to_owned(),
                },
                ErrorKind::PermissionDenied => Error::PermissionDenied {
                    path: path.to_owned(),
                },
                _ => Error::Open {
                    path: path.to_owned(),
                    source,
                },
            })?;
        // SAFETY: the fd was just opened by us and its ownership moves into `Kvm`.
        let kvm = unsafe { Kvm::from_raw_fd(file.into_raw_fd()) };
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(Error::ApiVersion(version));
        }
        for (cap, name) in [
            (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
            (Cap::Irqfd, "KVM_CAP_IRQFD"),
            (Cap::Ioeventfd, "KVM_CAP_IOEVENTFD"),
            (Cap::Pit2, "KVM_CAP_PIT2"),
            (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
            (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
            (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(Error::MissingCapability(name));
            }
        }
        Ok(Hypervisor {
            kvm,
            supported_cpuid: OnceLock::new(),
            msr_index_list: OnceLock::new(),
        })
    }

    /// The most vCPUs one VM may have.
    pub fn max_vcpus(&self) -> usize {
        self.kvm.get_max_vcpus()
    }

    /// The most memory slots one VM may have.
    pub fn max_memslots(&self) -> usize {
        self.kvm.get_nr_memslots()
    }

    /// The CPUID leaves KVM can present to a guest.
    pub fn supported_cpuid(&self) -> Result<&CpuId> {
        if let Some(cpuid) = self.supported_cpuid.get() {
            return Ok(cpuid);
        }
        let mut cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(Error::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        if self.kvm.check_extension(Cap::TscDeadlineTimer) {
            add_tsc_deadline(&mut cpuid);
        }
        Ok(self.supported_cpuid.get_or_init(|| cpuid))
    }

    /// The MSRs KVM lets a VMM read and write.
    pub fn msr_index_list(&self) -> Result<&[u32]> {
        if let Some(list) = self.msr_index_list.get() {
            return Ok(list);
        }
        let list = self
            .kvm
            .get_msr_index_list()
            .map(|list| list.as_slice().to_vec())
            .map_err(Error::ioctl("KVM_GET_MSR_INDEX_LIST"))?;
        Ok(self.msr_index_list.get_or_init(|| list))
    }

    /// Creates an empty VM.
    pub fn create_vm(&self) -> Result<Vm> {
        let fd = self
            .kvm
            .create_vm()
            .map_err(Error::ioctl("KVM_CREATE_VM"))?;
        Ok(Vm::new(fd))
    }
}

#[cfg(test)]
mod tests {
    use kvm_bindings::kvm_cpuid_entry2;

    use super::*;

    #[test]
    fn tsc_deadline_is_added_to_leaf_1_only() {
        let entry = |function, ecx| kvm_cpuid_entry2 {
            function,
            ecx,
            ..Default::default()
        };
        let mut cpuid = CpuId::from_entries(&[entry(0, 0), entry(1, 0x8000_0001)]).unwrap();
        add_tsc_deadline(&mut cpuid);
        let ecx: Vec<u32> = cpuid.as_slice().iter().map(|e| e.ecx).collect();
        assert_eq!(ecx, [0, 0x8100_0001]);
    }
}
