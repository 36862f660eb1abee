//! A virtio-mmio transport in a snapshot: its registers, the driver's
//! view of the device, and where the device's queues stood.
//!
//! Not `snapshot::Persist`: saving asks the device's worker thread for
//! its queues, which fails if the thread does not answer, and
//! `Persist::save` cannot fail.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vmm_sys_util::eventfd::EventFd;

use super::MmioTransport;
use crate::transport::core::{CoreState, RestoreError, TransportCore};
use crate::{GuestMemoryMmap, IrqTrigger, SaveError, VirtioDevice, VirtioInterrupt};

/// What a virtio-mmio transport saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmioState {
    pub core: CoreState,
    pub queue_select: u32,
    pub device_features_select: u32,
    pub driver_features_select: u32,
    /// ConfigGeneration as the driver reads it (the transport's count and
    /// the device's own), so that it never goes back after a restore.
    pub config_generation: u32,
    /// InterruptStatus bits the driver has not read yet.
    pub interrupt_status: u32,
}

/// What a restored transport is wired to: all the new process's.
pub struct MmioEdges {
    /// Built anew from the saved configuration.
    pub device: Box<dyn VirtioDevice>,
    pub mem: GuestMemoryMmap,
    pub interrupt: Arc<IrqTrigger>,
    /// `queue_evts[i]` is signalled when the driver kicks queue `i`.
    pub queue_evts: Vec<EventFd>,
}

impl MmioTransport {
    /// The state of the paused machine's transport.
    pub fn save(&self) -> Result<MmioState, SaveError> {
        Ok(MmioState {
            core: self.core.save()?,
            queue_select: self.queue_select,
            device_features_select: self.device_features_select,
            driver_features_select: self.driver_features_select,
            config_generation: self
                .config_generation
                .wrapping_add(self.core.device().config_generation()),
            interrupt_status: self.interrupt.status(),
        })
    }

    /// The transport `state` saved, in front of `edges.device`, which
    /// goes on serving its queues from where they stood if it was active
    /// (its worker parked until resumed). Unread interrupt status comes
    /// back without a pulse: [`MmioTransport::resend_interrupt`] once the
    /// interrupt controllers are restored.
    pub fn restore(edges: MmioEdges, state: &MmioState) -> Result<MmioTransport, RestoreError> {
        edges.interrupt.restore_status(state.interrupt_status);
        let interrupt: Arc<dyn VirtioInterrupt> = edges.interrupt.clone();
        let core = TransportCore::restore(
            edges.device,
            edges.mem,
            edges.queue_evts,
            &interrupt,
            &state.core,
        )?;
        let config_generation = state
            .config_generation
            .wrapping_sub(core.device().config_generation());
        Ok(MmioTransport {
            core,
            interrupt: edges.interrupt,
            ack_evt: None,
            queue_select: state.queue_select,
            device_features_select: state.device_features_select,
            driver_features_select: state.driver_features_select,
            config_generation,
        })
    }

    /// Pulses the interrupt line again if the driver has status to read.
    pub fn resend_interrupt(&self) {
        self.interrupt.resend();
    }
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
