//! What every thread of the VMM needs, whatever its job.

use crate::allow_list::AllowList;

/// Memory, locks, signals, time, logging and ending.
pub fn every_thread() -> AllowList {
    AllowList::default().calls(&[
        // The allocator (and thread stacks given back at exit).
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        // Mutexes, condition variables, channels, parking.
        libc::SYS_futex,
        libc::SYS_sched_yield,
        // Eventfds, pipes and logs: each thread reads its wake-ups and
        // writes its notifications and log lines (stderr or a log file).
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_fcntl,
        // Each thread's event loop (vmm-sys-util's epoll, event-manager).
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_ctl,
        // Clocks without the vDSO, sleeps and back-offs.
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        // Signal handling: the SIGSYS report, the vCPU kick, the stop
        // signals, and Rust's stack-overflow guard page handler.
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        // A sleep or timed futex wait a handled signal (the vCPU kick,
        // SIGTERM) interrupts goes on through restart_syscall once the
        // handler returns: forbidding it ends the VMM under load.
        libc::SYS_restart_syscall,
        // A panic's backtrace (RUST_BACKTRACE) finds the executable
        // (/proc/self/exe), on whichever thread panicked.
        libc::SYS_readlink,
        // A panic aborts: raise(SIGABRT) asks for the ids.
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_tgkill,
        // std's HashMap seeds and the thread's CPU count.
        libc::SYS_getrandom,
        libc::SYS_sched_getaffinity,
        // Passed here, but refused with ENOSYS by the filter every thread
        // but the main one has beside its own (see `refusals` in lib.rs):
        // glibc's malloc may open /proc/sys/vm/overcommit_memory on any
        // thread, and copes with the failure.
        libc::SYS_open,
        libc::SYS_openat,
        // A thread ending, and the process ending (also the SIGSYS
        // report's own exit).
        libc::SYS_exit,
        libc::SYS_exit_group,
    ])
}

/// The flags glibc's `pthread_create` clones a thread with.
const THREAD_CLONE_FLAGS: libc::c_int = libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID;

/// What a thread needs to start another (std's `thread::Builder`, as
/// glibc's `pthread_create` does it) and what the new thread does before
/// its own filter is on: it runs under its parent's until then.
pub fn starting_threads() -> AllowList {
    AllowList::default()
        // Passed here, but clone3 fails with ENOSYS by the filter every
        // thread has beside its own (its flags are in memory, out of a
        // filter's reach); glibc then clones with `clone`, whose flags
        // are checked: threads only, never a new process.
        .calls(&[libc::SYS_clone3])
        .arg_in(
            libc::SYS_clone,
            0,
            &[u64::from(THREAD_CLONE_FLAGS.unsigned_abs())],
        )
        .calls(&[libc::SYS_set_robust_list, libc::SYS_rseq])
        // std names each thread; each new thread puts its own filter on
        // (no_new_privs first, as seccomp requires of unprivileged callers).
        .arg_in(
            libc::SYS_prctl,
            0,
            &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64],
        )
        .arg_in(
            libc::SYS_seccomp,
            0,
            &[u64::from(libc::SECCOMP_SET_MODE_FILTER)],
        )
}
