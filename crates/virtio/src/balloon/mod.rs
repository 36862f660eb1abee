//! virtio-balloon: the guest gives memory back to the host.
//!
//! The guest inflates the balloon to the target in the config space by
//! handing over pages (PFNs on the inflate queue); the device drops the
//! host memory behind them, so the VMM's RSS falls. Deflating lets the
//! guest use them again: they fault back in as it touches them. With
//! free page reporting the guest also hands over runs of free memory
//! for a moment, which are dropped the same way; with statistics it
//! reports its memory figures every few seconds.

mod config;
mod device;
mod discard;
mod handle;
mod pages;
mod persist;
mod request;
pub mod stats;
mod work;

pub use config::{BalloonConfig, ConfigError};
pub use device::{Balloon, STATS_INTERVAL};
pub use discard::{discard, host_page_size, DiscardError};
pub use handle::{BalloonHandle, TargetError};
pub use pages::{BalloonPages, GuestRange};
pub use persist::BalloonState;
pub use stats::BalloonStats;
pub use work::{BalloonWork, QueueRole};

/// Balloon PFNs count 4 KiB pages, whatever the host's page size.
pub const BALLOON_PAGE: u64 = 4096;

/// Feature bits of the balloon (virtio 1.2, section 5.5.3).
pub mod feature {
    /// The guest reports memory statistics on the stats queue.
    pub const STATS_VQ: u64 = 1 << 1;
    /// The guest deflates when it runs out of memory.
    pub const DEFLATE_ON_OOM: u64 = 1 << 2;
    /// The guest reports free pages on the reporting queue.
    pub const REPORTING: u64 = 1 << 5;
}
