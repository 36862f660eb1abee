//! A conventional PCI bus: bus 0 only, one function per device, reached
//! through configuration mechanism #1 (I/O ports 0xcf8..0xcff).
//!
//! [`PciRoot`] decodes the ports and routes each configuration access to a
//! [`PciDevice`]; [`PciConfiguration`] is the 256-byte type-0 header most
//! devices keep behind that trait. Devices here signal through MSI-X only,
//! so there is no INTx routing.

mod bar;
pub mod config;
pub mod consts;
pub mod host_bridge;
mod persist;
pub mod root;

pub use config::{PciConfiguration, PciHeader};
pub use host_bridge::PciHostBridge;
pub use persist::{BarState, PciConfigState, PciRootState};
pub use root::{PciRoot, PCI_CONFIG_PORT_LEN};

/// A function on the PCI bus, as its configuration space is seen by the
/// guest. Everything passed in comes from the guest and is untrusted.
pub trait PciDevice: Send {
    /// Reads 32-bit configuration register `reg` (a dword index, 0..64).
    fn read_config_register(&mut self, reg: usize) -> u32;
    /// Writes `data` (1, 2 or 4 bytes) at byte `offset` inside configuration register `reg`.
    fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]);
}

/// Why a device or its configuration space could not be set up.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PciError {
    #[error("BAR {index} needs slots {index} and {index}+1, but there are only 6")]
    BarIndex { index: usize },
    #[error("BAR slot {index} or {index}+1 is already in use")]
    BarInUse { index: usize },
    #[error("BAR size {size:#x} is not a power of two of at least 4 KiB")]
    BarSize { size: u64 },
    #[error("BAR address {addr:#x} is not aligned to its size {size:#x} or wraps around")]
    BarAddress { addr: u64, size: u64 },
    #[error("capability {id:#x} with a {len}-byte body does not fit in the configuration space")]
    CapabilitySpace { id: u8, len: usize },
    #[error("range {offset:#x}+{len:#x} is outside the capability area 0x40..0x100")]
    OutsideCapabilities { offset: usize, len: usize },
    #[error("every device number on PCI bus 0 is taken")]
    BusFull,
}
