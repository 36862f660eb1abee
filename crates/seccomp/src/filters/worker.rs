//! A virtio device's worker thread: it moves data between the guest's
//! queues and the host end (a disk file, a TAP, vsock's Unix sockets,
//! getrandom), and signals the guest through irqfds.

use crate::allow_list::AllowList;
use crate::ioctls::{FIONBIO, TUNSETOFFLOAD};

use super::common::every_thread;

pub fn device_worker() -> AllowList {
    every_thread()
        .calls(&[
            // virtio-blk: requests on the disk file, flushes, discards
            // and write-zeroes (punched holes).
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_preadv,
            libc::SYS_pwritev,
            libc::SYS_preadv2,
            libc::SYS_pwritev2,
            libc::SYS_readv,
            libc::SYS_lseek,
            libc::SYS_fsync,
            libc::SYS_fdatasync,
            libc::SYS_fallocate,
            libc::SYS_fstat,
            libc::SYS_newfstatat,
            libc::SYS_statx,
            // Rate limiters' refill timers.
            libc::SYS_timerfd_create,
            libc::SYS_timerfd_settime,
            libc::SYS_timerfd_gettime,
            // virtio-vsock: host connections accepted on its socket, guest
            // connections made to the host's PATH_PORT sockets.
            libc::SYS_accept4,
            libc::SYS_connect,
            libc::SYS_sendto,
            libc::SYS_recvfrom,
            libc::SYS_sendmsg,
            libc::SYS_recvmsg,
            libc::SYS_shutdown,
            libc::SYS_getsockopt,
            // Sockets made here are closed on exec; a shared eventfd is
            // cloned for a source added while running.
            libc::SYS_dup,
            libc::SYS_dup3,
            libc::SYS_eventfd2,
        ])
        // vsock connects to Unix sockets only.
        .arg_in(libc::SYS_socket, 0, &[libc::AF_UNIX as u64])
        // vsock's sockets are non-blocking; virtio-net sets the TAP's
        // offloads when the guest acks its features.
        .ioctls(&[FIONBIO, TUNSETOFFLOAD])
}
