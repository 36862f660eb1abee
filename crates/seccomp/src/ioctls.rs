//! The ioctl request numbers the filters allow, computed as the kernel's
//! `_IO`/`_IOR`/`_IOW`/`_IOWR` macros do, from the sizes of the
//! `kvm-bindings` structures.

use std::mem::size_of;

use kvm_bindings::{
    kvm_clock_data, kvm_cpuid2, kvm_debugregs, kvm_dirty_log, kvm_enable_cap, kvm_fpu,
    kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irqchip, kvm_irqfd, kvm_lapic_state,
    kvm_mp_state, kvm_msi, kvm_msr_list, kvm_msrs, kvm_pit_config, kvm_pit_state2, kvm_regs,
    kvm_sregs, kvm_userspace_memory_region, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};

const KVMIO: u64 = 0xAE;
const NONE: u64 = 0;
const WRITE: u64 = 1;
const READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (KVMIO << 8) | nr
}
const fn io(nr: u64) -> u64 {
    ioc(NONE, nr, 0)
}
const fn ior<T>(nr: u64) -> u64 {
    ioc(READ, nr, size_of::<T>())
}
const fn iow<T>(nr: u64) -> u64 {
    ioc(WRITE, nr, size_of::<T>())
}
const fn iowr<T>(nr: u64) -> u64 {
    ioc(READ | WRITE, nr, size_of::<T>())
}

// On /dev/kvm.
pub const KVM_GET_API_VERSION: u64 = io(0x00);
pub const KVM_CREATE_VM: u64 = io(0x01);
pub const KVM_GET_MSR_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x02);
pub const KVM_CHECK_EXTENSION: u64 = io(0x03);
pub const KVM_GET_VCPU_MMAP_SIZE: u64 = io(0x04);
pub const KVM_GET_SUPPORTED_CPUID: u64 = iowr::<kvm_cpuid2>(0x05);
pub const KVM_GET_MSR_FEATURE_INDEX_LIST: u64 = iowr::<kvm_msr_list>(0x0a);

// On a VM.
pub const KVM_CREATE_VCPU: u64 = io(0x41);
pub const KVM_GET_DIRTY_LOG: u64 = iow::<kvm_dirty_log>(0x42);
pub const KVM_SET_USER_MEMORY_REGION: u64 = iow::<kvm_userspace_memory_region>(0x46);
pub const KVM_SET_TSS_ADDR: u64 = io(0x47);
pub const KVM_SET_IDENTITY_MAP_ADDR: u64 = iow::<u64>(0x48);
pub const KVM_CREATE_IRQCHIP: u64 = io(0x60);
pub const KVM_IRQ_LINE: u64 = iow::<kvm_irq_level>(0x61);
pub const KVM_GET_IRQCHIP: u64 = iowr::<kvm_irqchip>(0x62);
pub const KVM_SET_IRQCHIP: u64 = ior::<kvm_irqchip>(0x63);
pub const KVM_IRQ_LINE_STATUS: u64 = iowr::<kvm_irq_level>(0x67);
pub const KVM_SET_GSI_ROUTING: u64 = iow::<kvm_irq_routing>(0x6a);
pub const KVM_IRQFD: u64 = iow::<kvm_irqfd>(0x76);
pub const KVM_CREATE_PIT2: u64 = iow::<kvm_pit_config>(0x77);
pub const KVM_IOEVENTFD: u64 = iow::<kvm_ioeventfd>(0x79);
pub const KVM_SET_CLOCK: u64 = iow::<kvm_clock_data>(0x7b);
pub const KVM_GET_CLOCK: u64 = ior::<kvm_clock_data>(0x7c);
pub const KVM_GET_PIT2: u64 = ior::<kvm_pit_state2>(0x9f);
pub const KVM_SET_PIT2: u64 = iow::<kvm_pit_state2>(0xa0);
pub const KVM_ENABLE_CAP: u64 = iow::<kvm_enable_cap>(0xa3);
pub const KVM_SIGNAL_MSI: u64 = iow::<kvm_msi>(0xa5);

