//! Transports: how a driver reaches a virtio device.

mod core;
pub use self::core::{CoreState, RestoreError};
pub mod mmio;
pub mod pci;

use std::time::Duration;

use crate::SaveError;

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
    /// The paused transport's state for a snapshot: its device's worker
    /// must be parked. Refused for a transport or device a snapshot
    /// cannot hold yet.
    fn save(&self) -> Result<TransportState, SaveError>;
    /// For a restored transport, once the interrupt controllers are: its
    /// interrupt again if the driver has saved status to read.
    fn resend_interrupt(&self);
}

/// A transport's saved state, whichever transport it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportState {
    Mmio(mmio::MmioState),
    Pci(Box<pci::VirtioPciState>),
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
    fn save(&self) -> Result<TransportState, SaveError> {
        mmio::MmioTransport::save(self).map(TransportState::Mmio)
    }

    fn resend_interrupt(&self) {
        mmio::MmioTransport::resend_interrupt(self);
    }

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
    fn save(&self) -> Result<TransportState, SaveError> {
        pci::VirtioPciDevice::save(self).map(|state| TransportState::Pci(Box::new(state)))
    }

    fn resend_interrupt(&self) {
        pci::VirtioPciDevice::resend_interrupt(self);
    }

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
