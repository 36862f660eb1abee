//! Firecracker's API on Pointsman's VMM: each HTTP request from the server
//! becomes a [`vmm::request::VmmAction`] for the VMM thread ([`routes`]),
//! and the VMM's answer becomes Firecracker's response ([`answers`]).
//! [`FirecrackerApi`] hands them to the VMM as its request source.

pub mod answers;
pub mod routes;
mod source;

pub use source::FirecrackerApi;