// On a vCPU.
pub const KVM_RUN: u64 = io(0x80);
pub const KVM_GET_REGS: u64 = ior::<kvm_regs>(0x81);
pub const KVM_SET_REGS: u64 = iow::<kvm_regs>(0x82);
pub const KVM_GET_SREGS: u64 = ior::<kvm_sregs>(0x83);
pub const KVM_SET_SREGS: u64 = iow::<kvm_sregs>(0x84);
pub const KVM_GET_MSRS: u64 = iowr::<kvm_msrs>(0x88);
pub const KVM_SET_MSRS: u64 = iow::<kvm_msrs>(0x89);
pub const KVM_GET_FPU: u64 = ior::<kvm_fpu>(0x8c);
pub const KVM_SET_FPU: u64 = iow::<kvm_fpu>(0x8d);
pub const KVM_GET_LAPIC: u64 = ior::<kvm_lapic_state>(0x8e);
pub const KVM_SET_LAPIC: u64 = iow::<kvm_lapic_state>(0x8f);
pub const KVM_SET_CPUID2: u64 = iow::<kvm_cpuid2>(0x90);
pub const KVM_GET_CPUID2: u64 = iowr::<kvm_cpuid2>(0x91);
pub const KVM_GET_MP_STATE: u64 = ior::<kvm_mp_state>(0x98);
pub const KVM_SET_MP_STATE: u64 = iow::<kvm_mp_state>(0x99);
pub const KVM_GET_VCPU_EVENTS: u64 = ior::<kvm_vcpu_events>(0x9f);
pub const KVM_SET_VCPU_EVENTS: u64 = iow::<kvm_vcpu_events>(0xa0);
pub const KVM_GET_DEBUGREGS: u64 = ior::<kvm_debugregs>(0xa1);
pub const KVM_SET_DEBUGREGS: u64 = iow::<kvm_debugregs>(0xa2);
pub const KVM_SET_TSC_KHZ: u64 = io(0xa2);
pub const KVM_GET_TSC_KHZ: u64 = io(0xa3);
pub const KVM_GET_XSAVE: u64 = ior::<kvm_xsave>(0xa4);
pub const KVM_SET_XSAVE: u64 = iow::<kvm_xsave>(0xa5);
pub const KVM_GET_XCRS: u64 = ior::<kvm_xcrs>(0xa6);
pub const KVM_SET_XCRS: u64 = iow::<kvm_xcrs>(0xa7);
pub const KVM_KVMCLOCK_CTRL: u64 = io(0xad);
pub const KVM_GET_XSAVE2: u64 = ior::<kvm_xsave>(0xcf);

// Not KVM's.
pub const FIONBIO: u64 = libc::FIONBIO;
pub const TCGETS: u64 = libc::TCGETS;
pub const TCSETS: u64 = libc::TCSETS;
pub const TCSETSW: u64 = libc::TCSETSW;
pub const TIOCGWINSZ: u64 = libc::TIOCGWINSZ;
pub const TUNSETIFF: u64 = libc::TUNSETIFF;
pub const TUNGETFEATURES: u64 = libc::TUNGETFEATURES;
pub const TUNSETOFFLOAD: u64 = libc::TUNSETOFFLOAD;
pub const TUNSETVNETHDRSZ: u64 = libc::TUNSETVNETHDRSZ;
pub const TUNGETIFF: u64 = libc::TUNGETIFF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_headers() {
        // Values from linux/kvm.h as built for x86_64.
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_IOEVENTFD, 0x4040_ae79);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
        assert_eq!(KVM_SET_USER_MEMORY_REGION, 0x4020_ae46);
        assert_eq!(KVM_GET_DIRTY_LOG, 0x4010_ae42);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_XSAVE, 0x9000_aea4);
        assert_eq!(KVM_SET_CPUID2, 0x4008_ae90);
        assert_eq!(KVM_GET_MSRS, 0xc008_ae88);
    }
}
