//! Moving frames between the TAP's buffer and guest descriptor chains.
//! Every descriptor is guest input: its direction, its place in guest
//! memory and the chain's total length are checked before any copy.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestMemoryBackend};

use super::{features, HEADER_LEN, MAX_PACKET_LEN};
use crate::GuestMemoryMmap;

/// `virtio_net_hdr.flags`: the frame's checksum is partial.
const HDR_F_NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.gso_type` values.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
/// Offset of `num_buffers` in `virtio_net_hdr_v1`.
const NUM_BUFFERS_OFFSET: usize = 10;

/// Why a chain was not used for a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a transmit descriptor is device-writable")]
    WritableInTx,
    #[error("a receive descriptor is device-readable")]
    ReadableInRx,
    #[error("a descriptor points outside guest memory")]
    OutsideMemory,
    #[error("the chain is shorter than the virtio-net header")]
    TooShort,
    #[error("the chain is longer than the largest frame")]
    TooLong,
    #[error("the chain loops or links outside its descriptor table")]
    Broken,
    #[error("the header asks for an offload the driver did not negotiate ({0:#x})")]
    Offload(u8),
}

/// Copies a transmit chain (header and frame, all device-readable) into
/// `buf`, which holds [`MAX_PACKET_LEN`] bytes; returns its length.
///
/// The chain iterator of `virtio-queue` ends quietly at a loop or a `next`
/// past the table; a last descriptor that still says "next" tells.
pub fn read_tx_chain(
    descriptors: impl Iterator<Item = Descriptor>,
    mem: &GuestMemoryMmap,
    buf: &mut [u8],
) -> Result<usize, FrameError> {
    let limit = buf.len().min(MAX_PACKET_LEN);
    let mut len = 0usize;
    let mut linked = false;
    for desc in descriptors {
        linked = desc.has_next();
        if desc.is_write_only() {
            return Err(FrameError::WritableInTx);
        }
        let n = usize::try_from(desc.len()).map_err(|_| FrameError::TooLong)?;
        let end = len
            .checked_add(n)
            .filter(|&end| end <= limit)
            .ok_or(FrameError::TooLong)?;
        mem.read_slice(&mut buf[len..end], desc.addr())
            .map_err(|_| FrameError::OutsideMemory)?;
        len = end;
    }
    if linked {
        return Err(FrameError::Broken);
    }
    if len < HEADER_LEN {
        return Err(FrameError::TooShort);
    }
    Ok(len)
}

/// Checks that a transmit header only asks for offloads the driver
/// negotiated: the TAP would honour others, and the guest must not get
/// what it did not ask for.
pub fn check_tx_header(header: &[u8], acked: u64) -> Result<(), FrameError> {
    let (Some(&flags), Some(&gso)) = (header.first(), header.get(1)) else {
        return Err(FrameError::TooShort);
    };
    let needs = |feature: u64| acked & feature != 0;
    let csum_ok = flags & HDR_F_NEEDS_CSUM == 0 || needs(features::CSUM);
    let gso_ok = match gso {
        GSO_NONE => true,
        GSO_TCPV4 => needs(features::HOST_TSO4),
        GSO_TCPV6 => needs(features::HOST_TSO6),
        _ => false,
    };
    if csum_ok && gso_ok {
        Ok(())
    } else {
        Err(FrameError::Offload(gso))
    }
}

/// The bytes a receive chain holds, checking that every descriptor is
/// device-writable and in guest memory.
pub fn rx_chain_capacity(
    descriptors: impl Iterator<Item = Descriptor>,
    mem: &GuestMemoryMmap,
) -> Result<usize, FrameError> {
    let mut capacity = 0usize;
    let mut linked = false;
    for desc in descriptors {
        linked = desc.has_next();
        if !desc.is_write_only() {
            return Err(FrameError::ReadableInRx);
        }
        let n = usize::try_from(desc.len()).map_err(|_| FrameError::TooLong)?;
        if !mem.check_range(desc.addr(), n) {
            return Err(FrameError::OutsideMemory);
        }
        capacity = capacity.saturating_add(n);
    }
    if linked {
        return Err(FrameError::Broken);
    }
    Ok(capacity)
}

/// Writes the start of `data` into a receive chain that
/// [`rx_chain_capacity`] accepted; returns how many bytes went in.
pub fn write_rx_chain(
    descriptors: impl Iterator<Item = Descriptor>,
    mem: &GuestMemoryMmap,
    data: &[u8],
) -> Result<usize, FrameError> {
    let mut written = 0usize;
    for desc in descriptors {
        if written == data.len() {
            break;
        }
        if !desc.is_write_only() {
            return Err(FrameError::ReadableInRx);
        }
        let n = usize::try_from(desc.len())
            .unwrap_or(usize::MAX)
            .min(data.len() - written);
        mem.write_slice(&data[written..written + n], desc.addr())
            .map_err(|_| FrameError::OutsideMemory)?;
        written += n;
    }
    Ok(written)
}

/// Sets `num_buffers` in a received frame's header.
pub fn set_num_buffers(packet: &mut [u8], buffers: u16) {
    if let Some(field) = packet.get_mut(NUM_BUFFERS_OFFSET..NUM_BUFFERS_OFFSET + 2) {
        field.copy_from_slice(&buffers.to_le_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::GuestAddress;

    const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u16) -> Descriptor {
        Descriptor::new(addr, len, flags, 0)
    }

    #[test]
    fn tx_chain_is_gathered_in_order() {
        let mem = mem();
        mem.write_slice(&[1; 8], GuestAddress(0x1000)).unwrap();
        mem.write_slice(&[2; 100], GuestAddress(0x3000)).unwrap();
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let descs = [desc(0x1000, 8, 0), desc(0x3000, 100, 0)];
        let n = read_tx_chain(descs.into_iter(), &mem, &mut buf).unwrap();
        assert_eq!(n, 108);
        assert_eq!(&buf[..8], &[1; 8]);
        assert_eq!(&buf[8..108], &[2; 100]);
    }

    #[test]
    fn malformed_tx_chains_are_refused() {
        let mem = mem();
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let mut read = |descs: &[Descriptor]| read_tx_chain(descs.iter().copied(), &mem, &mut buf);
        assert_eq!(read(&[]), Err(FrameError::TooShort));
        assert_eq!(read(&[desc(0, 11, 0)]), Err(FrameError::TooShort));
        assert_eq!(
            read(&[desc(0, 64, 0), desc(0x100, 64, WRITE)]),
            Err(FrameError::WritableInTx)
        );
        assert_eq!(
            read(&[desc(0xff000, 0x2000, 0)]),
            Err(FrameError::OutsideMemory)
        );
        assert_eq!(
            read(&[desc(u64::MAX - 4, 64, 0)]),
            Err(FrameError::OutsideMemory)
        );
        assert_eq!(read(&[desc(0, u32::MAX, 0)]), Err(FrameError::TooLong));
        let over = (MAX_PACKET_LEN / 2 + 1) as u32;
        assert_eq!(
            read(&[desc(0, over, 0), desc(0, over, 0)]),
            Err(FrameError::TooLong)
        );
        assert_eq!(
            read(&[desc(0, MAX_PACKET_LEN as u32, 0)]),
            Ok(MAX_PACKET_LEN)
        );
        // A last descriptor that still links on: a loop or a bad index.
        assert_eq!(read(&[desc(0, 64, NEXT)]), Err(FrameError::Broken));
    }

    #[test]
    fn tx_header_offloads_must_be_negotiated() {
        let plain = [0u8; HEADER_LEN];
        assert_eq!(check_tx_header(&plain, 0), Ok(()));
        let mut csum = plain;
        csum[0] = HDR_F_NEEDS_CSUM;
        assert!(check_tx_header(&csum, 0).is_err());
        assert_eq!(check_tx_header(&csum, features::CSUM), Ok(()));
        let mut tso4 = csum;
        tso4[1] = GSO_TCPV4;
        assert!(check_tx_header(&tso4, features::CSUM).is_err());
        assert_eq!(
            check_tx_header(&tso4, features::CSUM | features::HOST_TSO4),
            Ok(())
        );
        let mut tso6 = csum;
        tso6[1] = GSO_TCPV6;
        assert!(check_tx_header(&tso6, features::CSUM | features::HOST_TSO4).is_err());
        assert_eq!(
            check_tx_header(&tso6, features::CSUM | features::HOST_TSO6),
            Ok(())
        );
        for other in [3u8, 5, 0x81, 0xff] {
            let mut h = csum;
            h[1] = other;
            assert!(check_tx_header(&h, u64::MAX).is_err(), "{other}");
        }
        assert_eq!(check_tx_header(&[0], 0), Err(FrameError::TooShort));
    }

    #[test]
    fn rx_chain_is_checked_then_filled_in_order() {
        let mem = mem();
        let descs = [desc(0x1000, 10, WRITE), desc(0x2000, 100, WRITE)];
        assert_eq!(rx_chain_capacity(descs.into_iter(), &mem), Ok(110));
        let data: Vec<u8> = (0..50).collect();
        assert_eq!(write_rx_chain(descs.into_iter(), &mem, &data), Ok(50));
        let mut got = [0u8; 40];
        mem.read_slice(&mut got, GuestAddress(0x2000)).unwrap();
        assert_eq!(&got[..], &data[10..]);
        let mut first = [0u8; 10];
        mem.read_slice(&mut first, GuestAddress(0x1000)).unwrap();
        assert_eq!(&first[..], &data[..10]);
    }

    #[test]
    fn malformed_rx_chains_are_refused() {
        let mem = mem();
        let cap = |descs: &[Descriptor]| rx_chain_capacity(descs.iter().copied(), &mem);
        assert_eq!(cap(&[]), Ok(0));
        assert_eq!(
            cap(&[desc(0x1000, 10, WRITE), desc(0x2000, 10, 0)]),
            Err(FrameError::ReadableInRx)
        );
        assert_eq!(
            cap(&[desc(0xfff00, 0x200, WRITE)]),
            Err(FrameError::OutsideMemory)
        );
        assert_eq!(
            cap(&[desc(u64::MAX, 2, WRITE)]),
            Err(FrameError::OutsideMemory)
        );
        assert_eq!(
            cap(&[desc(0x1000, 64, WRITE | NEXT)]),
            Err(FrameError::Broken)
        );
        assert_eq!(
            write_rx_chain([desc(0xfff00, 0x200, WRITE)].into_iter(), &mem, &[0; 0x200]),
            Err(FrameError::OutsideMemory)
        );
    }

    #[test]
    fn num_buffers_is_little_endian_at_offset_10() {
        let mut packet = [0u8; HEADER_LEN];
        set_num_buffers(&mut packet, 0x0102);
        assert_eq!(&packet[10..], &[2, 1]);
        set_num_buffers(&mut [0u8; 4], 1);
    }
}
