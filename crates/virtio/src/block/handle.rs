//! The disk's settings shared between the device, its worker and the
//! VMM, which changes them while the guest runs (Firecracker's
//! `PATCH /drives/{id}`): a new image, as a new medium in the same drive,
//! and new rate limits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use metrics::BlockMetrics;

use super::config::DiskConfig;
use super::device::BlockError;
use super::disk::Disk;
use super::request::SECTOR_SIZE;
use crate::rate_limiter::LimiterUpdate;
use crate::update::{Mailbox, UpdateError};
use crate::{Doorbell, VirtioInterrupt, STOP_DEADLINE};

/// A change to a running disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockUpdate {
    /// A new image file, opened as the old one was (read-only or not,
    /// O_DIRECT or not); the guest keeps the disk's serial number.
    pub path: Option<PathBuf>,
    /// New rate limits.
    pub limits: LimiterUpdate,
}

/// What the worker applies.
pub(crate) struct Change {
    pub disk: Option<Arc<Disk>>,
    pub limits: LimiterUpdate,
}

/// The device's link to its worker while a driver runs it.
pub(crate) struct Active {
    pub mailbox: Arc<Mailbox<Change>>,
    pub doorbell: Doorbell,
    pub interrupt: Arc<dyn VirtioInterrupt>,
}

/// The settings the next activation starts from, and the running worker.
pub(crate) struct Stored {
    /// The configuration as it is now (path and limits as updated).
    pub config: DiskConfig,
    pub disk: Arc<Disk>,
    pub active: Option<Active>,
}

pub(crate) struct Shared {
    pub stored: Mutex<Stored>,
    /// Config space `capacity`, in sectors, which vCPUs read.
    pub capacity: AtomicU64,
    /// Bumped at each change of the configuration space.
    pub generation: AtomicU32,
}

/// What the VMM holds to change a disk while the guest runs (cheap to
/// clone).
#[derive(Clone)]
pub struct BlockHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<BlockMetrics>,
}

impl BlockHandle {
    pub(crate) fn new(config: DiskConfig, disk: Arc<Disk>) -> Self {
        let capacity = disk.size() / SECTOR_SIZE;
        BlockHandle {
            shared: Arc::new(Shared {
                stored: Mutex::new(Stored {
                    config,
                    disk,
                    active: None,
                }),
                capacity: AtomicU64::new(capacity),
                generation: AtomicU32::new(0),
            }),
            metrics: Arc::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Stored> {
        // Nothing under the lock can panic halfway through a change.
        self.shared
            .stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The disk's configuration as it is now.
    pub fn config(&self) -> DiskConfig {
        self.lock().config.clone()
    }

    /// Applies `update`, all of it or, on an error, none of it. A new
    /// image is opened here first, so a missing or unusable file fails
    /// the update. While a driver runs the device, its worker takes the
    /// update between two requests, and the guest is told that the
    /// configuration changed (Linux then reads the new capacity);
    /// before, the update is kept for the driver to find at activation.
    pub fn update(&self, update: BlockUpdate) -> Result<(), UpdateError> {
        let result = self.apply(update);
        match result {
            Ok(()) => self.metrics.update_count.inc(),
            Err(_) => self.metrics.update_fails.inc(),
        }
        result
    }

    fn apply(&self, update: BlockUpdate) -> Result<(), UpdateError> {
        let disk = match &update.path {
            Some(path) => {
                let current = self.lock().disk.clone();
                let disk = current.successor(path).map_err(BlockError::Disk)?;
                if disk.size() < SECTOR_SIZE {
                    return Err(BlockError::TooSmall {
                        path: path.clone(),
                        size: disk.size(),
                    }
                    .into());
                }
                Some(Arc::new(disk))
            }
            None => None,
        };
        // Held until the end: a reset or an activation of the device
        // waits for the update to be wholly in place.
        let mut stored = self.lock();
        if let Some(active) = &stored.active {
            let change = Change {
                disk: disk.clone(),
                limits: update.limits.clone(),
            };
            if active
                .mailbox
                .send(change, &active.doorbell, STOP_DEADLINE)
                .is_err()
            {
                return Err(UpdateError::NoAnswer(STOP_DEADLINE));
            }
        }
        let stored = &mut *stored;
        let config = &mut stored.config;
        update
            .limits
            .apply_to(&mut config.bandwidth, &mut config.ops);
        if let (Some(disk), Some(path)) = (disk, update.path) {
            config.path = path;
            self.shared
                .capacity
                .store(disk.size() / SECTOR_SIZE, Ordering::SeqCst);
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
            stored.disk = disk;
            if let Some(active) = &stored.active {
                active.interrupt.signal_config_change();
            }
            tracing::info!(
                path = %stored.config.path.display(),
                sectors = self.shared.capacity.load(Ordering::SeqCst),
                "virtio-blk: new disk image"
            );
        }
        Ok(())
    }
}
