//! The test host: a place where Pointsman can boot real Linux guests.
//!
//! The KVM on our machines cannot run a Linux kernel itself, so Linux guests
//! are tested one level down: QEMU in TCG mode emulates an AMD CPU with SVM
//! and nested paging, boots Debian's cloud kernel, loads `kvm-amd`, and runs
//! Pointsman there against a hardware-style `/dev/kvm`.
//!
//! Everything comes from Debian's packages (`qemu-system-x86`,
//! `busybox-static`, the kernel packages), cached under `.cache/testhost`.
//!
//! A test describes the guest with [`Initramfs`] (usually through
//! [`linux_guest_initramfs`]) and what to do in the host with a shell
//! script, then reads back the console through [`TestHost::run`].
//! [`TestHost::with_qemu`] adds Debian's QEMU, to boot the same guest with
//! it for contrast.

mod assets;
mod error;
mod host;
mod host_modules;
mod initramfs;
mod qemu_inside;
mod tools;

pub use assets::{Assets, KernelPackage};
pub use error::{Error, Result};
pub use host::{HostRun, TestHost};
pub use initramfs::{linux_guest_initramfs, Initramfs};
pub use qemu_inside::{qemu_microvm_args, QEMU_BINARY, QEMU_FIRMWARE_DIR};
pub use tools::build_tool;
