//! virtio-net over a host TAP device.
//!
//! Frames go through the TAP with their virtio-net header: the TAP is
//! opened with `IFF_VNET_HDR` and a 12-byte header (`virtio_net_hdr_v1`),
//! so checksum and segmentation offloads pass between the guest and the
//! host kernel without the VMM looking inside the frames. The device
//! copies each frame once between guest buffers and its own buffer; it
//! never touches the payload.
//!
//! - [`config`]: the `--net` option.
//! - [`tap`]: opening the TAP and its offload ioctls.
//! - [`frame`]: reading transmit chains and filling receive chains, where
//!   every guest-supplied descriptor is checked.
//! - [`queues`]: the receive and transmit loops, with rate limiting and
//!   interrupt moderation.
//! - [`device`]: the [`Net`] virtio device.

pub mod config;
mod device;
pub mod frame;
mod handle;
pub mod queues;
pub mod tap;

pub use config::{ConfigError, NetConfig};
pub use device::{Net, NetState};
pub use handle::{NetHandle, NetUpdate};
pub use queues::{FrameIo, NetQueues};
pub use tap::{Tap, TapError};

/// Size of `virtio_net_hdr_v1`, the header before every frame (virtio
/// 1.2, section 5.1.6): flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset, num_buffers.
pub const HEADER_LEN: usize = 12;
/// Largest Ethernet frame the device carries: a 64 KiB segmentation
/// offload frame with its Ethernet and VLAN headers.
pub const MAX_FRAME_LEN: usize = 65536 + 18;
/// Largest header plus frame.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + MAX_FRAME_LEN;

/// Feature bits of virtio-net (virtio 1.2, section 5.1.3).
pub mod features {
    /// The guest may send frames with a partial checksum.
    pub const CSUM: u64 = 1 << 0;
    /// The guest accepts frames with a partial checksum.
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// The configuration space holds the MAC address.
    pub const MAC: u64 = 1 << 5;
    /// The guest accepts TCPv4 segmentation offload frames.
    pub const GUEST_TSO4: u64 = 1 << 7;
    /// The guest accepts TCPv6 segmentation offload frames.
    pub const GUEST_TSO6: u64 = 1 << 8;
    /// The guest may send TCPv4 segmentation offload frames.
    pub const HOST_TSO4: u64 = 1 << 11;
    /// The guest may send TCPv6 segmentation offload frames.
    pub const HOST_TSO6: u64 = 1 << 12;
    /// A received frame may span several receive buffers.
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// The configuration space holds the link status.
    pub const STATUS: u64 = 1 << 16;
}

/// Queue indexes.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;

#[cfg(test)]
mod tap_tests;
#[cfg(test)]
mod tests;
