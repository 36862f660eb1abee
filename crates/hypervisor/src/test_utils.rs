//! What the unit tests that run tiny guests share: a VM with the
//! in-kernel platform, and a page of guest code.

use std::path::Path;

use crate::{Hypervisor, MemorySlot, Vcpu, Vm};

// KVM wants the TSS below 4 GiB; these VMs have no RAM to collide with.
pub const TSS_ADDR: u64 = 0xfffb_d000;
/// Where [`map_code`] puts the code, in guest-physical memory.
pub const CODE_ADDR: u64 = 0x1000;

pub fn hypervisor() -> Hypervisor {
    Hypervisor::open(Path::new("/dev/kvm")).expect("these tests need /dev/kvm")
}

/// A VM with the in-kernel irqchip and PIT, which GSI routing and the
/// state of a VM need. Fails where /dev/kvm is missing, as the
/// integration tests do.
pub fn vm_with_irqchip() -> Vm {
    let vm = hypervisor().create_vm().unwrap();
    vm.create_x86_platform(TSS_ADDR).unwrap();
    vm
}

/// Maps one page holding `code` at [`CODE_ADDR`] in `vm` (slot 0). The
/// page is never unmapped, so it outlives the VM.
pub fn map_code(vm: &Vm, code: &[u8]) {
    assert!(code.len() <= 0x1000);
    let page = map_page(vm, 0, CODE_ADDR, false);
    // SAFETY: the page is ours, writable and no smaller than the code.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), page, code.len()) };
}

/// Maps a new zeroed page at `guest_addr` in `vm`, as memory slot `slot`,
/// KVM logging the guest's writes to it if `log_dirty_pages`. The page
/// is never unmapped, so it outlives the VM; its host address is returned.
pub fn map_page(vm: &Vm, slot: u32, guest_addr: u64, log_dirty_pages: bool) -> *mut u8 {
    // SAFETY: an anonymous private mapping of one page, checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            0x1000,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let slot = MemorySlot {
        slot,
        guest_addr,
        size: 0x1000,
        host_addr: page as u64,
        log_dirty_pages,
    };
    // SAFETY: the mapping is never unmapped: it outlives the VM.
    unsafe { vm.map_memory(slot) }.unwrap();
    page.cast()
}

/// Points `vcpu` at [`CODE_ADDR`] in real mode with flat segments.
pub fn start_at_code(vcpu: &Vcpu) {
    let mut sregs = vcpu.sregs().unwrap();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = 0;
    sregs.ds.selector = 0;
    vcpu.set_sregs(&sregs).unwrap();
    let mut regs = vcpu.regs().unwrap();
    regs.rip = CODE_ADDR;
    regs.rflags = 2;
    vcpu.set_regs(&regs).unwrap();
}
