//! virtio-pci (virtio 1.2, section 4.1): a virtio device as a PCI
//! function, with one memory BAR for its structures and an MSI-X vector
//! per queue.

mod common_config;
mod device;
mod interrupt;
pub mod layout;
pub mod msix;
mod persist;

pub use device::VirtioPciDevice;
pub use interrupt::PciInterrupt;
pub use persist::{PciEdges, PciStateError, VirtioPciState};

#[cfg(test)]
mod tests;
