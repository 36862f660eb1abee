//! A queue as a snapshot holds it, and how a paused device reports the
//! queues its worker owns.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState, QueueT};

use crate::{GuestMemoryMmap, SavedDevice, Worker, PAUSE_DEADLINE};

/// `virtio_queue::QueueState`, which has no serde, field for field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQueue {
    pub max_size: u16,
    pub next_avail: u16,
    pub next_used: u16,
    pub event_idx: bool,
    pub size: u16,
    pub ready: bool,
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
}

impl From<QueueState> for SavedQueue {
    fn from(q: QueueState) -> Self {
        SavedQueue {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx: q.event_idx_enabled,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
        }
    }
}

impl From<&Queue> for SavedQueue {
    fn from(q: &Queue) -> Self {
        q.state().into()
    }
}

/// Why a saved queue was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("a queue of at most {saved} entries was saved, the device has {device}")]
    MaxSize { saved: u16, device: u16 },
    #[error("invalid queue: {0}")]
    Invalid(virtio_queue::Error),
    #[error(
        "a ready queue of {size} entries at {desc:#x}/{avail:#x}/{used:#x} is outside guest memory"
    )]
    OutsideMemory {
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    },
}

impl SavedQueue {
    /// The queue, checked as a driver's would be (the snapshot file is
    /// not to be trusted more than a guest): its maximum size is the
    /// device's `max_size`, its size and addresses ones the queue accepts.
    pub fn to_queue(&self, max_size: u16) -> Result<Queue, QueueError> {
        if self.max_size != max_size {
            return Err(QueueError::MaxSize {
                saved: self.max_size,
                device: max_size,
            });
        }
        Queue::try_from(QueueState {
            max_size: self.max_size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            event_idx_enabled: self.event_idx,
            size: self.size,
            ready: self.ready,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        })
        .map_err(QueueError::Invalid)
    }

    /// The queue for a device to serve: as [`SavedQueue::to_queue`], and
    /// if ready, lying in `mem`.
    pub fn to_active_queue(
        &self,
        max_size: u16,
        mem: &GuestMemoryMmap,
    ) -> Result<Queue, QueueError> {
        let queue = self.to_queue(max_size)?;
        if queue.ready() && !queue.is_valid(mem) {
            return Err(QueueError::OutsideMemory {
                size: self.size,
                desc: self.desc_table,
                avail: self.avail_ring,
                used: self.used_ring,
            });
        }
        Ok(queue)
    }
}

/// Why a device's queues could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("snapshots of {0} devices are not supported by Pointsman yet")]
    Unsupported(&'static str),
    #[error("the {0} device's worker did not report its queues in time (is the machine paused?)")]
    NoAnswer(&'static str),
}

/// Where a device's worker puts what it saves on a [`crate::Wake::Save`]
/// (its queues' positions, and any state it keeps), for the device to
/// hand to the transport.
#[derive(Clone, Default)]
pub struct SaveReport(Arc<Mutex<Option<SavedDevice>>>);

impl SaveReport {
    /// On the worker thread: where the device stands now.
    pub fn put(&self, saved: SavedDevice) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
    }

    /// Asks the parked `worker` of the `device` (its name, for the error)
    /// for what it saves, on its own thread.
    pub fn ask(&self, worker: &Worker, device: &'static str) -> Result<SavedDevice, SaveError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        if !worker.save(PAUSE_DEADLINE) {
            return Err(SaveError::NoAnswer(device));
        }
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(SaveError::NoAnswer(device))
    }

    /// What a device saves: asked of its `worker` once activated; nothing
    /// (no queues, no state) before.
    pub fn ask_if_active(
        &self,
        worker: Option<&Worker>,
        device: &'static str,
    ) -> Result<SavedDevice, SaveError> {
        match worker {
            Some(worker) => self.ask(worker, device),
            None => Ok(SavedDevice::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn ready_queue() -> SavedQueue {
        SavedQueue {
            max_size: 256,
            next_avail: 7,
            next_used: 5,
            event_idx: true,
            size: 64,
            ready: true,
            desc_table: 0x1000,
            avail_ring: 0x2000,
            used_ring: 0x3000,
        }
    }

    #[test]
    fn a_saved_queue_comes_back_with_its_positions() {
        let saved = ready_queue();
        let queue = saved.to_active_queue(256, &memory()).unwrap();
        assert_eq!(queue.next_avail(), 7);
        assert_eq!(queue.next_used(), 5);
        assert_eq!(SavedQueue::from(&queue), saved);
    }

    #[test]
    fn bad_saved_queues_are_refused() {
        let mem = memory();
        let other_max = ready_queue().to_queue(128);
        assert!(matches!(other_max, Err(QueueError::MaxSize { .. })));
        let odd_size = SavedQueue {
            size: 63,
            ..ready_queue()
        };
        assert!(matches!(
            odd_size.to_queue(256),
            Err(QueueError::Invalid(_))
        ));
        let outside = SavedQueue {
            used_ring: 0xfff0,
            ..ready_queue()
        };
        assert!(matches!(
            outside.to_active_queue(256, &mem),
            Err(QueueError::OutsideMemory { .. })
        ));
        // As the driver configured it (activating it would fail), and one
        // the driver had not finished: not checked against memory.
        assert!(outside.to_queue(256).is_ok());
        let unready = SavedQueue {
            ready: false,
            ..outside
        };
        assert!(unready.to_active_queue(256, &mem).is_ok());
    }
}
