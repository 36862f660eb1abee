use std::path::PathBuf;

/// What went wrong while talking to KVM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `/dev/kvm` does not exist: no KVM module is loaded.
    #[error("{path} does not exist: this host has no KVM (is the kvm module loaded?)")]
    DeviceMissing { path: PathBuf },
    /// `/dev/kvm` exists but this user may not open it.
    #[error("no permission to open {path}: run as root or join the group that owns it")]
    PermissionDenied { path: PathBuf },
    /// Any other failure to open `/dev/kvm`.
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The KVM API version is not the stable one (12).
    #[error("KVM API version {0} is not supported (expected 12)")]
    ApiVersion(i32),
    /// A capability the VMM needs is missing.
    #[error("KVM lacks a capability Pointsman needs: {0}")]
    MissingCapability(&'static str),
    /// KVM refused to set an MSR.
    #[error("KVM refused to set MSR {index:#x}")]
    MsrRejected { index: u32 },
    /// An MSI route was asked for a GSI that is an irqchip pin or past KVM's limit.
    #[error("GSI {gsi} cannot carry an MSI route (MSI GSIs are {first}..{end})", first = crate::irq_routing::MSI_GSI_BASE, end = crate::irq_routing::MAX_GSI)]
    MsiGsiOutOfRange { gsi: u32 },
    /// Another route would make the GSI routing table larger than KVM takes.
    #[error("the GSI routing table is full: KVM takes at most {max} routes")]
    RoutingTableFull { max: usize },
    /// Saved state holds more entries than KVM's structures take.
    #[error("saved state has {count} {what}, more than KVM takes")]
    StateTooLarge { what: &'static str, count: usize },
    /// A memory slot larger than the host's address space.
    #[error("memory slot {slot} of {size} bytes is larger than the host's address space")]
    SlotTooLarge { slot: u32, size: u64 },
    /// A stopped vCPU's last instruction needs the VMM again.
    #[error("the vCPU stopped inside an instruction that needs more device accesses")]
    PendingIo,
    /// An ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Ioctl {
        op: &'static str,
        source: vmm_sys_util::errno::Error,
    },
}

impl Error {
    pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Self {
        move |source| Error::Ioctl { op, source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
