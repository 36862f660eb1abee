//! The API server thread: it accepts connections on its Unix socket,
//! reads requests and writes replies; it never touches KVM or guest
//! memory, and hands every request to the main thread.

use crate::allow_list::AllowList;
use crate::ioctls::FIONBIO;

use super::common::every_thread;

pub fn api_thread() -> AllowList {
    every_thread()
        .calls(&[
            // Connections on the API socket.
            libc::SYS_accept4,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_shutdown,
            libc::SYS_poll,
        ])
        // Accepted connections are made non-blocking.
        .ioctls(&[FIONBIO])
}
