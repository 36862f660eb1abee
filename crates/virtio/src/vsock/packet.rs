//! The virtio-vsock packet header (virtio 1.2, section 5.10.6) and the
//! checks every packet from the guest goes through.

/// Bytes of the header in front of every packet.
pub const HEADER_SIZE: usize = 44;
/// The host's CID, where every guest packet must go.
pub const HOST_CID: u64 = 2;
/// Largest payload accepted in one packet (Linux sends at most 64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// `type`: stream sockets, the only kind this device offers.
pub const TYPE_STREAM: u16 = 1;

/// SHUTDOWN flags: the sender will receive no more / send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;
pub const SHUTDOWN_BOTH: u32 = SHUTDOWN_RCV | SHUTDOWN_SEND;

/// Packet operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request = 1,
    Response = 2,
    Rst = 3,
    Shutdown = 4,
    Rw = 5,
    CreditUpdate = 6,
    CreditRequest = 7,
}

impl TryFrom<u16> for Op {
    type Error = PacketError;

    fn try_from(value: u16) -> Result<Op, PacketError> {
        Ok(match value {
            1 => Op::Request,
            2 => Op::Response,
            3 => Op::Rst,
            4 => Op::Shutdown,
            5 => Op::Rw,
            6 => Op::CreditUpdate,
            7 => Op::CreditRequest,
            other => return Err(PacketError::BadOp(other)),
        })
    }
}

/// Why a packet from the guest is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("the descriptor chain cannot be walked or points outside guest memory")]
    InvalidChain,
    #[error("the packet has {0} readable bytes, less than a {HEADER_SIZE}-byte header")]
    ShortHeader(usize),
    #[error("source CID {got} is not the guest's ({want})")]
    WrongSourceCid { got: u64, want: u64 },
    #[error("destination CID {0} is not the host's ({HOST_CID})")]
    WrongDestinationCid(u64),
    #[error("unknown operation {0}")]
    BadOp(u16),
    #[error("socket type {0} is not stream ({TYPE_STREAM})")]
    BadType(u16),
    #[error("payload length {len} is more than the {available} bytes the chain holds (or over {MAX_PAYLOAD})")]
    BadLength { len: u32, available: usize },
    #[error("the receive buffer has {0} writable bytes, less than a {HEADER_SIZE}-byte header")]
    ShortBuffer(usize),
}

impl PacketError {
    /// Whether the sender can be told with a RST: its addresses are sound
    /// but what it asked for is not.
    pub fn deserves_rst(&self) -> bool {
        matches!(
            self,
            PacketError::BadOp(_) | PacketError::BadType(_) | PacketError::BadLength { .. }
        )
    }
}

/// A packet header, in host byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Header {
    /// Decodes the little-endian wire format.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Header {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().unwrap_or([0; 2]));
        Header {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            type_: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    /// Encodes the little-endian wire format.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }

    /// Checks a header from the guest whose chain holds `payload_bytes`
    /// readable bytes after it; returns its operation.
    pub fn check_from_guest(
        &self,
        guest_cid: u64,
        payload_bytes: usize,
    ) -> Result<Op, PacketError> {
        if self.src_cid != guest_cid {
            return Err(PacketError::WrongSourceCid {
                got: self.src_cid,
                want: guest_cid,
            });
        }
        if self.dst_cid != HOST_CID {
            return Err(PacketError::WrongDestinationCid(self.dst_cid));
        }
        let op = Op::try_from(self.op)?;
        if self.type_ != TYPE_STREAM {
            return Err(PacketError::BadType(self.type_));
        }
        let len = usize::try_from(self.len).unwrap_or(usize::MAX);
        if len > payload_bytes.min(MAX_PAYLOAD) {
            return Err(PacketError::BadLength {
                len: self.len,
                available: payload_bytes,
            });
        }
        Ok(op)
    }

    /// A header from the host to the guest: addresses swapped from the
    /// guest's view, no payload.
    pub fn to_guest(guest_cid: u64, host_port: u32, guest_port: u32, op: Op) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: guest_cid,
            src_port: host_port,
            dst_port: guest_port,
            type_: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        }
    }

    /// The RST that answers this (guest) header.
    pub fn rst_reply(&self) -> Header {
        Header::to_guest(self.src_cid, self.dst_port, self.src_port, Op::Rst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest_header(op: Op) -> Header {
        Header {
            src_cid: 3,
            dst_cid: HOST_CID,
            src_port: 1000,
            dst_port: 52,
            type_: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        }
    }

    #[test]
    fn wire_format_round_trips_little_endian() {
        let h = Header {
            src_cid: 0x0102_0304_0506_0708,
            dst_cid: 2,
            src_port: 0xaabb_ccdd,
            dst_port: 5,
            len: 7,
            type_: 1,
            op: 5,
            flags: 3,
            buf_alloc: 0x1_0000,
            fwd_cnt: 9,
        };
        let b = h.to_bytes();
        assert_eq!(b[0], 0x08, "little-endian src_cid");
        assert_eq!(&b[16..20], &[0xdd, 0xcc, 0xbb, 0xaa]);
        assert_eq!(u16::from_le_bytes([b[30], b[31]]), 5, "op at 30");
        assert_eq!(Header::from_bytes(&b), h);
    }

    #[test]
    fn guest_headers_are_checked() {
        let ok = guest_header(Op::Rw);
        assert_eq!(ok.check_from_guest(3, 0), Ok(Op::Rw));
        let mut h = ok;
        h.src_cid = 4;
        assert_eq!(
            h.check_from_guest(3, 0),
            Err(PacketError::WrongSourceCid { got: 4, want: 3 })
        );
        let mut h = ok;
        h.dst_cid = 3;
        assert_eq!(
            h.check_from_guest(3, 0),
            Err(PacketError::WrongDestinationCid(3))
        );
        for bad in [0, 8, u16::MAX] {
            let mut h = ok;
            h.op = bad;
            assert_eq!(h.check_from_guest(3, 0), Err(PacketError::BadOp(bad)));
        }
        let mut h = ok;
        h.type_ = 2;
        assert_eq!(h.check_from_guest(3, 0), Err(PacketError::BadType(2)));
        let mut h = ok;
        h.len = 10;
        assert!(h.check_from_guest(3, 9).unwrap_err().deserves_rst());
        assert_eq!(h.check_from_guest(3, 10), Ok(Op::Rw));
        h.len = u32::MAX;
        assert!(h.check_from_guest(3, usize::MAX).is_err(), "over 64 KiB");
    }

    #[test]
    fn replies_swap_addresses() {
        let r = guest_header(Op::Request).rst_reply();
        assert_eq!((r.src_cid, r.dst_cid), (HOST_CID, 3));
        assert_eq!((r.src_port, r.dst_port), (52, 1000));
        assert_eq!(r.op, Op::Rst as u16);
        assert_eq!(r.type_, TYPE_STREAM);
    }
}
