//! The virtio-blk device: what the driver sees (features, configuration
//! space) and starting the queue's worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use metrics::BlockMetrics;

use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::moderation::Moderation;
use crate::rate_limiter::RateLimiter;
use crate::update::Mailbox;
use crate::{
    device_type, expect_no_state, features, DeviceState, DeviceStateError, SaveError, SaveReport,
    SavedDevice, Wake, Worker,
};

use super::config::DiskConfig;
use super::disk::{Disk, DiskError};
use super::handle::{Active, BlockHandle, Change};
use super::handler::BlockQueue;
use super::request::SECTOR_SIZE;
use super::{MAX_RANGES, MAX_RANGE_SECTORS, MODERATION};

/// Entries of the request queue. A driver may not build a chain longer
/// than the queue (virtio 1.2, 2.7.5.3.1), so this bounds `seg_max`: at
/// 1024, a 1 MiB request of 4 KiB pages (256 segments) is one request,
/// not two, which halves the exits and interrupts of large I/O.
const QUEUE_SIZE: u16 = 1024;
const SECTOR_BYTES: u32 = 512;
/// Data segments per request: a queue's worth, less header and status.
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
// A chain of `SEG_MAX` segments must not be refused as too long.
const _: () = assert!(SEG_MAX as usize + 2 <= super::request::MAX_DESCRIPTORS);

/// The worker's event sources: the rate limiter's timer, then the
/// moderation timer (when moderated).
const LIMITER_SOURCE: usize = 0;

