//! Transports: how a driver reaches a virtio device.

mod core;
pub mod mmio;
pub mod pci;
