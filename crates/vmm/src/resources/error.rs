//! Why a resource was refused, worded as a Firecracker `fault_message`.

/// Why a resource (from a config file or an API request) was refused.
/// The message names the field and the value, so that it can be sent
/// back as-is in a `fault_message`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// An id that Firecracker would refuse.
    #[error(
        "invalid {field} {value:?}: an id is 1 to 64 characters, each a letter, a digit or '_'"
    )]
    InvalidId { field: &'static str, value: String },
    /// A path that is empty.
    #[error("{field} is empty: a path to a file on the host is needed")]
    EmptyPath { field: &'static str },
    /// A field Pointsman needs that was left out (where Firecracker's
    /// schema lets it be left out for a feature Pointsman lacks).
    #[error("{field} is missing")]
    Missing { field: &'static str },
    /// `vcpu_count` out of range.
    #[error("invalid vcpu_count {value}: the number of vCPUs must be 1 to {max}")]
    VcpuCount { value: u32, max: u32 },
    /// `mem_size_mib` of zero.
    #[error("invalid mem_size_mib 0: the guest needs some memory")]
    MemorySize,
    /// `mem_size_mib` that does not fit in bytes.
    #[error("invalid mem_size_mib {0}: more memory than a 64-bit host can address")]
    MemoryTooLarge(u64),
    /// A CPU template other than `None`.
    #[error("cpu_template {0:?} is not supported by Pointsman: only \"None\" is (the guest sees the host's CPUID, filtered for KVM)")]
    CpuTemplate(String),
    /// A MAC address that does not parse or cannot be a NIC's.
    #[error("invalid guest_mac {value:?}: {reason}")]
    Mac { value: String, reason: String },
    /// A host TAP name Linux would refuse.
    #[error("invalid host_dev_name {0:?}: 1 to 15 characters, no '/', ':', spaces, '.' or '..'")]
    TapName(String),
    /// An MTU for the guest, which Pointsman cannot advertise.
    #[error("network interface {0}: mtu is not supported by Pointsman (it does not offer VIRTIO_NET_F_MTU; the guest uses its default MTU)")]
    NetMtu(String),
    /// Two devices with the same id.
    #[error("{kind} id {id:?} is given twice")]
    DuplicateId { kind: &'static str, id: String },
    /// Two NICs on the same TAP.
    #[error("host_dev_name {0:?} is given to two network interfaces")]
    DuplicateTap(String),
    /// More than one drive with `is_root_device`.
    #[error("drive {0}: a root block device already exists")]
    SecondRootDevice(String),
    /// A `partuuid` on a drive that is not the root device, or bad text.
    #[error("drive {drive}: invalid partuuid {value:?}: letters, digits and '-' only, on the root device")]
    PartUuid { drive: String, value: String },
    /// vhost-user drives.
    #[error("drive {0}: vhost-user block devices (socket) are not supported by Pointsman")]
    VhostUserDrive(String),
    /// A vsock CID that cannot be a guest's.
    #[error("invalid guest_cid {0}: a guest CID is 3 to 4294967294")]
    GuestCid(u64),
    /// A vsock socket path too long for a Unix socket address.
    #[error("invalid uds_path {path:?}: {reason}")]
    UdsPath { path: String, reason: String },
    /// A balloon target beyond guest memory.
    #[error("balloon amount_mib {amount} is more than the guest's {memory} MiB of memory")]
    BalloonTooLarge { amount: u64, memory: u64 },
    /// Balloon features Pointsman lacks.
    #[error("balloon: {0} is not supported by Pointsman")]
    BalloonFeature(&'static str),
    /// Fields that cannot be given together, or one of which is needed.
    #[error("{0}")]
    Conflict(&'static str),
    /// Two snapshot load overrides for one NIC.
    #[error("network_overrides names iface_id {0} twice")]
    DuplicateOverride(String),
    /// A snapshot load override for a device the snapshot lacks.
    #[error("the snapshot has no {0} to override")]
    NoSuchOverride(String),
    /// A top-level section of the configuration Pointsman lacks.
    #[error("{0} is not supported by Pointsman")]
    Unsupported(&'static str),
    /// A rate limiter token bucket that cannot be used.
    #[error("invalid {field}: {reason}")]
    RateLimiter { field: String, reason: String },
    /// Nothing to boot.
    #[error("boot-source is missing: a kernel_image_path is needed to boot")]
    NoBootSource,
    /// A logger level Firecracker does not know.
    #[error("invalid logger level {0:?}: expected Off, Error, Warning, Info, Debug or Trace")]
    LogLevel(String),
    /// A host file that cannot be opened.
    #[error("cannot open {field} {path}: {reason}")]
    File {
        field: &'static str,
        path: String,
        reason: String,
    },
    /// JSON that does not parse, has the wrong types or unknown fields.
    #[error("invalid configuration: {0}")]
    Json(String),
}

impl From<serde_json::Error> for ResourceError {
    fn from(e: serde_json::Error) -> Self {
        ResourceError::Json(e.to_string())
    }
}
