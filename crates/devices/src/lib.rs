//! Emulated devices and the buses that route guest port and MMIO accesses
//! to them.
//!
//! Devices are register models, generic over their edges (interrupt
//! [`Trigger`], output writer): no threads, no file descriptors, no KVM.
//! The VMM wires those edges to eventfds, stdout and the run loop.

pub mod acpi_pm;
pub mod bus;
pub mod i8042;
pub mod pci;
pub mod pvpanic;
pub mod serial;
mod state_error;
#[cfg(test)]
mod test_utils;

pub use bus::{Bus, BusDevice, BusError};
pub use state_error::StateError;
pub use vm_superio::Trigger;
