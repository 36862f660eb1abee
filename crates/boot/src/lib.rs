//! Boot loading: puts a kernel, its initrd and its command line into guest
//! memory and writes the boot information its entry protocol expects
//! (Linux `boot_params` or PVH `hvm_start_info`).

mod cmdline;
mod error;
mod initrd;
mod kernel;
mod params;

pub use cmdline::write_cmdline;
pub use error::{Error, Result};
pub use initrd::{load_initrd, InitrdRegion};
pub use kernel::{load_kernel, KernelEntry, LoadedKernel};
pub use params::{write_boot_info, BootInfo};

/// The guest memory type every loader writes to: the VMM's, whose dirty
/// bitmap records each page written (`vmm::memory` says why).
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<vm_memory::bitmap::AtomicBitmap>;

/// `size` bytes of guest RAM from address 0, for unit tests.
#[cfg(test)]
pub(crate) fn test_memory(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), size)]).expect("test guest memory")
}
