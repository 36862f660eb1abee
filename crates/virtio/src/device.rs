use std::sync::Arc;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::{
    DeviceState, DeviceStateError, GuestMemoryMmap, SaveError, SavedDevice, VirtioInterrupt, Worker,
};

/// What a device gets when the driver sets DRIVER_OK: the guest memory,
/// its interrupt, and its queues with the eventfds that signal them.
pub struct ActivateContext {
    pub mem: GuestMemoryMmap,
    pub interrupt: Arc<dyn VirtioInterrupt>,
    pub queues: Vec<Queue>,
    pub queue_evts: Vec<EventFd>,
}

/// Why a device could not start serving its queues.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("expected {expected} queues, the driver set up {got}")]
    QueueCount { expected: usize, got: usize },
    #[error("cannot start the device's worker thread: {0}")]
    Worker(#[source] std::io::Error),
    #[error("{0}")]
    Device(String),
}

/// A virtio device behind a transport.
pub trait VirtioDevice: Send {
    /// The virtio device type ([`crate::device_type`]).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits the device offers.
    fn avail_features(&self) -> u64;
    /// The features the driver accepted (a subset of the offered ones).
    fn set_acked_features(&mut self, features: u64);
    /// Reads the device configuration space at `offset`.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the device configuration space at `offset`.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Counts the device's own changes of its configuration space (a new
    /// disk capacity), which the transport adds to its generation counter
    /// so a driver never takes a field read across a change.
    fn config_generation(&self) -> u32 {
        0
    }
    /// Starts serving the queues.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;
    /// Stops serving the queues and forgets what the driver set up.
    fn reset(&mut self);
    /// The thread serving the queues, once activated: what a pause of the
    /// machine parks.
    fn worker(&self) -> Option<&Worker>;
    /// The device for a snapshot of the paused machine: once activated,
    /// where its queues stand, read on its parked worker (with any
    /// interrupt it held back sent); and its own state beyond them, if it
    /// keeps any ([`DeviceState`]).
    fn save(&self) -> Result<SavedDevice, SaveError>;
    /// Takes back the state [`VirtioDevice::save`] gave, on a device built
    /// anew for a restore, before the transport acks its features and, if
    /// it was active, activates it. The state comes from a snapshot file:
    /// one that does not fit the device is refused, never trusted.
    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError>;
}

/// Copies `config[offset..]` into `data`, reading beyond the end as zeros:
/// what most devices' `read_config` needs, with the offset bound-checked.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_are_bounded() {
        let config = [1u8, 2, 3, 4];
        let mut data = [0xffu8; 4];
        read_config_bytes(&config, 2, &mut data);
        assert_eq!(data, [3, 4, 0, 0]);
        read_config_bytes(&config, 100, &mut data);
        assert_eq!(data, [0; 4]);
        read_config_bytes(&config, u64::MAX, &mut data);
        assert_eq!(data, [0; 4]);
    }
}
