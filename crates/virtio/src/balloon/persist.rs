//! The balloon in a snapshot: what its driver and the VMM see of it
//! beyond its queues.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use serde::{Deserialize, Serialize};

use super::handle::Shared;
use super::stats::BalloonStats;
use super::BALLOON_PAGE;
use crate::DeviceStateError;

/// The balloon's state beyond its queues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalloonState {
    /// Config space `num_pages`: the target, as last set (at run time too).
    pub num_pages: u32,
    /// Config space `actual`: what the driver last said the balloon holds.
    pub actual: u32,
    /// The head of the stats buffer the device holds between two polls:
    /// the driver sends no statistics until it gets that buffer back.
    pub held_stats: Option<u16>,
    /// The guest's latest statistics, as the VMM's API shows them.
    pub stats: Option<BalloonStats>,
}

impl BalloonState {
    /// The state of `shared`, with the worker's held stats buffer.
    pub(crate) fn of(shared: &Shared, held_stats: Option<u16>) -> BalloonState {
        BalloonState {
            num_pages: shared.num_pages.load(Ordering::SeqCst),
            actual: shared.actual.load(Ordering::SeqCst),
            held_stats,
            stats: shared
                .stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Puts the config space and statistics back into `shared`, after
    /// checking what a guest's memory and a queue of `max_queue_size`
    /// entries allow (the held buffer is checked against the size the
    /// driver gave the stats queue when the device starts).
    pub(crate) fn restore_into(
        &self,
        shared: &Shared,
        max_queue_size: u16,
    ) -> Result<(), DeviceStateError> {
        let invalid = |reason: String| DeviceStateError::Invalid {
            device: "virtio-balloon",
            reason,
        };
        let target = u64::from(self.num_pages) * BALLOON_PAGE;
        if target > shared.memory {
            return Err(invalid(format!(
                "a target of {target} bytes is larger than the guest's {} bytes of memory",
                shared.memory
            )));
        }
        if let Some(head) = self.held_stats.filter(|&h| h >= max_queue_size) {
            return Err(invalid(format!(
                "a held stats buffer {head} outside a queue of {max_queue_size} entries"
            )));
        }
        shared.num_pages.store(self.num_pages, Ordering::SeqCst);
        shared.actual.store(self.actual, Ordering::SeqCst);
        *shared.stats.lock().unwrap_or_else(PoisonError::into_inner) = self.stats.clone();
        Ok(())
    }
}
