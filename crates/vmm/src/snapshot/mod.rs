//! Snapshots of a paused guest: its machine state in one file (the
//! `snapshot` crate's format), its RAM in another; and a machine restored
//! from the two.

mod create;
mod dirty_pages;
mod memory_file;
mod merge;
mod restore;
mod state;

pub use merge::{merge_memory_files, MergeError};
pub(crate) use restore::LoadedSnapshot;
pub use restore::{describe_snapshot, SnapshotInfo};
pub(crate) use state::{DevicesState, LegacyDevicesState, MachineState};
