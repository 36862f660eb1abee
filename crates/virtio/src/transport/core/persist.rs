//! The driver's view of a device (features, status, queues) in a
//! snapshot, and the device brought back to it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

use super::{status, TransportCore};
use crate::device::ActivateContext;
use crate::{
    device_type, DeviceState, DeviceStateError, GuestMemoryMmap, QueueError, SaveError, SavedQueue,
    VirtioDevice, VirtioInterrupt, PAUSE_DEADLINE,
};

/// What every transport saves of its device, whatever its registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreState {
    /// The virtio device type, checked against the device built anew.
    pub device_type: u32,
    pub driver_features: u64,
    pub status: u32,
    pub activated: bool,
    /// The queues as the driver configured them, for its next reset.
    pub queues: Vec<SavedQueue>,
    /// Where the device's worker stood on each queue, once activated.
    pub live_queues: Vec<SavedQueue>,
    /// What the device keeps beyond its queues (a balloon's target and
    /// held stats buffer, a NIC's MAC), given back to it before it starts.
    pub device: Option<DeviceState>,
}

/// Why a transport's saved state does not fit the device built anew.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("a virtio device of type {saved} was saved, type {built} is configured in its place")]
    DeviceType { saved: u32, built: u32 },
    #[error("the saved virtio device (type {device}) has {saved} queues, the device {built}")]
    QueueCount {
        device: u32,
        saved: usize,
        built: usize,
    },
    #[error("queue {index} of the virtio device (type {device}): {source}")]
    Queue {
        device: u32,
        index: usize,
        #[source]
        source: QueueError,
    },
    #[error(
        "the virtio device (type {device}) was saved with features {features:#x} it does not offer"
    )]
    Features { device: u32, features: u64 },
    #[error("the virtio device (type {device}) was saved active with status {status:#x}")]
    Status { device: u32, status: u32 },
    #[error("cannot start the restored virtio device (type {device}): {source}")]
    Activate {
        device: u32,
        #[source]
        source: crate::ActivateError,
    },
    #[error("the virtio device (type {device}): {source}")]
    State {
        device: u32,
        #[source]
        source: DeviceStateError,
    },
    #[error("the restored virtio device (type {0}) did not park")]
    Park(u32),
    #[error("cannot clone a queue eventfd: {0}")]
    Eventfd(#[source] std::io::Error),
}

impl TransportCore {
    /// The state of the paused machine's device: an activated device's
    /// worker reports its queues on its own thread, and the device its own
    /// state beyond them, if it keeps any.
    pub fn save(&self) -> Result<CoreState, SaveError> {
        let saved = self.device.save()?;
        let queue_count = self.device.queue_max_sizes().len();
        let live_queues = if self.activated {
            // A worker gone without a word would be saved as a device that
            // serves no queue, which no restore accepts.
            if saved.queues.len() != queue_count {
                return Err(SaveError::NoAnswer(device_name(self.device.device_type())));
            }
            saved.queues
        } else {
            Vec::new()
        };
        Ok(CoreState {
            device_type: self.device.device_type(),
            driver_features: self.driver_features,
            status: self.status,
            activated: self.activated,
            queues: self.queues.iter().map(SavedQueue::from).collect(),
            live_queues,
            device: saved.state,
        })
    }

    /// `device` (built anew from the saved configuration) as the driver
    /// left it in `state`: its own state given back first, its features
    /// acked and, if it was serving its queues, serving them again from
    /// where they stood.
    pub fn restore(
        mut device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        queue_evts: Vec<EventFd>,
        interrupt: &Arc<dyn VirtioInterrupt>,
        state: &CoreState,
    ) -> Result<TransportCore, RestoreError> {
        let device_type = device.device_type();
        if state.device_type != device_type {
            return Err(RestoreError::DeviceType {
                saved: state.device_type,
                built: device_type,
            });
        }
        device
            .restore_state(state.device.as_ref())
            .map_err(|source| RestoreError::State {
                device: device_type,
                source,
            })?;
        let max_sizes = device.queue_max_sizes().to_vec();
        let configured = to_queues(device_type, &max_sizes, &state.queues, |q, max| {
            q.to_queue(max)
        })?;
        let mut core = TransportCore::new(device, mem, queue_evts);
        core.queues = configured;
        core.driver_features = state.driver_features;
        core.status = state.status;
        if state.status & status::FEATURES_OK != 0 {
            if !core.features_acceptable() {
                return Err(RestoreError::Features {
                    device: device_type,
                    features: state.driver_features,
                });
            }
            core.device.set_acked_features(state.driver_features);
        }
        if !state.activated {
            return Ok(core);
        }
        let needed = status::FEATURES_OK | status::DRIVER_OK;
        if state.status & needed != needed {
            return Err(RestoreError::Status {
                device: device_type,
                status: state.status,
            });
        }
        let live = to_queues(device_type, &max_sizes, &state.live_queues, |q, max| {
            q.to_active_queue(max, &core.mem)
        })?;
        let ready: Vec<bool> = live.iter().map(|q| q.ready()).collect();
        let queue_evts = core
            .queue_evts
            .iter()
            .map(EventFd::try_clone)
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(RestoreError::Eventfd)?;
        core.device
            .activate(ActivateContext {
                mem: core.mem.clone(),
                interrupt: interrupt.clone(),
                queues: live,
                queue_evts,
            })
            .map_err(|source| RestoreError::Activate {
                device: device_type,
                source,
            })?;
        core.activated = true;
        // Parked, as the restored machine starts: the VMM resumes it with
        // the vCPUs.
        if !core.pause_device(PAUSE_DEADLINE) {
            return Err(RestoreError::Park(device_type));
        }
        // A kick the saved worker had not taken yet was lost with the old
        // process's eventfd: one per ready queue has the worker look at
        // its avail ring once it goes on (a kick with nothing new to
        // serve does nothing).
        for (evt, _) in core.queue_evts.iter().zip(ready).filter(|(_, r)| *r) {
            // A failed write (a full counter) leaves a kick pending anyway.
            let _ = evt.write(1);
        }
        Ok(core)
    }
}

/// The device's name, for errors.
fn device_name(device_type: u32) -> &'static str {
    match device_type {
        device_type::NET => "virtio-net",
        device_type::BLOCK => "virtio-blk",
        device_type::RNG => "virtio-rng",
        device_type::BALLOON => "virtio-balloon",
        device_type::VSOCK => "virtio-vsock",
        _ => "virtio",
    }
}

/// One queue per entry of `max_sizes`, each from `saved` through `make`.
fn to_queues<Q>(
    device: u32,
    max_sizes: &[u16],
    saved: &[SavedQueue],
    make: impl Fn(&SavedQueue, u16) -> Result<Q, QueueError>,
) -> Result<Vec<Q>, RestoreError> {
    if saved.len() != max_sizes.len() {
        return Err(RestoreError::QueueCount {
            device,
            saved: saved.len(),
            built: max_sizes.len(),
        });
    }
    saved
        .iter()
        .zip(max_sizes)
        .enumerate()
        .map(|(index, (q, &max))| {
            make(q, max).map_err(|source| RestoreError::Queue {
                device,
                index,
                source,
            })
        })
        .collect()
}
