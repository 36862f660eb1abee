//! Saving a machine's state and bringing it back.
//!
//! Every part of the machine whose state the guest can observe (a device,
//! a transport, a vCPU) implements [`Persist`]: its state is a plain
//! serde struct, and restoring takes that struct and the part's edges
//! (interrupt lines, guest memory, host files) and builds the part anew.
//! The encoding lives here, not in the devices: [`file`] writes a whole
//! machine's state as one file with a magic number, a format version and
//! a checksum, and refuses any other file with an error that says what is
//! wrong with it.

mod error;
pub mod file;
mod persist;

pub use error::{Error, Result};
pub use file::{decode, encode, FORMAT_VERSION, MAGIC};
#[cfg(any(test, feature = "test-utils"))]
pub use persist::assert_round_trip;
pub use persist::Persist;
