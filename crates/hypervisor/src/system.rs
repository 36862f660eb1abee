use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::Path;
use std::sync::OnceLock;

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm};

use crate::error::{Error, Result};
use crate::vm::Vm;

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
        let cpuid = self
            .kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(Error::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
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
