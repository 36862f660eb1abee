//! virtio-vsock (virtio 1.2, section 5.10): stream sockets between the
//! guest and host programs, through Unix sockets as Firecracker does.
//!
//! A host program connects to the Unix socket `PATH` and writes
//! `CONNECT <port>\n`; once a guest program listening on `<port>`
//! accepts, it reads `OK <host port>\n` and then talks to it. A guest
//! program connecting to host port P (CID 2) reaches whatever listens on
//! the Unix socket `PATH_P`, or gets a reset.

mod config;
mod connection;
mod device;
mod handler;
mod muxer;
mod packet;
mod socket;

pub use config::{ConfigError, VsockConfig};
pub use connection::BUF_ALLOC;
pub use device::Vsock;
pub use handler::{
    DeviceQueue, QueueHandler, CHAINS_PER_WAKE, EVENT_QUEUE, EVENT_TRANSPORT_RESET, RX_QUEUE,
    TX_QUEUE,
};
pub use muxer::{Muxer, Unwatched, Watch, MAX_CONNECTIONS};
pub use packet::{Header, Op, PacketError, HEADER_SIZE, HOST_CID};
pub use socket::{HostSocket, SocketError};
