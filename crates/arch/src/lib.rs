//! Architecture setup for x86_64 guests.
//!
//! Pure functions that compute what a vCPU and guest memory must contain at
//! boot: this crate never talks to KVM itself, so all of it is testable
//! against plain guest memory.

pub mod layout;
pub mod x86_64;

mod error;

pub use error::{Error, Result};
