//! Transports: how a driver reaches a virtio device.

pub mod mmio;
pub mod pci;
