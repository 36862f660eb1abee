//! A KVM VM: its memory, interrupt controllers, interrupt routes, event
//! fds and vCPUs.

use std::sync::{Mutex, PoisonError};

use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::irq_routing::{IrqRoutes, MsiRoute};
use crate::vcpu::Vcpu;

/// A KVM virtual machine: its memory slots, interrupt controllers and vCPUs.
///
/// Every method takes `&self`, so one `Vm` can be shared (in an `Arc`) by
/// the threads that set up devices and the vCPU threads that reprogram
/// interrupt routes.
pub struct Vm {
    fd: VmFd,
    // KVM_SET_GSI_ROUTING replaces the whole table, so the VMM keeps its own
    // copy; the lock is held across the ioctl so concurrent commits reach
    // KVM in the order they changed the copy.
    routes: Mutex<IrqRoutes>,
}

/// A memory slot: guest-physical range, the host memory behind it, and
/// whether KVM logs the guest's writes to it.
#[derive(Clone, Copy, Debug)]
pub struct MemorySlot {
    pub slot: u32,
    pub guest_addr: u64,
    pub size: u64,
    pub host_addr: u64,
    pub log_dirty_pages: bool,
}

impl Vm {
    pub(crate) fn new(fd: VmFd) -> Self {
        Vm {
            fd,
            routes: Mutex::new(IrqRoutes::default()),
        }
    }

