//! The virtio-balloon device: its features, config space and queues.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::timerfd::TimerFd;

use super::config::BalloonConfig;
use super::feature;
use super::handle::BalloonHandle;
use super::persist::BalloonState;
use super::work::{BalloonWork, QueueRole};
use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::{
    device_type, features, DeviceState, DeviceStateError, SaveError, SaveReport, SavedDevice,
    SavedQueue, Wake, Worker,
};

const QUEUE_SIZE: u16 = 256;
/// How often the device asks the guest for fresh statistics.
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// Config space: `le32 num_pages; le32 actual;` (the fields after them
/// belong to features this device does not offer).
const CONFIG_SIZE: usize = 8;
const ACTUAL_OFFSET: usize = 4;

/// The virtio memory balloon.
pub struct Balloon {
    config: BalloonConfig,
    handle: BalloonHandle,
    queue_sizes: Vec<u16>,
    acked_features: u64,
    worker: Option<Worker>,
    /// Where the worker reports its queues and held stats buffer for a
    /// snapshot.
    report: SaveReport,
    /// The stats buffer a restored device holds from its next activation.
    restored_stats: Option<u16>,
}

impl Balloon {
    /// A balloon for a guest with `memory` bytes of RAM.
    pub fn new(config: &BalloonConfig, memory: u64) -> Self {
        let optional = usize::from(config.stats) + usize::from(config.free_page_reporting);
        Balloon {
            config: config.clone(),
            handle: BalloonHandle::new(config.target_pages(), memory),
            queue_sizes: vec![QUEUE_SIZE; 2 + optional],
            acked_features: 0,
            worker: None,
            report: SaveReport::default(),
            restored_stats: None,
        }
    }

    /// The handle that changes the target and reads what the guest said.
    pub fn handle(&self) -> BalloonHandle {
        self.handle.clone()
    }

    /// Counts in `metrics` (before [`Balloon::handle`] is taken).
    pub fn with_metrics(mut self, metrics: std::sync::Arc<metrics::BalloonMetrics>) -> Self {
        self.handle.metrics = metrics;
        self
    }

    /// What each queue the driver set up is for. Linux numbers the queues
    /// of the features it took one after the other, leaving no gap for a
    /// queue it does not use (as QEMU does), so the roles follow the
    /// acked features.
    pub fn queue_roles(acked_features: u64) -> Vec<QueueRole> {
        let mut roles = vec![QueueRole::Inflate, QueueRole::Deflate];
        if acked_features & feature::STATS_VQ != 0 {
            roles.push(QueueRole::Stats);
        }
        if acked_features & feature::REPORTING != 0 {
            roles.push(QueueRole::Reporting);
        }
        roles
    }

    fn config_bytes(&self) -> [u8; CONFIG_SIZE] {
        let shared = &self.handle.shared;
        let mut bytes = [0u8; CONFIG_SIZE];
        bytes[..4].copy_from_slice(&shared.num_pages.load(Ordering::SeqCst).to_le_bytes());
        bytes[4..].copy_from_slice(&shared.actual.load(Ordering::SeqCst).to_le_bytes());
        bytes
    }

    fn set_interrupt(&self, irq: Option<Arc<dyn crate::VirtioInterrupt>>) {
        *self
            .handle
            .shared
            .interrupt
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = irq;
    }
}

