//! Transports: how a driver reaches a virtio device.

mod core;
pub mod mmio;
pub mod pci;

use std::time::Duration;

/// A transport whose device pauses with the machine: its worker parks
/// between handler calls, so that neither the queues nor the guest memory
/// the device writes change until it resumes. The vCPUs are paused first,
/// so no driver access reaches the transport meanwhile.
pub trait Pausable: Send {
    /// Parks the device's worker, waiting up to `deadline`; true once
    /// parked (or when the device has no worker yet).
    fn pause(&self, deadline: Duration) -> bool;
    /// Lets the worker go on where it stopped.
    fn resume(&self);
    /// The virtio device type, to say which device did not pause.
    fn device_type(&self) -> u32;
}

impl core::TransportCore {
    fn pause_device(&self, deadline: Duration) -> bool {
        self.device().worker().is_none_or(|w| w.pause(deadline))
    }

    fn resume_device(&self) {
        if let Some(worker) = self.device().worker() {
            worker.resume();
        }
    }
}

impl Pausable for mmio::MmioTransport {
    fn pause(&self, deadline: Duration) -> bool {
        self.core().pause_device(deadline)
    }

    fn resume(&self) {
        self.core().resume_device();
    }

    fn device_type(&self) -> u32 {
        self.core().device().device_type()
    }
}

impl Pausable for pci::VirtioPciDevice {
    fn pause(&self, deadline: Duration) -> bool {
        self.core().pause_device(deadline)
    }

    fn resume(&self) {
        self.core().resume_device();
    }

    fn device_type(&self) -> u32 {
        self.core().device().device_type()
    }
}
