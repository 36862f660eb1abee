//! A virtio-blk request (virtio 1.2, section 5.2.6) out of a descriptor
//! chain: a 16-byte header the device reads, then data, then one status
//! byte the device writes. The chain's framing is the driver's choice, so
//! the header, the data and the status may straddle descriptors.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend};

use super::{GuestSlice, MAX_RANGES};
use crate::GuestMemoryMmap;

pub const SECTOR_SIZE: u64 = 512;
const HEADER_BYTES: u64 = 16;
/// Bytes of one discard / write-zeroes range.
const RANGE_BYTES: u64 = 16;
/// Longest chain taken: `IOV_MAX`, the queue size, so `seg_max` data
/// segments plus header and status.
pub const MAX_DESCRIPTORS: usize = 1024;

/// Request types (`VIRTIO_BLK_T_*`).
pub mod types {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
    pub const DISCARD: u32 = 11;
    pub const WRITE_ZEROES: u32 = 13;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(value: u32) -> Self {
        match value {
            types::IN => RequestType::In,
            types::OUT => RequestType::Out,
            types::FLUSH => RequestType::Flush,
            types::GET_ID => RequestType::GetId,
            types::DISCARD => RequestType::Discard,
            types::WRITE_ZEROES => RequestType::WriteZeroes,
            other => RequestType::Unsupported(other),
        }
    }
}

/// One range of a discard or write-zeroes request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub sector: u64,
    pub sectors: u32,
    pub flags: u32,
}

/// Flag of a write-zeroes range: the device may deallocate.
pub const RANGE_UNMAP: u32 = 1;

/// A well-formed request.
#[derive(Debug)]
pub struct Request<'a> {
    pub kind: RequestType,
    pub sector: u64,
    /// What the device reads (OUT) or fills (IN, GET_ID).
    pub data: Vec<GuestSlice<'a>>,
    /// DISCARD and WRITE_ZEROES ranges.
    pub ranges: Vec<Range>,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

impl Request<'_> {
    pub fn data_len(&self) -> u64 {
        self.data.iter().map(|s| s.len() as u64).sum()
    }
}

/// Why a chain is not a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the chain has more than {MAX_DESCRIPTORS} descriptors")]
    TooManyDescriptors,
    #[error("a device-readable descriptor follows a device-writable one")]
    ReadableAfterWritable,
    #[error("no device-writable byte for the status")]
    NoStatus,
    #[error("the header has {0} bytes, not 16")]
    ShortHeader(u64),
    #[error("{len} bytes at {addr:#x} are outside guest memory")]
    OutsideMemory { addr: u64, len: u64 },
    #[error("{0} bytes of data are not whole sectors")]
    PartialSector(u64),
    #[error("{0} bytes of ranges are not whole 16-byte ranges")]
    PartialRange(u64),
    #[error("{0} ranges, more than the {MAX_RANGES} offered")]
    TooManyRanges(u64),
}

/// A chain that is not a request, and where its status byte is, if the
/// chain has one to report the error in.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    pub error: RequestError,
    pub status: Option<GuestAddress>,
}

/// A run of guest memory: where and how many bytes.
type Region = (GuestAddress, u64);

fn total(regions: &[Region]) -> u64 {
    regions.iter().map(|r| r.1).sum()
}

/// Splits `regions` `at` bytes in. A region the split falls inside must
/// not run past the end of the address space.
fn split(regions: &[Region], mut at: u64) -> Result<(Vec<Region>, Vec<Region>), RequestError> {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    for &(addr, len) in regions {
        if at >= len {
            head.push((addr, len));
            at -= len;
        } else if at == 0 {
            tail.push((addr, len));
        } else {
            head.push((addr, at));
            // The guest chose `addr`: near the top of the address space,
            // `addr + at` does not exist.
            let rest = addr.checked_add(at).ok_or(outside(addr, len))?;
            tail.push((rest, len - at));
            at = 0;
        }
    }
    Ok((head, tail))
}

fn outside(addr: GuestAddress, len: u64) -> RequestError {
    RequestError::OutsideMemory { addr: addr.0, len }
}

/// Host views of `regions`, which must all be in guest memory.
fn slices<'a>(
    mem: &'a GuestMemoryMmap,
    regions: &[Region],
) -> Result<Vec<GuestSlice<'a>>, RequestError> {
    let mut out = Vec::with_capacity(regions.len());
    for &(addr, len) in regions {
        let count = usize::try_from(len).map_err(|_| outside(addr, len))?;
        for slice in mem.get_slices(addr, count) {
            out.push(slice.map_err(|_| outside(addr, len))?);
        }
    }
    Ok(out)
}

/// Copies `regions` (at most `buf.len()` bytes in all) into `buf`.
fn read_regions(
    mem: &GuestMemoryMmap,
    regions: &[Region],
    buf: &mut [u8],
) -> Result<(), RequestError> {
    let mut done = 0usize;
    for &(addr, len) in regions {
        let n = usize::try_from(len).map_err(|_| outside(addr, len))?;
        let dst = buf.get_mut(done..done + n).ok_or(outside(addr, len))?;
        mem.read_slice(dst, addr).map_err(|_| outside(addr, len))?;
        done += n;
    }
    Ok(())
}

