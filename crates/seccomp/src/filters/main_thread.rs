//! The main thread: the event loop, the API's requests, the console's
//! input, metrics and logs, snapshots, device changes and reboots. Its
//! filter goes on once the first machine is built; it stays broad where
//! later work needs it, and each broad call says why.

use crate::allow_list::AllowList;
use crate::ioctls::*;

use super::common::{every_thread, starting_threads};
use super::vcpu::vcpu_thread;

pub fn main_thread() -> AllowList {
    // KVM_RUN first among the requests a filter compares in turn: vCPU
    // threads, started here, run under this filter too, at every exit.
    AllowList::default()
        .ioctls(&[KVM_RUN])
        .and(&every_thread())
        .calls(&[
            // Files opened after start: `PUT /snapshot/create` writes its
            // state and memory files, `PATCH /drives` opens a disk's new
            // path, `PUT /logger` and `PUT /metrics` open their files, a
            // reboot in place reads the kernel and initrd again, and a
            // vsock device rebuilt by a reboot looks at and removes a stale
            // socket file. (Syncing and punching holes come with the
            // workers' calls below.)
            libc::SYS_openat,
            libc::SYS_lseek,
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_readv,
            libc::SYS_ftruncate,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_statx,
            libc::SYS_unlink,
            // Devices and the event loop hold clones of eventfds and
            // sockets (`try_clone`).
            libc::SYS_dup,
            libc::SYS_dup2,
            libc::SYS_dup3,
            // The event loop and the eventfds, timers and epolls of a
            // rebuilt machine's devices.
            libc::SYS_epoll_create1,
            libc::SYS_eventfd2,
            libc::SYS_timerfd_create,
            libc::SYS_timerfd_settime,
            libc::SYS_timerfd_gettime,
            libc::SYS_poll,
            libc::SYS_ppoll,
            // A reboot rebuilds vsock's host socket: bound and listened on
            // again at its path (the old one removed first).
            libc::SYS_bind,
            libc::SYS_listen,
            libc::SYS_getsockname,
            libc::SYS_setsockopt,
            // Signal handlers (the vCPU kick is installed on first spawn),
            // and the process limits std reads for a new thread's stack.
            libc::SYS_rt_sigaction,
            libc::SYS_prlimit64,
        ])
        // Reboots rebuild the machine in place: a new VM from /dev/kvm,
        // with all of a boot's setup. Snapshot create reads every part of
        // it; snapshot restore, while the guest has not run yet, sets it.
        .ioctls(&[
            KVM_GET_API_VERSION,
            KVM_CREATE_VM,
            KVM_GET_MSR_INDEX_LIST,
            KVM_GET_MSR_FEATURE_INDEX_LIST,
            KVM_CHECK_EXTENSION,
            KVM_GET_VCPU_MMAP_SIZE,
            KVM_GET_SUPPORTED_CPUID,
            KVM_CREATE_VCPU,
            KVM_SET_USER_MEMORY_REGION,
            KVM_SET_TSS_ADDR,
            KVM_SET_IDENTITY_MAP_ADDR,
            KVM_CREATE_IRQCHIP,
            KVM_CREATE_PIT2,
            KVM_ENABLE_CAP,
            KVM_GET_IRQCHIP,
            KVM_SET_IRQCHIP,
            KVM_GET_PIT2,
            KVM_SET_PIT2,
            KVM_GET_CLOCK,
            KVM_SET_CLOCK,
            KVM_SET_REGS,
            KVM_SET_SREGS,
            KVM_SET_FPU,
            KVM_SET_MSRS,
            KVM_SET_LAPIC,
            KVM_SET_CPUID2,
            KVM_SET_MP_STATE,
            KVM_SET_VCPU_EVENTS,
            KVM_SET_DEBUGREGS,
            KVM_SET_XSAVE,
            KVM_SET_XCRS,
            KVM_SET_TSC_KHZ,
            KVM_KVMCLOCK_CTRL,
            // Diff snapshots: the pages the guest wrote since the last.
            KVM_GET_DIRTY_LOG,
            // The terminal: the console's raw mode, set and given back.
            TCGETS,
            TCSETS,
            TCSETSW,
            TIOCGWINSZ,
            FIONBIO,
            // A reboot reopens each NIC's TAP (kept open across reboots,
            // but opened by name when a `PATCH` or restore gives a new one).
            TUNSETIFF,
            TUNGETIFF,
            TUNGETFEATURES,
            TUNSETVNETHDRSZ,
        ])
        // vsock's host socket, rebuilt on reboot.
        .arg_in(libc::SYS_socket, 0, &[libc::AF_UNIX as u64])
        // The main thread starts the vCPU threads (each running under this
        // filter and its own), and restored devices' workers: so it
        // allows all they do.
        .and(&starting_threads())
        .and(&vcpu_thread())
}
