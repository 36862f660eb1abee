use std::path::PathBuf;

/// Why a run failed. [`Error::is_user_error`] tells bad input (a file, a
/// size, a count the user gave) from failures of the guest or the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Too few or too many vCPUs (`--cpus`, `vcpu_count`).
    #[error("{requested} vCPUs is out of range: this host allows 1 to {max}")]
    InvalidCpus { requested: u32, max: u32 },
    /// Too little guest memory (`--memory`, `mem_size_mib`).
    #[error("guest memory of {0} bytes is too small: at least {1} MiB is needed")]
    MemoryTooSmall(u64, u64),
    /// More guest memory than guest physical addresses can reach.
    #[error("guest memory of {requested} bytes is more than this host can map (guest physical addresses end at {limit:#x})")]
    MemoryTooLarge { requested: u64, limit: u64 },
    /// A memory size that does not parse.
    #[error("invalid memory size {0:?}: expected a number with an optional K, M, G or T suffix, such as 256M")]
    InvalidMemorySize(String),
    /// A `--memory` value whose options do not parse.
    #[error("invalid --memory {0:?}: {1} (expected SIZE[,thp=on|off])")]
    InvalidMemoryOption(String, String),
    /// A `--balloon` value that does not parse.
    #[error("invalid --balloon: {0}")]
    InvalidBalloon(#[from] virtio::balloon::ConfigError),
    /// A balloon target beyond guest memory.
    #[error("--balloon size={size} bytes is more than the guest's {memory} bytes of memory")]
    BalloonTooLarge { size: u64, memory: u64 },
    /// The main thread's seccomp filter cannot be installed.
    #[error("{0}")]
    Seccomp(#[from] seccomp::Error),
    /// Opening `/dev/kvm` failed.
    #[error("{0}")]
    OpenKvm(#[source] hypervisor::Error),
    /// A kernel or initrd file cannot be opened.
    #[error("cannot open the {what} {path}: {source}")]
    OpenFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A kernel or initrd path names something other than a file.
    #[error("cannot read the {what} {path}: not a regular file")]
    NotAFile { what: &'static str, path: PathBuf },
    /// A `--net` value that does not parse.
    #[error("{0}")]
    NetConfig(#[from] virtio::net::ConfigError),
    /// Two `--net` options name the same TAP.
    #[error("--net: TAP {0} is given to two NICs")]
    DuplicateTap(String),
    /// Two disks, or two NICs, answer to the same id (the control plane
    /// finds them by it).
    #[error("{option}: two devices have the id {id}")]
    DuplicateId { option: &'static str, id: String },
    /// A TAP cannot be opened (missing permission, in use, not a TAP).
    #[error("{0}")]
    Tap(#[from] virtio::net::TapError),
    /// The kernel, initrd or command line were refused.
    #[error("{0}")]
    Boot(#[from] boot::Error),
    /// The host refused to allocate guest memory.
    #[error("cannot allocate {size} bytes of guest memory: {reason}")]
    GuestMemory { size: u64, reason: String },
    /// A KVM operation failed.
    #[error("{0}")]
    Hypervisor(#[from] hypervisor::Error),
    /// The machine's tables could not be set up.
    #[error("{0}")]
    Arch(#[from] arch::Error),
    /// Devices could not be placed.
    #[error("cannot place a device: {0}")]
    Bus(#[from] devices::BusError),
    /// A `--vsock` value that does not parse or is out of range.
    #[error("invalid --vsock {text:?}: {source}")]
    InvalidVsock {
        text: String,
        source: virtio::vsock::ConfigError,
    },
    /// The vsock device's host socket cannot be set up.
    #[error("--vsock: {0}")]
    VsockSocket(#[source] virtio::vsock::SocketError),
    /// More devices than the machine has MMIO slots or interrupt lines for.
    #[error("too many devices: the machine has room for {0} virtio devices")]
    TooManyDevices(usize),

    #[error("cannot put a device on the PCI bus: {0}")]
    Pci(#[from] devices::pci::PciError),
    /// A host resource (thread, eventfd, epoll) could not be created.
    #[error("cannot {what}: {source}")]
    Host {
        what: &'static str,
        source: std::io::Error,
    },
    /// A `--disk` value that does not parse.
    #[error("{0}")]
    InvalidDisk(#[from] virtio::block::ConfigError),
    /// A disk image that cannot be used.
    #[error("{0}")]
    Disk(#[source] virtio::block::BlockError),
    /// A snapshot's machine state that a device refuses.
    #[error("{0}")]
    SnapshotDevice(#[from] devices::StateError),
    /// A snapshot file that cannot be read, or is not a whole, intact
    /// snapshot of this format.
    #[error("cannot load the snapshot {path}: {reason}")]
    SnapshotFile { path: PathBuf, reason: String },
    /// A snapshot that does not fit this host, its memory file or itself.
    #[error("cannot restore the snapshot: {0}")]
    SnapshotMismatch(String),
    /// The guest triple-faulted.
    #[error("the guest triple-faulted on vCPU {vcpu}")]
    TripleFault { vcpu: u32, registers: String },
    /// KVM could not emulate a guest instruction.
    #[error("KVM could not emulate an instruction of the guest on vCPU {vcpu} (internal error {suberror})")]
    EmulationFailure {
        vcpu: u32,
        suberror: u32,
        registers: String,
    },
    /// The guest crashed and said so.
    #[error("the guest reported a crash")]
    GuestCrash,
    /// A vCPU stopped for a reason the VMM cannot handle.
    #[error("vCPU {vcpu} stopped: {reason}")]
    VcpuFailed { vcpu: u32, reason: String },
    /// The host asked the VMM to end (SIGTERM, SIGINT): the guest was
    /// stopped as at a power-off.
    #[error("stopped by {}", crate::signals::signal_name(*signal))]
    Stopped { signal: i32 },
    /// Neither a guest to boot nor an API to be given one through.
    #[error("nothing to boot: give a kernel, a config file or an API socket")]
    NothingToBoot,
}

impl Error {
    /// True when the user can fix this by changing the command line.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidCpus { .. }
                | Error::MemoryTooSmall(..)
                | Error::MemoryTooLarge { .. }
                | Error::InvalidMemorySize(_)
                | Error::InvalidMemoryOption(..)
                | Error::InvalidBalloon(_)
                | Error::BalloonTooLarge { .. }
                | Error::OpenKvm(_)
                | Error::OpenFile { .. }
                | Error::NotAFile { .. }
                | Error::Boot(_)
                | Error::GuestMemory { .. }
                | Error::TooManyDevices(_)
                | Error::InvalidVsock { .. }
                | Error::VsockSocket(_)
                | Error::InvalidDisk(_)
                | Error::Disk(_)
                | Error::NetConfig(_)
                | Error::DuplicateTap(_)
                | Error::DuplicateId { .. }
                | Error::Tap(_)
                | Error::NothingToBoot
                | Error::SnapshotDevice(_)
                | Error::SnapshotFile { .. }
                | Error::SnapshotMismatch(_)
        )
    }

    /// The vCPU registers when the guest stopped with this error.
    pub fn guest_registers(&self) -> Option<&str> {
        match self {
            Error::TripleFault { registers, .. } | Error::EmulationFailure { registers, .. } => {
                Some(registers)
            }
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