fn parse_ranges(mem: &GuestMemoryMmap, regions: &[Region]) -> Result<Vec<Range>, RequestError> {
    let len = total(regions);
    if !len.is_multiple_of(RANGE_BYTES) {
        return Err(RequestError::PartialRange(len));
    }
    let count = len / RANGE_BYTES;
    if count > u64::from(MAX_RANGES) {
        return Err(RequestError::TooManyRanges(count));
    }
    // Bounded by MAX_RANGES * 16 bytes.
    let mut bytes =
        vec![0u8; usize::try_from(len).map_err(|_| RequestError::TooManyRanges(count))?];
    read_regions(mem, regions, &mut bytes)?;
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let word = |i: usize| [c[i], c[i + 1], c[i + 2], c[i + 3]];
            Range {
                sector: u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                sectors: u32::from_le_bytes(word(8)),
                flags: u32::from_le_bytes(word(12)),
            }
        })
        .collect())
}

/// Parses the descriptors of one chain into a request.
pub fn parse<'a>(
    mem: &'a GuestMemoryMmap,
    chain: impl IntoIterator<Item = Descriptor>,
) -> Result<Request<'a>, Malformed> {
    let mut readable: Vec<Region> = Vec::new();
    let mut writable: Vec<Region> = Vec::new();
    let mut misordered = false;
    for (i, desc) in chain.into_iter().enumerate() {
        if i >= MAX_DESCRIPTORS {
            return Err(Malformed {
                error: RequestError::TooManyDescriptors,
                status: None,
            });
        }
        if desc.len() == 0 {
            continue;
        }
        let region = (desc.addr(), u64::from(desc.len()));
        if desc.is_write_only() {
            writable.push(region);
        } else {
            misordered |= !writable.is_empty();
            readable.push(region);
        }
    }

    // The status is the last writable byte.
    let Some(&(last_addr, last_len)) = writable.last() else {
        return Err(Malformed {
            error: RequestError::NoStatus,
            status: None,
        });
    };
    let status = last_addr
        .checked_add(last_len - 1)
        .filter(|&a| mem.check_range(a, 1))
        .ok_or(Malformed {
            error: outside(last_addr, last_len),
            status: None,
        })?;
    let fail = |error| Malformed {
        error,
        status: Some(status),
    };
    if misordered {
        return Err(fail(RequestError::ReadableAfterWritable));
    }
    let (writable_data, _) = split(&writable, total(&writable) - 1).map_err(fail)?;

    if total(&readable) < HEADER_BYTES {
        return Err(fail(RequestError::ShortHeader(total(&readable))));
    }
    let (header_regions, after_header) = split(&readable, HEADER_BYTES).map_err(fail)?;
    let mut header = [0u8; 16];
    read_regions(mem, &header_regions, &mut header).map_err(fail)?;
    let kind = RequestType::from(u32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let sector = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);

    let mut request = Request {
        kind,
        sector,
        data: Vec::new(),
        ranges: Vec::new(),
        status,
    };
    match kind {
        RequestType::In | RequestType::Out => {
            let regions = if kind == RequestType::In {
                &writable_data
            } else {
                &after_header
            };
            let len = total(regions);
            if !len.is_multiple_of(SECTOR_SIZE) {
                return Err(fail(RequestError::PartialSector(len)));
            }
            request.data = slices(mem, regions).map_err(fail)?;
        }
        RequestType::GetId => request.data = slices(mem, &writable_data).map_err(fail)?,
        RequestType::Discard | RequestType::WriteZeroes => {
            request.ranges = parse_ranges(mem, &after_header).map_err(fail)?;
        }
        RequestType::Flush | RequestType::Unsupported(_) => {}
    }
    Ok(request)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use vm_memory::Bytes;

    const W: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn d(addr: u64, len: u32, flags: u16) -> Descriptor {
        Descriptor::new(addr, len, flags, 0)
    }

    fn header(mem: &GuestMemoryMmap, at: u64, kind: u32, sector: u64) {
        mem.write_obj(kind, GuestAddress(at)).unwrap();
        mem.write_obj(0u32, GuestAddress(at + 4)).unwrap();
        mem.write_obj(sector, GuestAddress(at + 8)).unwrap();
    }

    #[test]
    fn linux_style_read() {
        let mem = mem();
        header(&mem, 0x1000, types::IN, 7);
        let r = parse(
            &mem,
            [
                d(0x1000, 16, 0),
                d(0x2000, 4096, W),
                d(0x3000, 512, W),
                d(0x4000, 1, W),
            ],
        )
        .unwrap();
        assert_eq!((r.kind, r.sector), (RequestType::In, 7));
        assert_eq!(r.data_len(), 4608);
        assert_eq!(r.status, GuestAddress(0x4000));
    }

    #[test]
    fn framing_is_free() {
        // Header split over two descriptors, data and status in one.
        let mem = mem();
        header(&mem, 0x1000, types::OUT, 3);
        mem.write_obj(types::OUT, GuestAddress(0x1000)).unwrap();
        let r = parse(
            &mem,
            [d(0x1000, 10, 0), d(0x100a, 6 + 512, 0), d(0x5000, 1, W)],
        )
        .unwrap();
        assert_eq!((r.kind, r.sector, r.data_len()), (RequestType::Out, 3, 512));
        header(&mem, 0x1000, types::IN, 9);
        let r = parse(&mem, [d(0x1000, 16, 0), d(0x2000, 513, W)]).unwrap();
        assert_eq!((r.sector, r.data_len()), (9, 512));
        assert_eq!(r.status, GuestAddress(0x2200));
    }

    #[test]
    fn malformed_chains() {
        let mem = mem();
        header(&mem, 0x1000, types::IN, 0);
        let err = |descs: &[Descriptor]| parse(&mem, descs.to_vec()).unwrap_err();
        assert_eq!(
            err(&[d(0x1000, 16, 0)]),
            Malformed {
                error: RequestError::NoStatus,
                status: None
            }
        );
        assert_eq!(
            err(&[d(0x1000, 8, 0), d(0x4000, 1, W)]).error,
            RequestError::ShortHeader(8)
        );
        let m = err(&[d(0x1000, 16, 0), d(0x2000, 100, W), d(0x4000, 1, W)]);
        assert_eq!(
            (m.error, m.status),
            (RequestError::PartialSector(100), Some(GuestAddress(0x4000)))
        );
        let m = err(&[d(0x4000, 1, W), d(0x1000, 16, 0)]);
        assert_eq!(m.error, RequestError::ReadableAfterWritable);
        assert_eq!(
            err(&[d(0x1000, 16, 0), d(0xffff_0000, 1, W)]).status,
            None,
            "status outside memory"
        );
        let m = err(&[d(0x1000, 16, 0), d(0xf_f000, 0x2000, W), d(0x4000, 1, W)]);
        assert!(matches!(m.error, RequestError::OutsideMemory { .. }));
        let m = err(&[d(u64::MAX - 4, 16, 0), d(0x4000, 1, W)]);
        assert!(matches!(m.error, RequestError::OutsideMemory { .. }));
        // The header ends inside a descriptor that runs past the top of
        // the address space: the data would start beyond it.
        let m = err(&[d(u64::MAX - 4, 32, 0), d(0x4000, 1, W)]);
        assert_eq!(
            m.error,
            RequestError::OutsideMemory {
                addr: u64::MAX - 4,
                len: 32
            }
        );
        let long: Vec<Descriptor> = (0..MAX_DESCRIPTORS + 1).map(|_| d(0x4000, 1, W)).collect();
        assert_eq!(err(&long).error, RequestError::TooManyDescriptors);
    }

    #[test]
    fn a_chain_as_long_as_the_queue_parses() {
        // Header, MAX_DESCRIPTORS - 2 data segments (the `seg_max` the
        // device offers), status: the longest chain a driver may build.
        let mem = mem();
        header(&mem, 0x1000, types::IN, 0);
        let segments = MAX_DESCRIPTORS - 2;
        let mut chain = vec![d(0x1000, 16, 0)];
        chain.extend((0..segments as u64).map(|i| d(0x8000 + i * 512, 512, W)));
        chain.push(d(0x4000, 1, W));
        let r = parse(&mem, chain).unwrap();
        assert_eq!(r.data.len(), segments);
        assert_eq!(r.data_len(), segments as u64 * 512);
    }

    #[test]
    fn discard_ranges() {
        let mem = mem();
        header(&mem, 0x1000, types::DISCARD, 0);
        mem.write_obj(100u64, GuestAddress(0x1010)).unwrap();
        mem.write_obj(8u32, GuestAddress(0x1018)).unwrap();
        mem.write_obj(RANGE_UNMAP, GuestAddress(0x101c)).unwrap();
        let r = parse(&mem, [d(0x1000, 32, 0), d(0x4000, 1, W)]).unwrap();
        assert_eq!(
            r.ranges,
            vec![Range {
                sector: 100,
                sectors: 8,
                flags: RANGE_UNMAP
            }]
        );
        let m = parse(&mem, [d(0x1000, 30, 0), d(0x4000, 1, W)]).unwrap_err();
        assert_eq!(m.error, RequestError::PartialRange(14));
        let many = 16 + 16 * (MAX_RANGES + 1);
        let m = parse(&mem, [d(0x1000, many, 0), d(0x4000, 1, W)]).unwrap_err();
        assert_eq!(
            m.error,
            RequestError::TooManyRanges(u64::from(MAX_RANGES) + 1)
        );
    }

    #[test]
    fn unknown_types_parse_for_an_unsupp_answer() {
        let mem = mem();
        header(&mem, 0x1000, 99, 0);
        let r = parse(&mem, [d(0x1000, 16, 0), d(0x4000, 1, W)]).unwrap();
        assert_eq!(r.kind, RequestType::Unsupported(99));
    }
}
