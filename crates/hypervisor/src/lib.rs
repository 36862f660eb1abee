//! Access to Linux KVM.
//!
//! One type per file-descriptor level, as in `kvm-ioctls`: [`Hypervisor`]
//! (the `/dev/kvm` system fd), [`Vm`] and [`Vcpu`]. Every failure is an
//! [`Error`] naming the operation, so the layers above never see a bare
//! errno.

mod error;
mod irq_routing;
mod platform_state;
mod system;
#[cfg(test)]
mod test_utils;
mod vcpu;
mod vcpu_state;
mod vm;

pub use error::{Error, Result};
pub use irq_routing::{MAX_GSI, MSI_GSI_BASE};
pub use kvm_bindings;
pub use platform_state::PlatformState;
pub use system::Hypervisor;
pub use vcpu::{Vcpu, VcpuExit};
pub use vcpu_state::VcpuState;
pub use vm::{MemorySlot, Vm};