    pub(crate) fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Maps `slot.size` bytes of host memory at `slot.host_addr` into the
    /// guest at `slot.guest_addr`, in memory slot `slot.slot`; with
    /// `slot.log_dirty_pages`, KVM logs every page the guest writes there
    /// for [`Vm::take_dirty_log`].
    ///
    /// # Safety
    ///
    /// `host_addr..host_addr + size` must be a mapping that stays valid,
    /// and is not unmapped or remapped, for as long as this VM exists; the
    /// guest may read and write it at any time.
    pub unsafe fn map_memory(&self, slot: MemorySlot) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot: slot.slot,
            flags: if slot.log_dirty_pages {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
            guest_phys_addr: slot.guest_addr,
            memory_size: slot.size,
            userspace_addr: slot.host_addr,
        };
        // SAFETY: the caller guarantees that the host mapping outlives the VM.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(Error::ioctl("KVM_SET_USER_MEMORY_REGION"))
    }

    /// The pages of memory slot `slot` (of `size` bytes, mapped with
    /// `log_dirty_pages`) the guest wrote since the slot was mapped or
    /// since the last call, one bit per 4 KiB page from the slot's start,
    /// in 64-bit words; KVM starts the log afresh (`KVM_GET_DIRTY_LOG`).
    pub fn take_dirty_log(&self, slot: u32, size: u64) -> Result<Vec<u64>> {
        let size = usize::try_from(size).map_err(|_| Error::SlotTooLarge { slot, size })?;
        self.fd
            .get_dirty_log(slot, size)
            .map_err(Error::ioctl("KVM_GET_DIRTY_LOG"))
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
        self.register_mmio_ioevent_sized(evt, addr, datamatch)
    }

    /// Makes a 2-byte guest write of `datamatch` to MMIO address `addr`
    /// signal `evt` inside KVM: virtio-pci drivers notify a queue with a
    /// 16-bit write of its index.
    pub fn register_mmio_ioevent16(&self, evt: &EventFd, addr: u64, datamatch: u16) -> Result<()> {
        self.register_mmio_ioevent_sized(evt, addr, datamatch)
    }

    /// Makes any guest write to MMIO address `addr`, of any value and
    /// width, signal `evt` inside KVM: the write never leaves the kernel.
    pub fn register_mmio_ioevent_any(&self, evt: &EventFd, addr: u64) -> Result<()> {
        self.register_mmio_ioevent_sized(evt, addr, NoDatamatch)
    }

    // KVM matches the write's length against the size of `datamatch`'s
    // type (none for `NoDatamatch`: any length).
    fn register_mmio_ioevent_sized<T: Into<u64>>(
        &self,
        evt: &EventFd,
        addr: u64,
        datamatch: T,
    ) -> Result<()> {
        self.fd
            .register_ioevent(evt, &IoEventAddress::Mmio(addr), datamatch)
            .map_err(Error::ioctl("KVM_IOEVENTFD"))
    }

    /// Points `gsi` (at least [`MSI_GSI_BASE`](crate::MSI_GSI_BASE), below
    /// [`MAX_GSI`](crate::MAX_GSI)) at an MSI: a write of `data` to
    /// `address`. Replaces any MSI route `gsi` had.
    pub fn set_msi_route(&self, gsi: u32, address: u64, data: u32) -> Result<()> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = routes.insert_msi(gsi, MsiRoute { address, data })?;
        self.commit_routes(&mut routes, gsi, previous)
    }

    /// Removes the MSI route of `gsi`; an irqfd on it then raises nothing.
    /// Removing a route that is not there succeeds without an ioctl.
    pub fn remove_msi_route(&self, gsi: u32) -> Result<()> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        match routes.remove_msi(gsi) {
            Some(previous) => self.commit_routes(&mut routes, gsi, Some(previous)),
            None => Ok(()),
        }
    }

    // Sends the whole table to KVM. If KVM refuses it, `gsi` gets its
    // `previous` route back so the copy still matches what KVM has.
    fn commit_routes(
        &self,
        routes: &mut IrqRoutes,
        gsi: u32,
        previous: Option<MsiRoute>,
    ) -> Result<()> {
        let result = routes.to_kvm().and_then(|table| {
            self.fd
                .set_gsi_routing(&table)
                .map_err(Error::ioctl("KVM_SET_GSI_ROUTING"))
        });
        if result.is_err() {
            routes.restore_msi(gsi, previous);
        }
        result
    }

    /// Creates vCPU number `id` (also its APIC ID).
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        self.fd
            .create_vcpu(u64::from(id))
            .map(|fd| Vcpu::new(fd, id))
            .map_err(Error::ioctl("KVM_CREATE_VCPU"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    use super::*;
    use crate::irq_routing::{MAX_GSI, MSI_GSI_BASE};
    use crate::test_utils::{map_code, map_page, start_at_code, vm_with_irqchip};
    use crate::vcpu::VcpuExit;

    const MSI_ADDRESS: u64 = 0xfee0_0000;

    #[test]
    fn vm_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Vm>();
    }

    #[test]
    fn msi_routes_set_replace_and_remove() {
        let vm = vm_with_irqchip();
        vm.set_msi_route(MSI_GSI_BASE, MSI_ADDRESS, 0x4021).unwrap();
        vm.set_msi_route(MSI_GSI_BASE + 1, MSI_ADDRESS | 0x1000, 0x22)
            .unwrap();
        vm.set_msi_route(MSI_GSI_BASE, MSI_ADDRESS, 0x23).unwrap();
        vm.set_msi_route(MAX_GSI - 1, MSI_ADDRESS, 0x24).unwrap();
        vm.remove_msi_route(MSI_GSI_BASE).unwrap();
        vm.remove_msi_route(MSI_GSI_BASE).unwrap();
        vm.remove_msi_route(MAX_GSI - 1).unwrap();
        let routes = vm.routes.lock().unwrap();
        assert_eq!(routes.entries().len(), 41);
    }

    #[test]
    fn msi_route_outside_range_is_refused_without_ioctl() {
        let vm = vm_with_irqchip();
        assert!(matches!(
            vm.set_msi_route(5, MSI_ADDRESS, 0),
            Err(Error::MsiGsiOutOfRange { gsi: 5 })
        ));
        assert!(matches!(
            vm.set_msi_route(MAX_GSI, MSI_ADDRESS, 0),
            Err(Error::MsiGsiOutOfRange { .. })
        ));
    }

    #[test]
    fn legacy_irqfd_still_works_after_msi_routing() {
        let vm = vm_with_irqchip();
        vm.set_msi_route(MSI_GSI_BASE, MSI_ADDRESS, 0x30).unwrap();
        // GSI 4 (COM1) keeps its IOAPIC route after the table is replaced.
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        vm.register_irqfd(&evt, 4).unwrap();
        evt.write(1).unwrap();
    }

    #[test]
    fn irqfd_on_msi_gsi_registers_from_another_thread() {
        let vm = Arc::new(vm_with_irqchip());
        let gsi = MSI_GSI_BASE + 3;
        let worker = {
            let vm = Arc::clone(&vm);
            std::thread::spawn(move || vm.set_msi_route(gsi, MSI_ADDRESS, 0x41))
        };
        worker.join().unwrap().unwrap();
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        vm.register_irqfd(&evt, gsi).unwrap();
        // KVM consumes the write and injects the MSI; nothing runs the
        // vCPUs here, so this only checks the path is accepted.
        evt.write(1).unwrap();
    }

    #[test]
    fn ioevents_of_both_sizes_register() {
        let vm = vm_with_irqchip();
        let evt16 = EventFd::new(EFD_NONBLOCK).unwrap();
        let evt32 = EventFd::new(EFD_NONBLOCK).unwrap();
        vm.register_mmio_ioevent16(&evt16, 0xe000_3000, 1).unwrap();
        vm.register_mmio_ioevent(&evt32, 0xd000_0050, 1).unwrap();
        // The same address and length with the same match is a duplicate.
        assert!(vm.register_mmio_ioevent16(&evt16, 0xe000_3000, 1).is_err());
    }

    /// A write KVM answers with an ioeventfd never reaches the VMM: a
    /// real-mode guest writes a word to a watched MMIO address, then to
    /// port 0x80 (with the in-kernel irqchip a halt would not exit); the
    /// only exit is the port write.
    #[test]
    fn a_watched_write_stays_in_the_kernel() {
        const WATCHED: u64 = 0x2064;
        let vm = vm_with_irqchip();
        // mov ax, 1; mov [0x2064], ax; out 0x80, al
        map_code(&vm, &[0xb8, 0x01, 0x00, 0xa3, 0x64, 0x20, 0xe6, 0x80]);
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        vm.register_mmio_ioevent_any(&evt, WATCHED).unwrap();

        let mut vcpu = vm.create_vcpu(0).unwrap();
        start_at_code(&vcpu);
        loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoOut { port: 0x80, .. } => break,
                VcpuExit::Interrupted => continue,
                VcpuExit::MmioWrite { addr, .. } => panic!("write to {addr:#x} left KVM"),
                other => panic!("unexpected exit {other:?}"),
            }
        }
        assert_eq!(evt.read().unwrap(), 1);
    }

    /// KVM logs a guest's writes to a slot mapped with `log_dirty_pages`
    /// (PVM included), and each read of the log starts it afresh: a
    /// real-mode guest writes a byte at 0x3010, exits on port 0x80, then
    /// at 0x3020 (the same page) and exits again.
    #[test]
    fn the_dirty_log_holds_the_pages_the_guest_wrote_since_the_last_read() {
        const DATA: u64 = 0x3000;
        let vm = vm_with_irqchip();
        // mov byte [0x3010], 1; out 0x80, al; mov byte [0x3020], 2;
        // out 0x80, al; out 0x80, al
        map_code(
            &vm,
            &[
                0xc6, 0x06, 0x10, 0x30, 0x01, 0xe6, 0x80, 0xc6, 0x06, 0x20, 0x30, 0x02, 0xe6, 0x80,
                0xe6, 0x80,
            ],
        );
        let data = map_page(&vm, 1, DATA, true);
        assert_eq!(vm.take_dirty_log(1, 0x1000).unwrap(), [0]);
        let mut vcpu = vm.create_vcpu(0).unwrap();
        start_at_code(&vcpu);
        let mut run_to_port = || loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoOut { port: 0x80, .. } => break,
                VcpuExit::Interrupted => continue,
                other => panic!("unexpected exit {other:?}"),
            }
        };
        run_to_port();
        // SAFETY: the page is mapped for the rest of the process.
        assert_eq!(unsafe { data.add(0x10).read_volatile() }, 1);
        assert_eq!(vm.take_dirty_log(1, 0x1000).unwrap(), [1]);
        assert_eq!(vm.take_dirty_log(1, 0x1000).unwrap(), [0], "not reset");
        run_to_port();
        assert_eq!(
            vm.take_dirty_log(1, 0x1000).unwrap(),
            [1],
            "not logged again"
        );
        run_to_port();
        assert_eq!(vm.take_dirty_log(1, 0x1000).unwrap(), [0]);
        // A slot mapped without logging has no log to read.
        assert!(vm.take_dirty_log(0, 0x1000).is_err());
    }
}
