//! A virtio-pci function in a snapshot: its configuration space, MSI-X
//! table and pending bits, the common configuration's selects and
//! vectors, ISR status, and the driver's view of the device (`CoreState`).
//!
//! Not `snapshot::Persist`, for the reason the virtio-mmio transport is
//! not: saving asks the device's worker for its queues, which can fail.

use std::sync::Arc;

use devices::pci::{PciConfigState, PciConfiguration, PciError};
use serde::{Deserialize, Serialize};
use snapshot::Persist;
use vmm_sys_util::eventfd::EventFd;

use super::common_config::CommonConfig;
use super::device::{build_config, VirtioPciDevice, MSIX_ENABLE, MSIX_FUNCTION_MASK};
use super::interrupt::PciInterrupt;
use super::msix::{Msix, MsixState};
use crate::transport::core::{CoreState, RestoreError, TransportCore};
use crate::{GuestMemoryMmap, SaveError, VirtioDevice, VirtioInterrupt};

/// What a virtio-pci function saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtioPciState {
    pub core: CoreState,
    pub config: PciConfigState,
    pub msix: MsixState,
    /// The driver's MSI-X vector for each queue.
    pub queue_vectors: Vec<u16>,
    pub config_vector: u16,
    /// ISR status bits the driver has not read yet.
    pub isr: u8,
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub queue_select: u16,
    /// config_generation as the driver reads it (the transport's count and
    /// the device's own), so that it never goes back after a restore.
    pub config_generation: u8,
}

/// Why a saved virtio-pci function does not fit the one built anew.
#[derive(Debug, thiserror::Error)]
pub enum PciStateError {
    #[error(transparent)]
    Core(#[from] RestoreError),
    #[error(transparent)]
    Config(#[from] devices::StateError),
    #[error("cannot build the PCI function: {0}")]
    Build(#[from] PciError),
    #[error("its MSI-X table was saved with {saved} vectors, the device has {built}")]
    VectorCount { saved: usize, built: usize },
    #[error("its MSI-X pending bits were saved in {saved} words, the device has {built}")]
    PendingWords { saved: usize, built: usize },
    #[error("an MSI-X pending bit is set past the table")]
    PendingPastTable,
    #[error("MSI-X entry {vector}'s message address is not dword aligned")]
    EntryAddress { vector: usize },
    #[error("MSI-X enable and function mask ({enabled}, {masked}) differ from the capability's Message Control")]
    Control { enabled: bool, masked: bool },
    #[error("{saved} queue vectors were saved, the device has {built} queues")]
    QueueVectors { saved: usize, built: usize },
    #[error("the MSI-X vector for {what} is {vector}, past the table of {count}")]
    Vector {
        what: String,
        vector: u16,
        count: u16,
    },
    #[error("ISR status {0:#x} has bits no device sets")]
    Isr(u8),
}

/// What a restored function is wired to: all the new process's.
pub struct PciEdges {
    /// Built anew from the saved configuration.
    pub device: Box<dyn VirtioDevice>,
    pub mem: GuestMemoryMmap,
    /// `queue_evts[i]` is signalled when the driver kicks queue `i`.
    pub queue_evts: Vec<EventFd>,
    pub msix: Arc<Msix>,
    /// Where the VMM places BAR 0, which the saved BAR must match.
    pub bar_address: u64,
}

impl VirtioPciDevice {
    /// The state of the paused machine's function.
    pub fn save(&self) -> Result<VirtioPciState, SaveError> {
        let device_generation = self.core.device().config_generation().to_le_bytes()[0];
        Ok(VirtioPciState {
            core: self.core.save()?,
            config: self.config.save(),
            msix: self.interrupt.msix().save_state(),
            queue_vectors: self.interrupt.queue_vectors(),
            config_vector: self.interrupt.config_vector(),
            isr: self.interrupt.isr(),
            device_feature_select: self.common.device_feature_select,
            driver_feature_select: self.common.driver_feature_select,
            queue_select: self.common.queue_select,
            config_generation: self
                .common
                .config_generation
                .wrapping_add(device_generation),
        })
    }

    /// The function `state` saved, in front of `edges.device`, which goes
    /// on serving its queues from where they stood if it was active (its
    /// worker parked until resumed). Each live MSI-X vector is routed to
    /// its message again; interrupts saved pending on one are delivered
    /// by [`VirtioPciDevice::resend_interrupt`], once the interrupt
    /// controllers are restored.
    pub fn restore(edges: PciEdges, state: &VirtioPciState) -> Result<Self, PciStateError> {
        let built = edges.device.device_type();
        if state.core.device_type != built {
            return Err(RestoreError::DeviceType {
                saved: state.core.device_type,
                built,
            }
            .into());
        }
        let queues = edges.device.queue_max_sizes().len();
        let (template, msix_cap, cfg_cap) =
            build_config(built, edges.msix.vector_count(), edges.bar_address)?;
        let config = PciConfiguration::restore(template, &state.config)?;
        let control = message_control(&config, msix_cap);
        let (enabled, masked) = (
            control & MSIX_ENABLE != 0,
            control & MSIX_FUNCTION_MASK != 0,
        );
        if (enabled, masked) != (state.msix.enabled, state.msix.function_masked) {
            return Err(PciStateError::Control {
                enabled: state.msix.enabled,
                masked: state.msix.function_masked,
            });
        }
        let interrupt = Arc::new(PciInterrupt::new(edges.msix, queues));
        interrupt.restore(&state.queue_vectors, state.config_vector, state.isr)?;
        interrupt.msix().restore_state(&state.msix)?;
        let signal: Arc<dyn VirtioInterrupt> = interrupt.clone();
        let core = TransportCore::restore(
            edges.device,
            edges.mem,
            edges.queue_evts,
            &signal,
            &state.core,
        )?;
        let device_generation = core.device().config_generation().to_le_bytes()[0];
        let common = CommonConfig {
            device_feature_select: state.device_feature_select,
            driver_feature_select: state.driver_feature_select,
            queue_select: state.queue_select,
            config_generation: state.config_generation.wrapping_sub(device_generation),
        };
        Ok(VirtioPciDevice {
            core,
            common,
            interrupt,
            config,
            msix_cap,
            cfg_cap,
        })
    }

    /// Delivers the interrupts saved pending on vectors the guest had
    /// left live.
    pub fn resend_interrupt(&self) {
        self.interrupt.msix().deliver_pending();
    }
}

/// The MSI-X capability's Message Control word.
fn message_control(config: &PciConfiguration, msix_cap: u8) -> u16 {
    let reg = usize::from(msix_cap) / 4;
    u16::try_from(config.read_register(reg) >> 16).unwrap_or(0)
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
