//! One filter per kind of thread, each in its own file.

mod api;
mod common;
mod main_thread;
mod vcpu;
mod worker;

use crate::allow_list::AllowList;

/// The kinds of thread in a VMM process, each with its own filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadKind {
    /// The event loop, requests, snapshots and reboots.
    Main,
    /// One per vCPU.
    Vcpu,
    /// One per virtio device.
    DeviceWorker,
    /// The API server, under `--api-sock`.
    Api,
}

impl ThreadKind {
    pub const ALL: [ThreadKind; 4] = [
        ThreadKind::Main,
        ThreadKind::Vcpu,
        ThreadKind::DeviceWorker,
        ThreadKind::Api,
    ];

    /// The name the test hook and messages use.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::DeviceWorker => "worker",
            ThreadKind::Api => "api",
        }
    }

    /// The system calls this kind of thread may make.
    pub fn allowed(self) -> AllowList {
        match self {
            ThreadKind::Main => main_thread::main_thread(),
            ThreadKind::Vcpu => vcpu::vcpu_thread(),
            ThreadKind::DeviceWorker => worker::device_worker(),
            ThreadKind::Api => api::api_thread(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioctls::{KVM_CREATE_VM, KVM_GET_DIRTY_LOG, KVM_RUN};

    #[test]
    fn each_thread_may_make_only_its_own_calls() {
        let api = ThreadKind::Api.allowed();
        assert!(api.allows(libc::SYS_accept4));
        assert!(!api.allows_ioctl(KVM_RUN));
        let worker = ThreadKind::DeviceWorker.allowed();
        assert!(!worker.allows_ioctl(KVM_RUN));
        assert!(!worker.allows(libc::SYS_execve));
        let vcpu = ThreadKind::Vcpu.allowed();
        assert!(vcpu.allows_ioctl(KVM_RUN));
        assert!(!vcpu.allows_ioctl(KVM_CREATE_VM));
        let main = ThreadKind::Main.allowed();
        assert!(main.allows_ioctl(KVM_GET_DIRTY_LOG));
        assert!(!main.allows(libc::SYS_execve));
        assert!(!main.allows(libc::SYS_ptrace));
    }

    /// A thread runs under the filters of the thread that started it as
    /// well as its own: the main thread starts vCPUs, which start workers.
    #[test]
    fn a_parent_allows_all_its_children_do() {
        let covers = |parent: ThreadKind, child: ThreadKind| {
            let parent = parent.allowed();
            (0..500).all(|nr| !child.allowed().allows(nr) || parent.allows(nr))
        };
        assert!(covers(ThreadKind::Main, ThreadKind::Vcpu));
        assert!(covers(ThreadKind::Main, ThreadKind::DeviceWorker));
        assert!(covers(ThreadKind::Vcpu, ThreadKind::DeviceWorker));
        for request in [
            crate::ioctls::TUNSETOFFLOAD,
            crate::ioctls::FIONBIO,
            KVM_RUN,
        ] {
            assert!(ThreadKind::Main.allowed().allows_ioctl(request));
        }
    }
}
