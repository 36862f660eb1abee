//! Access to Linux KVM.
//!
//! One type per file-descriptor level, as in `kvm-ioctls`: [`Hypervisor`]
//! (the `/dev/kvm` system fd), [`Vm`] and [`Vcpu`]. Every failure is an
//! [`Error`] naming the operation, so the layers above never see a bare
//! errno.

mod error;
mod irq_routing;
mod system;
mod vcpu;
mod vm;

pub use error::{Error, Result};
pub use irq_routing::{MAX_GSI, MSI_GSI_BASE};
pub use kvm_bindings;
pub use system::Hypervisor;
pub use vcpu::{Vcpu, VcpuExit};
pub use vm::Vm;
