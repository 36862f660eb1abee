//! What the guest's buffers say, read with bounds: PFN arrays on the
//! inflate and deflate queues, statistics, and free page reports.

use std::io::Read;

use virtio_queue::DescriptorChain;

use super::stats::{BalloonStats, MAX_STATS, STAT_SIZE};
use crate::GuestMemoryMmap;

/// Most PFNs read from one inflate or deflate buffer (Linux sends at most
/// 256); the rest of a longer buffer is ignored.
pub const MAX_PFNS: usize = 4096;
/// Most ranges taken from one free page report (Linux sends at most 32).
pub const MAX_REPORTED_RANGES: usize = 256;

/// A buffer the worker popped.
pub(crate) type Chain<'a> = DescriptorChain<&'a GuestMemoryMmap>;

/// Reads at most `limit` bytes from the chain's device-readable part. A
/// chain that points outside guest memory reads as nothing.
fn read_bytes(chain: Chain<'_>, mem: &GuestMemoryMmap, limit: usize) -> Vec<u8> {
    let Ok(reader) = chain.reader(mem) else {
        return Vec::new();
    };
    let want = reader.available_bytes().min(limit);
    let mut bytes = Vec::with_capacity(want);
    // A failed read keeps what came before it.
    let _ = reader.take(want as u64).read_to_end(&mut bytes);
    bytes
}

/// The PFNs of an inflate or deflate request: little-endian 32-bit page
/// frame numbers of 4 KiB pages.
pub fn read_pfns(chain: Chain<'_>, mem: &GuestMemoryMmap) -> Vec<u32> {
    read_bytes(chain, mem, MAX_PFNS * 4)
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The statistics in a stats buffer.
pub fn read_stats(chain: Chain<'_>, mem: &GuestMemoryMmap) -> BalloonStats {
    BalloonStats::parse(&read_bytes(chain, mem, MAX_STATS * STAT_SIZE))
}

/// The guest ranges `(address, length)` of a free page report: its
/// device-writable descriptors, each a run of free guest memory. Readable
/// descriptors are not reports and are skipped.
pub fn reported_ranges(chain: Chain<'_>) -> Vec<(u64, u64)> {
    chain
        .writable()
        .take(MAX_REPORTED_RANGES)
        .map(|d| (d.addr().0, u64::from(d.len())))
        .collect()
}