/// Feature bits (`VIRTIO_BLK_F_*`).
mod feature {
    pub const SEG_MAX: u64 = 1 << 2;
    pub const RO: u64 = 1 << 5;
    pub const BLK_SIZE: u64 = 1 << 6;
    pub const FLUSH: u64 = 1 << 9;
    pub const DISCARD: u64 = 1 << 13;
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Why a disk device could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{0}")]
    Disk(#[from] DiskError),
    #[error("the disk image {path} is {size} bytes, less than one 512-byte sector")]
    TooSmall { path: std::path::PathBuf, size: u64 },
}

/// A virtio block device over a disk image.
pub struct Block {
    /// The image, the limits and the worker's mailbox, which the VMM
    /// changes through the handle.
    handle: BlockHandle,
    readonly: bool,
    moderation: bool,
    /// The configuration space but for `capacity`, which the handle holds.
    config_space: [u8; CONFIG_LEN],
    pub(super) acked_features: u64,
    /// The configuration generation when the driver took the features,
    /// and with them (Linux does) the capacity.
    generation_at_ack: u32,
    worker: Option<Worker>,
    /// Where the worker reports its queue for a snapshot.
    report: SaveReport,
}

/// Bytes of configuration space the device fills in.
const CONFIG_LEN: usize = 60;

/// The configuration space (`struct virtio_blk_config`) up to the
/// write-zeroes fields, little-endian.
fn config_space(disk: &Disk) -> [u8; CONFIG_LEN] {
    let block_size = disk
        .direct_align()
        .map_or(SECTOR_BYTES, |a| u32::try_from(a.offset).unwrap_or(4096));
    // Ranges aligned to the block size punch whole file-system blocks.
    let range_alignment = (block_size / SECTOR_BYTES).max(8);
    let mut c = [0u8; CONFIG_LEN];
    let mut put = |offset: usize, bytes: &[u8]| {
        c[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0, &(disk.size() / SECTOR_SIZE).to_le_bytes()); // capacity
    put(12, &SEG_MAX.to_le_bytes());
    put(20, &block_size.to_le_bytes());
    put(36, &MAX_RANGE_SECTORS.to_le_bytes()); // max_discard_sectors
    put(40, &MAX_RANGES.to_le_bytes()); // max_discard_seg
    put(44, &range_alignment.to_le_bytes()); // discard_sector_alignment
    put(48, &MAX_RANGE_SECTORS.to_le_bytes()); // max_write_zeroes_sectors
    put(52, &MAX_RANGES.to_le_bytes()); // max_write_zeroes_seg
    put(56, &[1]); // write_zeroes_may_unmap
    c
}

impl Block {
    /// Opens the disk image `config` names.
    pub fn new(config: DiskConfig) -> Result<Block, BlockError> {
        let disk = Disk::open(&config)?;
        Block::with_disk(config, disk)
    }

    /// A device over an already open disk.
    pub fn with_disk(config: DiskConfig, disk: Disk) -> Result<Block, BlockError> {
        if disk.size() < SECTOR_SIZE {
            return Err(BlockError::TooSmall {
                path: config.path,
                size: disk.size(),
            });
        }
        Ok(Block {
            config_space: config_space(&disk),
            readonly: disk.readonly(),
            moderation: config.moderation,
            handle: BlockHandle::new(config, Arc::new(disk)),
            acked_features: 0,
            generation_at_ack: 0,
            worker: None,
            report: SaveReport::default(),
        })
    }

    /// The handle that changes the image and the limits at run time.
    pub fn handle(&self) -> BlockHandle {
        self.handle.clone()
    }

    /// Counts in `metrics` (before [`Block::handle`] is taken).
    pub fn with_metrics(mut self, metrics: Arc<BlockMetrics>) -> Self {
        self.handle.metrics = metrics;
        self
    }

    /// What the disk counted.
    pub fn metrics(&self) -> &BlockMetrics {
        &self.handle.metrics
    }

    fn generation(&self) -> u32 {
        self.handle.shared.generation.load(Ordering::SeqCst)
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        let common = features::VERSION_1
            | features::RING_EVENT_IDX
            | features::RING_INDIRECT_DESC
            | feature::SEG_MAX
            | feature::BLK_SIZE
            | feature::FLUSH;
        if self.readonly {
            common | feature::RO
        } else {
            common | feature::DISCARD | feature::WRITE_ZEROES
        }
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features;
        self.generation_at_ack = self.generation();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut space = self.config_space;
        let capacity = self.handle.shared.capacity.load(Ordering::SeqCst);
        space[..8].copy_from_slice(&capacity.to_le_bytes());
        read_config_bytes(&space, offset, data);
    }

    fn config_generation(&self) -> u32 {
        self.generation()
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        // Only `writeback` is writable, and only with CONFIG_WCE, which is
        // not offered: the cache is always write-back, flushed on request.
        tracing::debug!(offset, "virtio-blk: configuration space write ignored");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let got = ctx.queues.len();
        let (Some(queue), Some(evt)) = (
            ctx.queues.into_iter().next(),
            ctx.queue_evts.into_iter().next(),
        ) else {
            return Err(ActivateError::QueueCount { expected: 1, got });
        };
        // Held until the worker is known: an update waits for it.
        let mut stored = self.handle.lock();
        let config = &stored.config;
        let limiter = RateLimiter::new(config.bandwidth.clone(), config.ops.clone())
            .map_err(|e| ActivateError::Device(format!("cannot create the rate limiter: {e}")))?;
        let kick = evt.try_clone().map_err(ActivateError::Worker)?;
        let interrupt = ctx.interrupt;
        let mut handler = BlockQueue::new(
            queue,
            ctx.mem,
            interrupt.clone(),
            stored.disk.clone(),
            limiter,
        )
        .resume_with(kick)
        .with_metrics(self.handle.metrics.clone());
        if self.moderation {
            let moderation = Moderation::new(MODERATION).map_err(ActivateError::Worker)?;
            handler = handler.with_moderation(moderation);
        }
        let mut sources = vec![handler.timer_fd()];
        sources.extend(handler.moderation_fd());
        let mailbox = Arc::new(Mailbox::<Change>::new());
        let updates = mailbox.clone();
        let report = self.report.clone();
        let worker =
            Worker::spawn(
                "virtio-blk".into(),
                vec![evt],
                sources,
                move |wake, _| match wake {
                    Wake::Queue(_) => handler.on_queue_event(),
                    Wake::Source(LIMITER_SOURCE) => handler.on_timer(),
                    Wake::Source(_) => handler.on_moderation_timer(),
                    Wake::Update => {
                        if let Some(mut taken) = updates.take() {
                            let change = &mut taken.update;
                            handler.update(change.disk.take(), &change.limits);
                        }
                    }
                    Wake::Save => report.put(SavedDevice::queues(vec![handler.save()])),
                },
            )
            .map_err(ActivateError::Worker)?;
        stored.active = Some(Active {
            mailbox,
            doorbell: worker.doorbell(),
            interrupt: interrupt.clone(),
        });
        drop(stored);
        self.worker = Some(worker);
        if self.generation() != self.generation_at_ack {
            // A new image came after the driver read the capacity.
            interrupt.signal_config_change();
        }
        Ok(())
    }

    fn reset(&mut self) {
        // No update reaches the worker from now on; dropping it joins its
        // thread: no request is in flight once the driver sees the reset.
        self.handle.lock().active = None;
        self.worker = None;
        self.acked_features = 0;
    }

    fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    fn save(&self) -> Result<SavedDevice, SaveError> {
        self.report
            .ask_if_active(self.worker.as_ref(), "virtio-blk")
    }

    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError> {
        expect_no_state("virtio-blk", state)
    }
}