impl VirtioDevice for Balloon {
    fn device_type(&self) -> u32 {
        device_type::BALLOON
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        let mut f = features::VERSION_1 | features::RING_EVENT_IDX | features::RING_INDIRECT_DESC;
        if self.config.stats {
            f |= feature::STATS_VQ;
        }
        if self.config.deflate_on_oom {
            f |= feature::DEFLATE_ON_OOM;
        }
        if self.config.free_page_reporting {
            f |= feature::REPORTING;
        }
        f
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_bytes(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only `actual` is the driver's to write.
        let mut bytes = self.config_bytes();
        let Some(start) = usize::try_from(offset).ok() else {
            return;
        };
        for (i, b) in data.iter().enumerate() {
            match start.checked_add(i) {
                Some(at @ ACTUAL_OFFSET..CONFIG_SIZE) => bytes[at] = *b,
                _ => tracing::debug!(offset, "virtio-balloon: write outside `actual` ignored"),
            }
        }
        let actual = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        self.handle.shared.actual.store(actual, Ordering::SeqCst);
        tracing::trace!(actual, "virtio-balloon: the guest's balloon size");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let roles = Self::queue_roles(self.acked_features);
        let got = ctx.queues.len().min(ctx.queue_evts.len());
        if got < roles.len() {
            return Err(ActivateError::QueueCount {
                expected: roles.len(),
                got,
            });
        }
        // Every queue the driver set up is kept, those of features it did
        // not take too: a snapshot saves them all.
        let mut queues: Vec<Queue> = ctx.queues;
        let evts = ctx.queue_evts.into_iter().take(roles.len()).collect();
        let stats_index = roles.iter().position(|&r| r == QueueRole::Stats);
        let held_stats = std::mem::take(&mut self.restored_stats);
        if let Some(head) = held_stats {
            // A ready one: the buffer goes back to its used ring.
            let stats_queue = stats_index.and_then(|i| queues.get(i));
            let size = stats_queue.filter(|q| q.ready()).map(|q| q.size());
            if size.is_none_or(|size| head >= size) {
                return Err(ActivateError::Device(format!(
                    "virtio-balloon: the saved stats buffer {head} is not in a ready stats queue (of {size:?} entries)"
                )));
            }
        }
        let mut timer = None;
        if stats_index.is_some() {
            let mut t = TimerFd::new().map_err(|e| ActivateError::Worker(e.into()))?;
            t.reset(STATS_INTERVAL, Some(STATS_INTERVAL))
                .map_err(|e| ActivateError::Worker(e.into()))?;
            timer = Some(t);
        }
        let sources = timer.iter().map(AsRawFd::as_raw_fd).collect();
        let mut work =
            BalloonWork::new(ctx.mem, &self.handle, ctx.interrupt.clone(), roles.clone());
        work.hold_stats(held_stats);
        let shared = self.handle.shared.clone();
        let report = self.report.clone();
        let worker = Worker::spawn(
            "virtio-balloon".into(),
            evts,
            sources,
            move |wake, _| match wake {
                Wake::Queue(i) => {
                    if let (Some(role), Some(queue)) = (roles.get(i), queues.get_mut(i)) {
                        work.serve(*role, queue);
                    }
                }
                Wake::Source(_) => {
                    if let Some(t) = timer.as_mut() {
                        // Clears the expiry count; a failure only means
                        // the timer wakes us again.
                        let _ = t.wait();
                    }
                    if let Some(queue) = stats_index.and_then(|i| queues.get_mut(i)) {
                        work.request_stats(queue);
                    }
                }
                // Every buffer but the held stats one is answered within
                // its wake: the positions are exact.
                Wake::Save => report.put(SavedDevice {
                    queues: queues.iter().map(SavedQueue::from).collect(),
                    state: Some(DeviceState::Balloon(Box::new(BalloonState::of(
                        &shared,
                        work.held_stats(),
                    )))),
                }),
                Wake::Update => {}
            },
        )
        .map_err(ActivateError::Worker)?;
        self.set_interrupt(Some(ctx.interrupt));
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        self.worker = None;
        self.restored_stats = None;
        self.set_interrupt(None);
        self.handle.shared.actual.store(0, Ordering::SeqCst);
        self.acked_features = 0;
    }

    fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    fn save(&self) -> Result<SavedDevice, SaveError> {
        let Some(worker) = self.worker.as_ref() else {
            let state = BalloonState::of(&self.handle.shared, self.restored_stats);
            return Ok(SavedDevice {
                queues: Vec::new(),
                state: Some(DeviceState::Balloon(Box::new(state))),
            });
        };
        self.report.ask(worker, "virtio-balloon")
    }

    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError> {
        let state = match state {
            Some(DeviceState::Balloon(state)) => state,
            Some(other) => {
                return Err(DeviceStateError::OtherDevice {
                    saved: other.device_name(),
                    device: "virtio-balloon",
                })
            }
            None => return Err(DeviceStateError::Missing("virtio-balloon")),
        };
        state.restore_into(&self.handle.shared, QUEUE_SIZE)?;
        self.restored_stats = state.held_stats;
        Ok(())
    }
}
