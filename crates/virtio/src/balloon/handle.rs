//! The balloon's state shared between the device, its worker and the
//! VMM: the target, what the guest says it holds, its latest statistics.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::BalloonMetrics;

use super::config::bytes_to_pages;
use super::stats::BalloonStats;
use super::BALLOON_PAGE;
use crate::VirtioInterrupt;

/// Why a new target was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("a balloon of {requested} bytes is larger than the guest's {memory} bytes of memory")]
    LargerThanMemory { requested: u64, memory: u64 },
}

#[derive(Default)]
pub(crate) struct Shared {
    /// Target in 4 KiB pages (config space `num_pages`).
    pub num_pages: AtomicU32,
    /// Pages the guest says the balloon holds (config space `actual`).
    pub actual: AtomicU32,
    pub stats: Mutex<Option<BalloonStats>>,
    /// The device's interrupt while a driver runs it, to announce a new
    /// target.
    pub interrupt: Mutex<Option<Arc<dyn VirtioInterrupt>>>,
    /// Guest RAM in bytes: the largest target.
    pub memory: u64,
}

/// What the VMM holds to steer the balloon at run time (cheap to clone).
#[derive(Clone)]
pub struct BalloonHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<BalloonMetrics>,
}

impl BalloonHandle {
    pub(crate) fn new(target_pages: u32, memory: u64) -> Self {
        let shared = Shared {
            num_pages: AtomicU32::new(target_pages),
            memory,
            ..Default::default()
        };
        BalloonHandle {
            shared: Arc::new(shared),
            metrics: Arc::default(),
        }
    }

    /// Asks the guest to inflate or deflate to `bytes` (whole 4 KiB pages):
    /// updates `num_pages` and, when a driver runs the device, raises a
    /// configuration change interrupt so it looks.
    pub fn set_target(&self, bytes: u64) -> Result<(), TargetError> {
        let too_large = TargetError::LargerThanMemory {
            requested: bytes,
            memory: self.shared.memory,
        };
        if bytes > self.shared.memory {
            return Err(too_large);
        }
        let pages = bytes_to_pages(bytes).ok_or(too_large)?;
        self.shared.num_pages.store(pages, Ordering::SeqCst);
        let interrupt = self
            .shared
            .interrupt
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(irq) = interrupt.as_ref() {
            irq.signal_config_change();
        }
        tracing::debug!(pages, "virtio-balloon: new target");
        Ok(())
    }

    /// The target in bytes.
    pub fn target(&self) -> u64 {
        u64::from(self.shared.num_pages.load(Ordering::SeqCst)) * BALLOON_PAGE
    }

    /// What the guest last said the balloon holds, in bytes.
    pub fn actual(&self) -> u64 {
        u64::from(self.shared.actual.load(Ordering::SeqCst)) * BALLOON_PAGE
    }

    /// The guest's latest statistics, if it sent any.
    pub fn stats(&self) -> Option<BalloonStats> {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
