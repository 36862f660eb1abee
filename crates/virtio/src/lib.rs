//! Virtio devices and the transports that put them in front of a guest:
//! virtio-mmio on the MMIO bus, or virtio-pci on the PCI bus.
//!
//! A device is a [`VirtioDevice`]: its features, its configuration space,
//! and what it does with its queues once the driver activates it. The
//! transport ([`MmioTransport`] or [`transport::pci::VirtioPciDevice`])
//! owns the driver-facing registers and hands the queues over at
//! activation; each device then serves its queues on a worker thread of
//! its own, woken by ioeventfds, and interrupts the guest through a
//! [`VirtioInterrupt`] (irqfds underneath), so no device work runs on a
//! vCPU thread.

pub mod balloon;
pub mod block;
mod device;
mod device_state;
mod interrupt;
mod log_limit;
pub mod moderation;
pub mod net;
pub mod rate_limiter;
pub mod rng;
mod saved_queue;
pub mod transport;
mod update;
pub mod vsock;
mod worker;

pub use device::{ActivateContext, ActivateError, VirtioDevice};
pub use device_state::{expect_no_state, DeviceState, DeviceStateError, SavedDevice};
pub use interrupt::{IrqTrigger, VirtioInterrupt};
pub use saved_queue::{QueueError, SaveError, SaveReport, SavedQueue};
pub use transport::mmio::{
    MmioEdges, MmioState, MmioTransport, INTERRUPT_ACK_OFFSET, MMIO_SIZE, QUEUE_NOTIFY_OFFSET,
};
pub use transport::{CoreState, RestoreError};
pub use transport::{Pausable, TransportState};
pub use update::UpdateError;
pub use worker::{
    abandoned_workers, Doorbell, Sources, Wake, Worker, PAUSE_DEADLINE, STOP_DEADLINE,
};

/// Guest memory as devices see it: every write through it marks its pages
/// in the region's dirty bitmap, so a Diff snapshot holds what a device
/// wrote into the guest (disk reads, received frames, used rings), which
/// KVM's dirty log does not see. A device that writes guest memory any
/// other way (through a raw pointer, as the disk's `preadv` does) marks
/// the pages itself.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<vm_memory::bitmap::AtomicBitmap>;

/// Device types (virtio 1.2, section 5).
pub mod device_type {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const RNG: u32 = 4;
    pub const BALLOON: u32 = 5;
    pub const VSOCK: u32 = 19;
}

/// Feature bits every device offers.
pub mod features {
    /// The device follows virtio 1.x, not the legacy interface.
    pub const VERSION_1: u64 = 1 << 32;
    /// Used/available event indexes suppress needless notifications.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Descriptors may point at tables of descriptors.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
}
