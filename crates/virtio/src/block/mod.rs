//! virtio-blk: a raw disk image as a guest block device.
//!
//! One request queue served on the device's worker thread with plain
//! positional, vectored system calls on the image (`preadv`, `pwritev`,
//! `fdatasync`, `fallocate`), optionally O_DIRECT and rate-limited.

mod config;
mod device;
mod disk;
mod handle;
mod handler;
mod ranges;
pub mod request;

pub use config::{ConfigError, DiskConfig, ID_BYTES};
pub use device::{Block, BlockError};
pub use disk::{DirectAlign, Disk, DiskError};
pub use handle::{BlockHandle, BlockUpdate};
pub use handler::{status, BlockQueue, MODERATION};

/// Guest memory as the device reads and writes it, with the part of the
/// dirty bitmap that covers it.
pub type GuestSlice<'a> =
    vm_memory::VolatileSlice<'a, vm_memory::bitmap::BS<'a, vm_memory::bitmap::AtomicBitmap>>;

/// Most ranges in one discard or write-zeroes request.
pub const MAX_RANGES: u32 = 32;
/// Most sectors in one discard or write-zeroes range (2 GiB).
pub const MAX_RANGE_SECTORS: u32 = 1 << 22;

#[cfg(test)]
mod save_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod update_tests;
