//! A vCPU thread: it runs the guest (`KVM_RUN`) and emulates the port and
//! MMIO accesses that exit to it, which is where device registers live.

use crate::allow_list::AllowList;
use crate::ioctls::*;

use super::common::{every_thread, starting_threads};
use super::worker::device_worker;

pub fn vcpu_thread() -> AllowList {
    every_thread()
        // A device the guest activates gets its worker's epoll, eventfds
        // and rate-limiter timers made here.
        .calls(&[
            libc::SYS_epoll_create1,
            libc::SYS_eventfd2,
            libc::SYS_timerfd_create,
        ])
        .ioctls(&[
            KVM_RUN,
            // Snapshots: a paused vCPU saves its own state, on its thread.
            KVM_GET_REGS,
            KVM_GET_SREGS,
            KVM_GET_FPU,
            KVM_GET_MSRS,
            KVM_GET_LAPIC,
            KVM_GET_CPUID2,
            KVM_GET_MP_STATE,
            KVM_GET_VCPU_EVENTS,
            KVM_GET_DEBUGREGS,
            KVM_GET_XSAVE,
            KVM_GET_XSAVE2,
            KVM_GET_XCRS,
            KVM_GET_TSC_KHZ,
            // Guest writes to PCI config space and MSI-X tables route
            // interrupts; a virtio device the guest activates gets its
            // irqfds and ioeventfds; a legacy IRQ line is raised.
            KVM_SET_GSI_ROUTING,
            KVM_IRQFD,
            KVM_IOEVENTFD,
            KVM_IRQ_LINE,
            KVM_SIGNAL_MSI,
        ])
        // The guest's DRIVER_OK write activates a virtio device on this
        // thread, which starts the device's worker: the worker runs under
        // this filter and its own, so this one allows what workers do.
        .and(&starting_threads())
        .and(&device_worker())
}
