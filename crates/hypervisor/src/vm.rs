use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{IoEventAddress, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::vcpu::Vcpu;

/// A KVM virtual machine: its memory slots, interrupt controllers and vCPUs.
pub struct Vm {
    fd: VmFd,
}

impl Vm {
    pub(crate) fn new(fd: VmFd) -> Self {
        Vm { fd }
    }

    /// Maps `size` bytes of host memory at `host_addr` into the guest at
    /// `guest_addr`, in memory slot `slot`.
    ///
    /// # Safety
    ///
    /// `host_addr..host_addr + size` must be a mapping that stays valid,
    /// and is not unmapped or remapped, for as long as this VM exists; the
    /// guest may read and write it at any time.
    pub unsafe fn map_memory(
        &self,
        slot: u32,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
    ) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: guest_addr,
            memory_size: size,
            userspace_addr: host_addr,
        };
        // SAFETY: the caller guarantees that the host mapping outlives the VM.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(Error::ioctl("KVM_SET_USER_MEMORY_REGION"))
    }

    /// Creates the x86 in-kernel interrupt controllers (PIC, IOAPIC, LAPICs)
    /// and the PIT, and places the TSS and identity-map pages KVM needs
    /// below 4 GiB, at `tss_addr` (three pages) and right after it.
    pub fn create_x86_platform(&self, tss_addr: u64) -> Result<()> {
        let identity_map = tss_addr + 3 * 0x1000;
        self.fd
            .set_identity_map_address(identity_map)
            .map_err(Error::ioctl("KVM_SET_IDENTITY_MAP_ADDR"))?;
        self.fd
            .set_tss_address(usize::try_from(tss_addr).unwrap_or(usize::MAX))
            .map_err(Error::ioctl("KVM_SET_TSS_ADDR"))?;
        self.fd
            .create_irq_chip()
            .map_err(Error::ioctl("KVM_CREATE_IRQCHIP"))?;
        // A dummy speaker port keeps guests that poke port 0x61 from
        // exiting to user space for nothing.
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd
            .create_pit2(pit)
            .map_err(Error::ioctl("KVM_CREATE_PIT2"))
    }

    /// Makes a write to `evt` raise guest interrupt line `gsi`.
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(Error::ioctl("KVM_IRQFD"))
    }

    /// Makes a 4-byte guest write of `datamatch` to MMIO address `addr`
    /// signal `evt` inside KVM, without an exit to the VMM.
    pub fn register_mmio_ioevent(&self, evt: &EventFd, addr: u64, datamatch: u32) -> Result<()> {
        self.fd
            .register_ioevent(evt, &IoEventAddress::Mmio(addr), datamatch)
            .map_err(Error::ioctl("KVM_IOEVENTFD"))
    }

    /// Creates vCPU number `id` (also its APIC ID).
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        self.fd
            .create_vcpu(u64::from(id))
            .map(|fd| Vcpu::new(fd, id))
            .map_err(Error::ioctl("KVM_CREATE_VCPU"))
    }
}
